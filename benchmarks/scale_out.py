"""Wall time of the sharded evaluation and of `periodize tune` with 1 and more workers.

Evaluation (`analysis.shards.evaluate_sharded`): a cohort of `--athletes` drawn with
`--cohort-seed`, `--policies` over `--days`-day episodes cut into shards of `--shard-size`,
run with each of `--workers`; the records give the wall time, the speed-up over one worker and
whether every per-athlete metric of every policy is identical to the one-worker run (it must
be). Tune (`analysis.tune.tune`, with `--tune-trials`): a fresh SAC study per worker count on
small settings (`--tune-steps` env steps of 8 lanes, a 16-athlete validation cohort over 30
days), trials completed per hour of wall time. The extrapolations are labelled as such and
computed from the measured rates.

    .venv/bin/python benchmarks/scale_out.py [--athletes 1000] [--days 90] [--shard-size 125]
        [--workers 1 2] [--tune-trials 4] [--out benchmarks/results/scale_out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.benchmark import write_benchmark
from analysis.shards import PolicySpec, evaluate_sharded
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig


def _identical(a, b) -> bool:
    return all(np.array_equal(a[n].metrics[m], b[n].metrics[m], equal_nan=True)
               for n in a for m in a[n].metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "shipped"))
    parser.add_argument("--athletes", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--policies", nargs="+",
                        default=["random", "seed_rule", "hrv_guided", "mpc", "oracle"])
    parser.add_argument("--shard-size", type=int, default=125)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cohort-seed", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--tune-trials", type=int, default=4, help="0: skip the tune part")
    parser.add_argument("--tune-steps", type=int, default=1440)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale_out.json"))
    args = parser.parse_args(argv)

    model = WorldModel.load(args.model)
    records = []
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        cohort = Path(tmp) / "cohort.npz"
        generate_cohort(model, args.athletes, seed=args.cohort_seed).save(cohort)
        spec = PolicySpec(tuple(args.policies), args.model, seed=args.seed)
        config = EnvConfig(episode_days=args.days)
        reference, base = None, None
        for workers in args.workers:
            started = time.perf_counter()
            runs, _ = evaluate_sharded(spec, str(cohort), config, args.seed,
                                       shard_size=args.shard_size, workers=workers)
            wall = time.perf_counter() - started
            reference = reference or runs
            base = base or wall
            rec = {"part": "evaluate", "workers": workers, "athletes": args.athletes,
                   "days": args.days, "shard_size": args.shard_size, "wall_s": wall,
                   "speedup_vs_first": base / wall,
                   "identical_to_first": _identical(reference, runs),
                   "policy_shard_s": {n: r.wall_s for n, r in runs.items()},
                   "extrapolated_wall_s_for_1000_athletes": wall * 1000 / args.athletes}
            records.append(rec)
            print(rec, flush=True)
        if args.tune_trials:
            from analysis.tune import TuneSpec, tune

            train, val = Path(tmp) / "train.npz", Path(tmp) / "val.npz"
            generate_cohort(model, 16, seed=1).save(train)
            generate_cohort(model, 16, seed=2).save(val)
            for workers in args.workers:
                out = Path(tmp) / f"study_w{workers}"
                tune_spec = TuneSpec("sac", str(train), str(val), str(out), args.tune_trials,
                                     steps=args.tune_steps, n_envs=8, val_days=30,
                                     evaluations=2, seed=0)
                started = time.perf_counter()
                summary = tune(tune_spec, workers=workers)
                wall = time.perf_counter() - started
                finished = summary["finished"]
                rec = {"part": "tune", "agent": "sac", "workers": workers,
                       "trials_finished": finished, "wall_s": wall,
                       "trials_per_hour": 3600.0 * finished / wall,
                       "trial_settings": {"steps": args.tune_steps, "n_envs": 8,
                                          "val_athletes": 16, "val_days": 30,
                                          "evaluations": 2}}
                records.append(rec)
                print(rec, flush=True)
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "config": vars(args), "seed": args.seed, "cohort_seed": args.cohort_seed,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()),
            "note": "extrapolated_* fields are computed from the measured rates, not measured; "
                    "the machine's 2 cores are shared with other jobs (load average above)"}
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
