"""Simulator throughput: single env, the batched env, and Gymnasium's SyncVectorEnv, one run.

Every implementation steps the same cohort (drawn from the shipped world model) with random
actions; observation building, the safety mask, the hazard and the reward are all included.
Reported per implementation and N: athlete-days per second, the median over `--repeats` timed
blocks of `--days` steps after one untimed warm-up block (reset excluded: it is amortised over a
90-day episode). SyncVectorEnv over single envs is the baseline the batched env is compared with
at the same N (it is skipped above `--sync-max` because building it takes minutes there).

    .venv/bin/python benchmarks/env_throughput.py [--sizes 1 64 1024 16384] [--days 20]
        [--repeats 3] [--sync-max 1024] [--seed 0] [--out benchmarks/results/env_throughput.json]

Writes a JSON list of records {impl, n_envs, athlete_days_per_s, ...} plus one "ratio" record
per N where both were measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _median_rate(step, n_envs: int, days: int, repeats: int) -> float:
    step(days)  # warm-up block
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(days)
        rates.append(n_envs * days / (time.perf_counter() - start))
    return float(np.median(rates))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 16384])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sync-max", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/env_throughput.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import gymnasium as gym

    from physiology_model.model.world_model import WorldModel
    from simulator.cohort import generate_cohort
    from simulator.env import BatchedPeriodizationEnv, EnvConfig, PeriodizationEnv

    config = EnvConfig(episode_days=10_000)  # no episode end inside the timed blocks
    cohort = generate_cohort(WorldModel.load(ROOT / "models/shipped"), max(args.sizes),
                             args.seed)
    rng = np.random.default_rng(args.seed)
    common = {"seed": args.seed, "days_per_block": args.days, "repeats": args.repeats,
              "machine": platform.processor() or platform.machine(),
              "command": "python benchmarks/env_throughput.py " + " ".join(sys.argv[1:])}
    records = []

    single = PeriodizationEnv(cohort, config)
    single.reset(seed=args.seed)

    def step_single(days: int) -> None:
        for _ in range(days):
            single.step(int(rng.integers(0, 6)))

    rate = _median_rate(step_single, 1, args.days * 10, args.repeats)
    records.append({"impl": "single_env", "n_envs": 1, "athlete_days_per_s": rate, **common})
    print(f"single_env        N=1      {rate:12,.0f} athlete-days/s", flush=True)

    for n in args.sizes:
        env = BatchedPeriodizationEnv(cohort, n, config, seed=args.seed)
        env.reset()

        def step_batched(days: int, env=env, n=n) -> None:
            for _ in range(days):
                env.step(rng.integers(0, 6, size=n))

        rate = _median_rate(step_batched, n, args.days, args.repeats)
        records.append({"impl": "batched", "n_envs": n, "athlete_days_per_s": rate, **common})
        print(f"batched           N={n:<6d} {rate:12,.0f} athlete-days/s", flush=True)
        if n > args.sync_max:
            continue
        sync = gym.vector.SyncVectorEnv(
            [lambda i=i: PeriodizationEnv(cohort, config, lane=i) for i in range(n)])
        sync.reset(seed=args.seed)

        def step_sync(days: int, sync=sync, n=n) -> None:
            for _ in range(days):
                sync.step(rng.integers(0, 6, size=n))

        sync_days = max(2, args.days // max(1, n // 64))
        rate_sync = _median_rate(step_sync, n, sync_days, args.repeats)
        records.append({"impl": "sync_vector_env", "n_envs": n,
                        "athlete_days_per_s": rate_sync, **common})
        records.append({"impl": "ratio_batched_over_sync", "n_envs": n,
                        "athlete_days_per_s": None, "ratio": rate / rate_sync, **common})
        print(f"sync_vector_env   N={n:<6d} {rate_sync:12,.0f} athlete-days/s "
              f"(batched is {rate / rate_sync:,.0f}x)", flush=True)
        sync.close()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return records


if __name__ == "__main__":
    main()
