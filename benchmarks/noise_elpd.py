"""Which noise model the data ask for: leave-athletes-out ELPD of the world model's variants.

The same athletes and days as `periodize model fit` (the shipped data, `split_for_forecasting`
with --seed: the evaluation's test athletes and the last 15 % of each athlete's days held out),
the same sampler settings, one fit per noise variant:

- `one_ar1`: each target's noise one AR(1) (the model before version 3 of the saved model);
- `one_ar1_student`: one AR(1) with Student-t innovations (a degrees-of-freedom parameter per
  target), the heavier tails without the slow component's cost;
- `slow_fast`: a slow + fast AR(1) per target in the likelihood (`bayes.noise_log_likelihood`);
- `slow_fast_student`: the same with Student-t innovations.

Each fit stores every athlete's log-likelihood (summed over ln HRV, RHR and recovery), so
PSIS-LOO (`az.loo`) leaves one *athlete* out at a time, which asks how well a variant predicts
a person it has not seen; `az.compare` ranks them (stacking weights, ELPD differences with
their standard errors). Pareto k above 0.7 means the importance-sampling estimate of that
athlete's held-out density is unreliable: the count is reported with each variant. Also
recorded: the sampling time, the convergence checks and the posterior medians of the noise
parameters. Writes benchmarks/results/noise_elpd.json (config, seed, machine load).

    .venv/bin/python benchmarks/noise_elpd.py
        [--variants one_ar1 one_ar1_student slow_fast slow_fast_student]
        [--draws 1500 --tune 1000 --chains 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "noise_elpd.json"

VARIANTS = {
    "one_ar1": {"slow_noise": False, "tails": "normal"},
    "one_ar1_student": {"slow_noise": False, "tails": "student"},
    "slow_fast": {"slow_noise": True, "tails": "normal"},
    "slow_fast_student": {"slow_noise": True, "tails": "student"},
}


def fit_arrays(seed: int, drop: Sequence[str] = ()):
    """The arrays `periodize model fit --data data/real` fits (its split, its config), without
    the athletes in `drop`."""
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.arrays import prepare_arrays
    from physiology_model.model.fitting import split_for_forecasting
    from physiology_model.model.world_model import WorldModelConfig

    frame = load_exports([str(ROOT / "data" / "real")]).frame
    fit = split_for_forecasting(frame, seed=seed).fit_frame
    fit = fit[~fit["user_id"].isin(list(drop))]
    config = WorldModelConfig()
    return prepare_arrays(fit, max_days=config.max_days,
                          min_hrv_days=config.min_hrv_days)


def noise_medians(idata) -> dict[str, float]:
    from physiology_model.dynamics import params

    names = [*params.AR_PARAMS, *params.SLOW_SHARE_PARAMS, *params.PHI_SLOW_PARAMS,
             "nu_hrv", "nu_rhr", "nu_rec"]
    return {n: float(np.median(idata.posterior[n].values)) for n in names
            if n in idata.posterior}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--draws", type=int, default=1500)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import arviz as az

    from physiology_model.model import bayes

    arrays = fit_arrays(args.seed)
    sampler = bayes.SamplerConfig(draws=args.draws, tune=args.tune, chains=args.chains,
                                  seed=args.seed)
    records, loos = {}, {}
    for name in args.variants:
        priors = bayes.PriorConfig(**VARIANTS[name])
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        idata = bayes.sample(bayes.build_model(arrays, priors), sampler)
        wall = time.perf_counter() - started
        grouped = bayes.athlete_log_likelihood(idata)
        loo = az.loo(grouped, pointwise=True)
        loos[name] = grouped
        pareto_k = np.asarray(loo.pareto_k)
        records[name] = {
            "priors": {k: v for k, v in priors.to_dict().items() if k != "params"},
            "fit_wall_s": wall, "timings": json.loads(idata.attrs["timings"]),
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            "diagnostics": json.loads(idata.attrs["diagnostics"]),
            "elpd_loo_athletes": float(loo.elpd_loo), "se": float(loo.se),
            "p_loo": float(loo.p_loo), "pareto_k_above_0.7": int((pareto_k > 0.7).sum()),
            "noise_medians": noise_medians(idata),
        }
        print(f"{name}: ELPD {loo.elpd_loo:.1f} ± {loo.se:.1f}, {wall:.0f} s, "
              f"{json.loads(idata.attrs['diagnostics'])}", flush=True)
    comparison = None
    if len(loos) > 1:
        table = az.compare(loos, ic="loo")
        comparison = {str(idx): {k: (float(v) if isinstance(v, (int, float, np.floating))
                                     else str(v)) for k, v in row.items()}
                      for idx, row in table.iterrows()}
        print(table.to_string())
    result = {
        "benchmark": "noise_elpd", "seed": args.seed,
        "config": {**vars(args), "out": str(args.out), "sampler": asdict(sampler)},
        "data": {"athletes": arrays.n_athletes, "days": arrays.n_days,
                 "athlete_days": int(arrays.n_valid.sum())},
        "machine": {"cpus": os.cpu_count()},
        "variants": records, "compare": comparison,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
