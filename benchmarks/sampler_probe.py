"""A short NUTS run of the world model on the shipped fit data, to see the sampler's geometry.

The fit's data exactly as `periodize model fit --data data/real` builds them (the seed's split,
`WorldModelConfig`'s limits), optionally without some athletes (`--drop`), one nutpie chain of
`--tune` + `--draws` iterations with the warm-up kept, and what it says about the geometry:
leapfrog steps per draw through the warm-up and after it (1,023 = the tree-depth limit), the
step size, divergences, the slowest-mixing parameters (lag-1 autocorrelation of the draws) and
the smallest noise SDs (a σ collapsing to 0 means an athlete's series is constant somewhere).
Cheap enough to run before a whole fit: 400 iterations of the one-AR(1) model on 58 athletes
take about a minute on the 2-core machine. Writes JSON (config, seed, load average, numbers).

    .venv/bin/python benchmarks/sampler_probe.py [--noise ar1|slow-fast] [--drop ID ...]
        [--tune 300 --draws 100] [--seed 0] [--low-rank] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_elpd import fit_arrays  # noqa: E402  (the fit's data, built once for both benchmarks)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sampler_probe.json"


def _blocks(values: np.ndarray, size: int = 50) -> list[float]:
    return [float(np.mean(values[i:i + size])) for i in range(0, len(values), size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", choices=["ar1", "slow-fast"], default="ar1")
    parser.add_argument("--drop", nargs="*", default=[], help="athlete ids left out")
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--low-rank", action="store_true",
                        help="adapt nutpie's diagonal plus low-rank mass matrix")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import nutpie

    from physiology_model.model import bayes

    arrays = fit_arrays(args.seed, args.drop)
    model = bayes.build_model(arrays, bayes.PriorConfig(slow_noise=args.noise == "slow-fast"))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    idata = nutpie.sample(compiled, chains=1, cores=1, tune=args.tune, draws=args.draws,
                          seed=args.seed, target_accept=0.9, save_warmup=True,
                          progress_bar=False,
                          low_rank_modified_mass_matrix=args.low_rank)
    sample_s = time.perf_counter() - started
    warm, stats, post = idata.warmup_sample_stats, idata.sample_stats, idata.posterior
    steps = stats["n_steps"].values.ravel()
    mixing = []
    for name in post.data_vars:
        if name.startswith(bayes.LOGLIK_PREFIX):
            continue
        values = post[name].values.reshape(-1, int(np.prod(post[name].shape[2:], dtype=int)))
        for j in range(values.shape[1]):
            x = values[:, j]
            if x.std() > 0:
                mixing.append((float(np.corrcoef(x[:-1], x[1:])[0, 1]), f"{name}[{j}]"))
    mixing.sort(reverse=True)
    athletes = list(post.coords["athlete"].values)
    smallest = {}
    for name in ("sigma_hrv", "sigma_rhr", "sigma_rec"):
        means = post[name].mean(("chain", "draw")).values
        k = int(np.argmin(means))
        smallest[name] = {"athlete": str(athletes[k]), "posterior_mean": float(means[k])}
    result = {
        "benchmark": "sampler_probe", "seed": args.seed,
        "config": {**vars(args), "out": str(args.out)},
        "data": {"athletes": arrays.n_athletes, "days": arrays.n_days,
                 "sources": list(arrays.sources)},
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "compile_s": compile_s, "sample_s": sample_s,
        "warmup_steps_per_50": _blocks(warm["n_steps"].values.ravel()),
        "steps": {"mean": float(steps.mean()), "median": float(np.median(steps)),
                  "max": int(steps.max())},
        "step_size": float(stats["step_size"].values.ravel()[-1]),
        "divergences": int(stats["diverging"].values.sum()),
        "slowest_mixing": [{"lag1": a, "parameter": n} for a, n in mixing[:10]],
        "smallest_noise_sd": smallest,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("data", "sample_s", "steps", "divergences",
                                             "smallest_noise_sd")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
