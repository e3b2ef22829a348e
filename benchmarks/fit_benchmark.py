"""Fit time, peak memory and diagnostics of the hierarchical model: nutpie vs PyMC NUTS vs ADVI.

Two data sets, every sampler on each, in one run:

- `real`: the shipped exports (`data/real`), `prepare_arrays(max_days=...)`;
- `synthetic`: `bayes.simulate_cohort` with 100 athletes × 180 days (known parameters, so the
  run also reports the 94 % HDI coverage and the median absolute error of each fit, which shows
  how far the ADVI preview is from NUTS).

Each fit runs in its own Python process so that its peak resident memory (`ru_maxrss` of the
process and of the chain processes it started) is its own. Writes
`benchmarks/results/fit_benchmark.json` with the configuration, seeds, machine, load average
and every number. Usage:

    .venv/bin/python benchmarks/fit_benchmark.py [--samplers nutpie pymc advi]
        [--datasets real synthetic] [--max-days 365] [--draws 500 --tune 1000 --chains 4]
        [--append]   # add to the results already in --out (each record keeps its config)

The machine's load average is recorded before and after each fit: on a shared machine, timings
are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import machine_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "fit_benchmark.json"


def _arrays(dataset: str, args: argparse.Namespace):
    from physiology_model.data.loaders import load_exports
    from physiology_model.model import bayes
    from physiology_model.model.arrays import prepare_arrays

    if dataset == "real":
        table = load_exports([str(ROOT / "data" / "real")])
        return prepare_arrays(table, max_days=args.max_days), None
    config = bayes.SimulationConfig(n_athletes=args.synthetic_athletes,
                                    n_days=args.synthetic_days)
    seed = np.random.SeedSequence(args.seed).spawn(2)[0]
    return bayes.simulate_cohort(config, np.random.default_rng(seed))


def _recovery_scores(idata, truth) -> dict[str, float]:
    import arviz as az

    from physiology_model.dynamics import params
    from physiology_model.model import bayes
    draws = bayes.posterior_athlete_params(idata)
    inside, rel_errors = [], {}
    for name in params.PARAM_NAMES:
        hdi = az.hdi(draws[name][None], hdi_prob=0.94)
        inside.append((hdi[:, 0] <= truth[name]) & (truth[name] <= hdi[:, 1]))
        rel_errors[name] = float(np.median(np.abs(np.median(draws[name], 0) - truth[name])))
    return {"hdi94_coverage": float(np.mean(inside)), "median_abs_error": rel_errors}


def run_one(dataset: str, sampler: str, args: argparse.Namespace) -> dict:
    """One fit in this process; returns its record."""
    from physiology_model.model import bayes
    start = time.perf_counter()
    arrays, truth = _arrays(dataset, args)
    prepared = time.perf_counter()
    model = bayes.build_model(arrays)
    built = time.perf_counter()
    config = bayes.SamplerConfig(sampler=sampler, draws=args.draws, tune=args.tune,
                                 chains=args.chains, seed=args.seed,
                                 advi_iterations=args.advi_iterations)
    idata = bayes.sample(model, config)
    done = time.perf_counter()
    stats = idata.sample_stats if hasattr(idata, "sample_stats") else None
    steps = None
    if stats is not None and "n_steps" in stats:
        steps = float(stats["n_steps"].mean())
    elif stats is not None and "tree_depth" in stats:
        steps = float((2 ** stats["tree_depth"] - 1).mean())
    record = {
        "dataset": dataset, "sampler_requested": sampler, "sampler": idata.attrs["sampler"],
        "n_athletes": arrays.n_athletes, "n_days": arrays.n_days,
        "athlete_days": int(arrays.n_valid.sum()),
        "observations": {t: int(np.isfinite(arrays.target(t)).sum())
                         for t in ("hrv", "rhr", "recovery")},
        "prepare_s": prepared - start, "build_s": built - prepared,
        "fit_wall_s": done - built, "timings": json.loads(idata.attrs["timings"]),
        "mean_leapfrog_steps_per_draw": steps,
        "diagnostics": json.loads(idata.attrs["diagnostics"]),
        "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0,
        "peak_rss_note": "max RSS of the fitting process plus the largest of its chain "
                         "processes (PyMC NUTS runs chains in child processes; nutpie in threads)",
        "sampler_config": asdict(config),
        "versions": json.loads(idata.attrs["versions"]),
    }
    if truth is not None:
        record["recovery"] = _recovery_scores(idata, truth)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["nutpie", "pymc", "advi"])
    parser.add_argument("--datasets", nargs="+", default=["real", "synthetic"])
    parser.add_argument("--max-days", type=int, default=365)
    parser.add_argument("--synthetic-athletes", type=int, default=100)
    parser.add_argument("--synthetic-days", type=int, default=180)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--advi-iterations", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--append", action="store_true",
                        help="keep the results already in --out and add these runs to them")
    parser.add_argument("--single", nargs=2, metavar=("DATASET", "SAMPLER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single:
        record = run_one(args.single[0], args.single[1], args)
        print("RECORD " + json.dumps(record), flush=True)
        return 0

    passthrough = [f"--max-days={args.max_days}",
                   f"--synthetic-athletes={args.synthetic_athletes}",
                   f"--synthetic-days={args.synthetic_days}", f"--draws={args.draws}",
                   f"--tune={args.tune}", f"--chains={args.chains}",
                   f"--advi-iterations={args.advi_iterations}", f"--seed={args.seed}"]
    results = []
    earlier_configs = []
    if args.append and args.out.exists():
        earlier = json.loads(args.out.read_text())
        results = earlier["results"]
        earlier_configs = earlier.get("earlier_configs", []) + [earlier["config"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        for sampler in args.samplers:
            load_before = os.getloadavg()
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, __file__, "--single", dataset, sampler, *passthrough],
                capture_output=True, text=True, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RECORD ")]
            if proc.returncode != 0 or not lines:
                record = {"dataset": dataset, "sampler_requested": sampler, "error":
                          (proc.stderr or proc.stdout)[-3000:]}
            else:
                record = json.loads(lines[-1][len("RECORD "):])
            record["process_wall_s"] = time.perf_counter() - started
            record["load_average_before"] = load_before
            record["load_average_after"] = os.getloadavg()
            results.append(record)
            diag = record.get("diagnostics", {})
            print(f"{dataset:10s} {sampler:7s} wall {record['process_wall_s']:7.1f} s  "
                  f"peak {record.get('peak_rss_mb', float('nan')):7.0f} MB  "
                  f"r_hat {diag.get('max_r_hat', float('nan')):.3f}  "
                  f"ess {diag.get('min_ess_bulk', float('nan')):.0f}  "
                  f"div {diag.get('divergences', '-')}  ok {diag.get('ok', '-')}", flush=True)
            # Write after every fit, so a long run that is cut short keeps what it measured.
            args.out.write_text(json.dumps({
                "config": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items() if k != "single"},
                "earlier_configs": earlier_configs,
                "machine": machine_record(),
                "results": results,
            }, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
