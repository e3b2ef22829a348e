"""Large-cohort fit (`periodize model fit --population-athletes K`): wall time and parameter
recovery on a synthetic cohort whose truth is known (issue 22 item 4, target (d)).

The cohort is `bayes.simulate_cohort` (N athletes × D days, 10 % of days missing so that every
athlete passes `assess_athletes`), written as a canonical parquet export and fitted by the CLI
itself (`model fit --all --population-athletes K --workers W`, in a subprocess, timed whole).
The model directory it writes is loaded back (`WorldModel.load`) and each athlete's posterior
draws are compared with its true parameters: per parameter the correlation and RMSE of the
posterior means against the truth and the coverage of the central 90 % intervals, separately
for the K athletes the NUTS fit saw and for the personalised ones.

`--full-fit` also fits the same cohort by NUTS on every athlete (the command without the flag,
same sampler settings) and scores it on the same two groups of athletes: that is the comparison
"recovery no worse than the full fit", feasible only for a small cohort on this machine. Without
it, the comparison is the one inside the population fit: personalised athletes against the
K athletes of its own NUTS fit (the full fit of that subset).

Writes a JSON record (config, seed, machine, load average at start and end, timings, recovery)
to `--out` (default benchmarks/results/large_cohort_fit.json). Usage:

    .venv/bin/python benchmarks/large_cohort_fit.py --athletes 100 --days 120 \
        --population-athletes 20 --workers 2 [--full-fit] [--no-residual]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import load_average, machine_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "large_cohort_fit.json"


def simulate(args: argparse.Namespace, directory: Path) -> dict:
    """The cohort's parquet export under `directory`; returns the truth."""
    from physiology_model.model import bayes
    from physiology_model.model.population_fit import arrays_frame

    config = bayes.SimulationConfig(n_athletes=args.athletes, n_days=args.days,
                                    missing_share=0.1)
    arrays, truth = bayes.simulate_cohort(config, np.random.default_rng(args.seed))
    directory.mkdir(parents=True, exist_ok=True)
    arrays_frame(arrays).to_parquet(directory / "cohort.parquet")
    return {"user_ids": list(arrays.user_ids), **truth}


def run_fit(args: argparse.Namespace, data: Path, out: Path, population: bool) -> dict:
    """One `periodize model fit` in a subprocess: its wall time and the load around it."""
    command = [sys.executable, "-m", "analysis.cli", "model", "fit", "--data", str(data),
               "--out", str(out), "--all", "--seed", str(args.seed), "--draws", str(args.draws),
               "--tune", str(args.tune), "--chains", str(args.chains),
               "--max-days", str(args.days)]
    if args.no_residual:
        command.append("--no-residual")
    if population:
        command += ["--population-athletes", str(args.population_athletes),
                    "--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load_before = load_average()
    started = time.perf_counter()
    log = out.with_suffix(".log")  # the fit's own lines, readable while it runs
    with open(log, "w") as stream:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=stream, check=False,
                              stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    text = log.read_text()
    if done.returncode not in (0, 3):  # 3: the fit's convergence checks failed (recorded)
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"model fit failed ({done.returncode})")
    meta = json.loads((out / "model.json").read_text())
    lines = [line for line in text.splitlines()
             if not line.startswith("calibrated") and "personalise:" not in line]
    return {"command": " ".join(command[1:]), "returncode": done.returncode,
            "wall_s": round(wall, 1), "load_before": load_before, "load_after": load_average(),
            "timings": meta["fit"].get("timings", {}),
            "diagnostics": {k: meta["diagnostics"].get(k) for k in
                            ("ok", "max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences")},
            "population_fit": {k: v for k, v in meta["fit"].get("population_fit", {}).items()
                               if k != "nuts_athletes"},
            "log": lines[-12:]}


def recovery(model_dir: Path, truth: dict, athletes: list[str]) -> dict:
    """Per parameter: correlation and RMSE of the posterior means against the truth, and the
    coverage of the central 90 % intervals, over `athletes`; plus means over the parameters
    that vary between athletes (pooled ones have one true value: no correlation)."""
    from physiology_model.dynamics.params import PARAM_NAMES
    from physiology_model.model.bayes import PriorConfig
    from physiology_model.model.world_model import WorldModel

    model = WorldModel.load(model_dir)
    index = {u: i for i, u in enumerate(truth["user_ids"])}
    rows = [index[u] for u in athletes]
    specs = PriorConfig().params
    out: dict = {"athletes": len(athletes), "params": {}}
    for name in PARAM_NAMES:
        draws = np.stack([model.athletes_[u][name] for u in athletes], axis=1)  # (D, A)
        true = np.asarray(truth[name])[rows]
        mean = draws.mean(axis=0)
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        pooled = bool(specs[name].pooled)
        corr = (float(np.corrcoef(mean, true)[0, 1])
                if not pooled and len(rows) > 2 and np.std(mean) > 0 else None)
        out["params"][name] = {"corr": corr,
                               "rmse": float(np.sqrt(np.mean((mean - true) ** 2))),
                               "sd_truth": float(np.std(true)),
                               "cover90": float(np.mean((low <= true) & (true <= high))),
                               "pooled": pooled}
    varying = [v for v in out["params"].values() if not v["pooled"]]
    corrs = [v["corr"] for v in varying if v["corr"] is not None]
    out["mean_corr"] = float(np.mean(corrs)) if corrs else None
    out["mean_cover90"] = float(np.mean([v["cover90"] for v in varying]))
    out["mean_rmse_over_sd"] = float(np.mean([v["rmse"] / v["sd_truth"] for v in varying
                                              if v["sd_truth"] > 0]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--population-athletes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--no-residual", action="store_true")
    parser.add_argument("--full-fit", action="store_true",
                        help="also fit every athlete by NUTS (small cohorts only)")
    parser.add_argument("--keep", default=None, help="keep the data and models in this folder")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)

    record: dict = {"config": vars(args), "seed": args.seed,
                    "machine": machine_record(),
                    "load_start": load_average()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        truth = simulate(args, work / "data")
        record["simulate_s"] = round(time.perf_counter() - started, 1)
        population_dir = work / "population_model"
        record["population_fit"] = run_fit(args, work / "data", population_dir, True)
        meta = json.loads((population_dir / "model.json").read_text())
        nuts = sorted(meta["fit"]["population_fit"]["nuts_athletes"])
        rest = sorted(set(meta["athletes"]) - set(nuts))
        groups = {"nuts_athletes": nuts, "personalised": rest, "all": sorted(meta["athletes"])}
        record["recovery"] = {"population_fit": {g: recovery(population_dir, truth, ids)
                                                 for g, ids in groups.items() if ids}}
        print(json.dumps({g: {k: r[k] for k in ("athletes", "mean_corr", "mean_cover90",
                                                 "mean_rmse_over_sd")}
                          for g, r in record["recovery"]["population_fit"].items()}),
              flush=True)
        if args.full_fit:
            full_dir = work / "full_model"
            record["full_fit"] = run_fit(args, work / "data", full_dir, False)
            record["recovery"]["full_fit"] = {g: recovery(full_dir, truth, ids)
                                              for g, ids in groups.items() if ids}
    record["load_end"] = load_average()
    record["total_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    for fit, groups_ in record["recovery"].items():
        for group, r in groups_.items():
            print(f"{fit:15s} {group:14s} n={r['athletes']:4d} corr {r['mean_corr']:.3f} "
                  f"cover90 {r['mean_cover90']:.3f} rmse/sd {r['mean_rmse_over_sd']:.3f}")
    print(f"population fit wall {record['population_fit']['wall_s']} s; load "
          f"{record['load_start']} → {record['load_end']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
