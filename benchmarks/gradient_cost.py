"""What one gradient of the world model's log density costs, one AR(1) against slow + fast noise.

NUTS spends its time in gradients, so the fit's time is about (gradients per draw) × (cost of
one). This times the second factor for the shipped fit's data (`noise_elpd.fit_arrays`: the
arrays `periodize model fit --data data/real` samples), both noise likelihoods, in the same run
so the ratio holds on a noisy machine: nutpie's own function (its JAX backend: the model's
pytensor graph translated to JAX, value and gradient by `jax.value_and_grad`, jitted), at the
model's initial point, `--repeats` calls of each after a warm-up, the two alternating, median
and quartiles in ms. The
slow + fast likelihood's extra cost is its Kalman filter (`kalman_op.py`).

    .venv/bin/python benchmarks/gradient_cost.py [--repeats 200] [--seed 0]
        [--out benchmarks/results/gradient_cost.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_elpd import fit_arrays
from run_record import load_average, machine_record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gradient_cost.json"


def gradient_function(slow_noise: bool, arrays):
    """nutpie's jitted value-and-gradient of the model's log density, and its initial point."""
    import jax
    import nutpie

    from physiology_model.model import bayes

    model = bayes.build_model(arrays, bayes.PriorConfig(slow_noise=slow_noise))
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
    logp = compiled._raw_logp_fn  # the jitted logp nutpie differentiates
    value_and_grad = jax.jit(jax.value_and_grad(lambda x: logp(x)[0]))
    ip = model.initial_point()
    x = np.concatenate([np.asarray(ip[v.name], float).ravel() for v in model.value_vars])
    if x.size != compiled.n_dim:
        raise SystemExit(f"point of size {x.size}, model of {compiled.n_dim} dimensions")
    value, grad = value_and_grad(x)
    if not (np.isfinite(value) and np.all(np.isfinite(grad))):
        raise SystemExit(f"log density {value} or its gradient not finite at the initial point")
    return value_and_grad, x, float(value), int(compiled.n_dim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    arrays = fit_arrays(args.seed)
    import jax

    functions = {name: gradient_function(slow, arrays)
                 for name, slow in (("one_ar1", False), ("slow_fast", True))}
    before = load_average()
    times = {name: [] for name in functions}
    for _ in range(args.repeats):  # alternating, so both see the same machine
        for name, (value_and_grad, x, _, _) in functions.items():
            started = time.perf_counter()
            jax.block_until_ready(value_and_grad(x))
            times[name].append(1e3 * (time.perf_counter() - started))
    results = {name: {"n_dim": functions[name][3], "logp": functions[name][2],
                      "ms_median": float(np.median(ms)),
                      "ms_quartiles": [float(np.quantile(ms, 0.25)),
                                       float(np.quantile(ms, 0.75))]}
               for name, ms in times.items()}
    ratio = results["slow_fast"]["ms_median"] / results["one_ar1"]["ms_median"]
    record = {"benchmark": "gradient_cost", "seed": args.seed,
              "config": {**vars(args), "out": str(args.out)},
              "data": {"athletes": arrays.n_athletes, "days": arrays.n_days,
                       "athlete_days": int(arrays.n_valid.sum())},
              "machine": machine_record(), "load_average_before": before,
              "load_average_after": load_average(),
              "results": results, "slow_fast_over_one_ar1": ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("results", "slow_fast_over_one_ar1")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
