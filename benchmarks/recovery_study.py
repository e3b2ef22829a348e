"""Parameter recovery of the hierarchical model: simulate athletes from known parameters, fit,
and measure how often the truth lies inside the 94 % HDI and how the error shrinks with days.

The same simulated athletes (`bayes.simulate_cohort`, ~20 % missing days in runs) are fitted
on their first 60, 120 and 240 days (`AthleteArrays.head`). Writes
`benchmarks/results/recovery_study.json`: per history length, the 94 % HDI coverage over all
athlete parameters and per parameter, the median absolute error of the posterior median per
parameter, and the fit's diagnostics. Usage:

    .venv/bin/python benchmarks/recovery_study.py [--athletes 12] [--days 60 120 240]
        [--sampler nutpie] [--draws 500 --tune 500 --chains 2] [--seed 20260102]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def study(args: argparse.Namespace) -> dict:
    import arviz as az

    from physiology_model.dynamics import params
    from physiology_model.model import bayes
    longest = max(args.days)
    cohort, truth = bayes.simulate_cohort(
        bayes.SimulationConfig(n_athletes=args.athletes, n_days=longest),
        np.random.default_rng(np.random.SeedSequence(args.seed)))
    results = []
    for n_days in sorted(args.days):
        arrays = cohort.head(n_days)
        started = time.perf_counter()
        idata = bayes.sample(bayes.build_model(arrays), bayes.SamplerConfig(
            sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains,
            seed=args.seed))
        draws = bayes.posterior_athlete_params(idata)
        coverage, errors = {}, {}
        for name in params.PARAM_NAMES:
            hdi = az.hdi(draws[name][None], hdi_prob=0.94)
            inside = (hdi[:, 0] <= truth[name]) & (truth[name] <= hdi[:, 1])
            coverage[name] = float(inside.mean())
            errors[name] = float(np.median(np.abs(np.median(draws[name], 0) - truth[name])))
        results.append({
            "n_days": n_days, "fit_s": time.perf_counter() - started,
            "hdi94_coverage": float(np.mean(list(coverage.values()))),
            "hdi94_coverage_by_param": coverage, "median_abs_error_by_param": errors,
            "diagnostics": json.loads(idata.attrs["diagnostics"]),
        })
        print(f"{n_days:4d} days: coverage {results[-1]['hdi94_coverage']:.0%}, "
              f"{bayes.fit_diagnostics(idata).describe()}", flush=True)
    return {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "truth": {k: np.asarray(v).tolist() for k, v in truth.items()},
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=12)
    parser.add_argument("--days", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--sampler", default="nutpie")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20260102)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "recovery_study.json")
    args = parser.parse_args(argv)
    report = study(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
