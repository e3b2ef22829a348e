"""MPC planner settings compared on a tuning cohort, paired against the default planner.

Each setting (a JSON object of `MPCConfig` overrides; `cem` and `objective` as nested objects)
runs one episode of every athlete of a cohort drawn with `--cohort-seed` (default 3000: neither
the validation cohort, seed 1000, nor the test cohort, seed 4000, of
`benchmarks/full_evaluation.py`), with the same athletes and random streams as random play and
the oracle. Reported per setting: mean ΔP and return, the share of the oracle's ΔP gain over
random, the paired difference to the default planner (mean ± SE, Wilcoxon p) and the wall time
per athlete-day of the batched episode.

    .venv/bin/python benchmarks/mpc_sweep.py [--n 100] [--cohort-seed 3000]
        [--setting NAME=JSON ...] [--out benchmarks/results/mpc_sweep.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import RandomPolicy
from agents.mpc import MPCConfig, MPCPlanner, OraclePlanner
from analysis.benchmark import gap_record, write_benchmark
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mpc_latency import SIM_SEED, run_episode  # one episode runner for both benchmarks

DEFAULT_SETTINGS = {
    "default": {},
    "risk1": {"objective": {"risk_weight": 1.0}},
    "risk0.5": {"objective": {"risk_weight": 0.5}},
    "risk0.25": {"objective": {"risk_weight": 0.25}},
    "risk0": {"objective": {"risk_weight": 0.0}},
    "horizon28": {"cem": {"horizon_days": 28}},
    "horizon28_risk0": {"cem": {"horizon_days": 28}, "objective": {"risk_weight": 0.0}},
    "personalize_often": {"personalize_days": [7, 14, 21, 28, 42, 56, 70]},
    "personalize_full": {"personalize_proposals": 2000, "personalize_draws": 400,
                         "personalize_rounds": 3},
}
"""A first pass (100 athletes) also tried 16 scenarios and 128 candidates: neither helped.
`benchmarks/results/mpc_sweep.json` was written while the default risk weight was still 1
(its `default` is today's `risk1`), which is how 0.25 was chosen."""
METRICS = ("delta_performance", "return", "penalty", "injured_days", "mean_load_trimp")


def mpc_config(overrides: dict[str, Any]) -> MPCConfig:
    """`MPCConfig()` with JSON overrides (nested `cem` / `objective` objects)."""
    base = MPCConfig()
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ("cem", "objective"):
            changes[key] = dataclasses.replace(getattr(base, key), **value)
        elif key == "personalize_days":
            changes[key] = tuple(int(d) for d in value)
        else:
            changes[key] = value
    return dataclasses.replace(base, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--n", type=int, default=100, help="athletes of the tuning cohort")
    parser.add_argument("--cohort-seed", type=int, default=3000)
    parser.add_argument("--setting", action="append", default=[],
                        help="NAME=JSON of MPCConfig overrides (default: a built-in set)")
    parser.add_argument("--out", default="benchmarks/results/mpc_sweep.json")
    args = parser.parse_args(argv)
    settings = dict(DEFAULT_SETTINGS) if not args.setting else {"default": {}}
    for item in args.setting:
        name, _, text = item.partition("=")
        settings[name] = json.loads(text)
    configs = {name: mpc_config(over) for name, over in settings.items()}  # fail before running
    model = WorldModel.load(args.model)
    cohort = generate_cohort(model, args.n, seed=args.cohort_seed)
    started = time.perf_counter()
    athlete_days = args.n * EnvConfig().episode_days
    runs = {"random": run_episode(lambda sim: RandomPolicy(), cohort, args.n),
            "oracle": run_episode(lambda sim: OraclePlanner(sim, seed=0), cohort, args.n)}
    for name, config in configs.items():
        runs[name] = run_episode(lambda sim, c=config: MPCPlanner(model, c, seed=0), cohort,
                                 args.n)
        summary, wall = runs[name]
        per_day = wall / athlete_days
        print(f"{name:20s} ΔP {summary['delta_performance'].mean():6.3f}  return "
              f"{summary['return'].mean():7.3f}  injured days "
              f"{summary['injured_days'].mean():5.2f}  {1000 * per_day:.2f} ms/athlete-day",
              flush=True)
    dp = {k: v[0]["delta_performance"] for k, v in runs.items()}
    ret = {k: v[0]["return"] for k, v in runs.items()}
    records = []
    for name in ["random", "oracle", *configs]:
        summary = runs[name][0]
        record = {"setting": name, "overrides": settings.get(name),
                  **{f"{m}_mean": float(np.mean(summary[m])) for m in METRICS},
                  **gap_record(dp, name, "default" if name in configs else None),
                  "ms_per_athlete_day": 1000 * runs[name][1] / athlete_days, "n": args.n}
        if "p_vs_default" in record:
            record["return_minus_default"] = float((ret[name] - ret["default"]).mean())
        records.append(record)
        pct = record["pct_of_oracle_gain"]
        print(f"{name:20s} {float('nan') if pct is None else pct:5.1f} % of the oracle's gain"
              + (f", ΔP vs default {record['delta_p_minus_default']:+.3f} ± "
                 f"{record['delta_p_minus_default_se']:.3f} (p {record['p_vs_default']:.2g})"
                 if "p_vs_default" in record else ""))
    meta = {"command": "python benchmarks/mpc_sweep.py " + " ".join(argv or sys.argv[1:]),
            "cohort_seed": args.cohort_seed, "sim_seed": SIM_SEED, "model": args.model,
            "wall_s": time.perf_counter() - started}
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
