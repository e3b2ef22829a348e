"""The personalisation alone against the truth: simulated athletes personalised against their
true population, so that no error of a fitted population enters (`large_cohort_fit.py` measures
both together).

The cohort is `bayes.simulate_cohort` (N athletes, 10 % of days missing); the population has
the simulation's own locations, between-athlete scales and AR(1) coefficients in every draw.
Each athlete is personalised (`personalize_series`: `--proposals` per round, `--draws` kept,
seed (`--seed`, athlete)) on its first D days for each D of `--days`, and per parameter that
varies between athletes the script reports the share of true values inside the central 90 %
interval and the mean squared z-score (truth − posterior mean)² / posterior variance (1 when the
intervals are as wide as the errors). With `--forecast C`, each athlete is also personalised on
its first C days and forecast from every later day (horizons 1 and 7; 400 samples): per target
the 50 % and 90 % coverage and the CRPS.

Writes a JSON record (config, seed, machine, load average at start and end, timings, results) to
`--out` (default benchmarks/results/personalize_coverage.json). Usage:

    .venv/bin/python benchmarks/personalize_coverage.py --athletes 150 --days 28 120 365 \
        [--forecast 14 28 --forecast-athletes 60 --forecast-days 90]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import load_average, machine_record  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "personalize_coverage.json"


def _cohort(n: int, days: int, seed: int):
    """The simulated cohort and its true population (`Population`, one source)."""
    from physiology_model.model import bayes
    from physiology_model.model.personalize import Population

    config = bayes.SimulationConfig(n_athletes=n, n_days=days, missing_share=0.1)
    arrays, truth = bayes.simulate_cohort(config, np.random.default_rng(seed))
    names = list(bayes.PriorConfig().params)
    population = Population.of_truth(truth, config.source, n_draws=20)
    varying = [name for i, name in enumerate(names) if truth["scale"][i] > 0]
    return arrays, truth, population, varying


def _head(series, days: int):
    from physiology_model.model.forecast import AthleteSeries

    return AthleteSeries(**{k: (v[:days] if isinstance(v, np.ndarray) else v)
                            for k, v in vars(series).items()})


def parameters(args: argparse.Namespace) -> dict:
    from physiology_model.model.personalize import personalize_series
    from physiology_model.model.population_fit import athlete_series

    arrays, truth, population, varying = _cohort(args.athletes, max(args.days), args.seed)
    out = {}
    for days in args.days:
        covered = {name: [] for name in varying}
        z2 = {name: [] for name in varying}
        ess = []
        started = time.perf_counter()
        for a in range(args.athletes):
            result = personalize_series(population, _head(athlete_series(arrays, a), days),
                                        np.random.default_rng([args.seed, a]), args.proposals,
                                        args.draws)
            ess.append(result.ess)
            for name in varying:
                draws, true = result.params[name], truth[name][a]
                low, high = np.quantile(draws, [0.05, 0.95])
                covered[name].append(bool(low <= true <= high))
                z2[name].append(float((true - draws.mean()) ** 2 / draws.var()))
        out[str(days)] = {
            "wall_s": round(time.perf_counter() - started, 1),
            "ess_median": float(np.median(ess)), "ess_min": float(np.min(ess)),
            "params": {name: {"cover90": float(np.mean(covered[name])),
                              "mean_z2": float(np.mean(z2[name]))} for name in varying}}
    return out


def _crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ensemble CRPS of samples (n, m) against y (n,)."""
    xs = np.sort(samples, axis=1)
    m = xs.shape[1]
    spread = np.sum((2 * np.arange(1, m + 1) - m - 1) * xs, axis=1) / m ** 2
    return np.mean(np.abs(xs - y[:, None]), axis=1) - spread


def forecasts(args: argparse.Namespace) -> dict:
    from physiology_model.dynamics.observation import logit_to_recovery
    from physiology_model.model.forecast import forecast_samples
    from physiology_model.model.personalize import personalize_series
    from physiology_model.model.population_fit import athlete_series

    arrays, _, population, _ = _cohort(args.forecast_athletes, args.forecast_days,
                                       args.seed + 1)
    out = {}
    for condition in args.forecast:
        hits = {}
        for a in range(args.forecast_athletes):
            series = athlete_series(arrays, a)
            post = personalize_series(population, _head(series, condition),
                                      np.random.default_rng([args.seed, a]), args.proposals,
                                      args.draws).params
            observed = {"hrv": series.hrv, "rhr": series.rhr,
                        "recovery": logit_to_recovery(series.recovery_logit)}
            for horizon in (1, 7):
                origins = np.arange(condition, len(series.hrv) - horizon + 1)
                samples = forecast_samples(post, series, origins, horizon, 400,
                                           np.random.default_rng([args.seed, a, horizon]))
                for target, values in observed.items():
                    y = values[origins + horizon - 1]
                    seen = np.isfinite(y)
                    x, y = samples[target][seen, :, horizon - 1], y[seen]
                    q = np.quantile(x, [0.25, 0.75, 0.05, 0.95], axis=1)
                    row = hits.setdefault(f"{target} h{horizon}",
                                          {"cover50": [], "cover90": [], "crps": []})
                    row["cover50"].append((y >= q[0]) & (y <= q[1]))
                    row["cover90"].append((y >= q[2]) & (y <= q[3]))
                    row["crps"].append(_crps(x, y))
        out[str(condition)] = {key: {k: float(np.mean(np.concatenate(v))) for k, v in row.items()}
                               for key, row in hits.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=150)
    parser.add_argument("--days", type=int, nargs="+", default=[28, 120, 365])
    parser.add_argument("--proposals", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--forecast", type=int, nargs="*", default=[])
    parser.add_argument("--forecast-athletes", type=int, default=60)
    parser.add_argument("--forecast-days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)

    record: dict = {"config": vars(args), "seed": args.seed,
                    "machine": machine_record(),
                    "load_start": load_average()}
    started = time.perf_counter()
    record["parameters"] = parameters(args)
    for days, r in record["parameters"].items():
        print(f"{days:>4s} days: ESS median {r['ess_median']:.0f}, {r['wall_s']} s; cover90 / "
              "mean z²: " + ", ".join(f"{n} {v['cover90']:.2f}/{v['mean_z2']:.2f}"
                                      for n, v in r["params"].items()), flush=True)
    if args.forecast:
        record["forecasts"] = forecasts(args)
        for condition, rows in record["forecasts"].items():
            for key, v in rows.items():
                print(f"forecast after {condition} days, {key:12s} cover50 {v['cover50']:.3f} "
                      f"cover90 {v['cover90']:.3f} CRPS {v['crps']:.4f}")
    record["load_end"] = load_average()
    record["total_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
