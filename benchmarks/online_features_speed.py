"""Speed of the incremental feature builder against recomputing the whole history each day.

Feeds the signals the simulator produces (HRV, RHR, recovery and injury to `observe`; TRIMP,
Z4/Z5 and strength minutes of random actions to `record_load`; weekday, age, sex, and a cycle
day and an event for some athletes) to `OnlineFeatures` for N athletes, and times
`observe + record_load` per day (median after a warm-up). For comparison it times the naive way:
`compute_features` on the whole history so far, every day. Prints a table and writes a JSON list
of records. Each record gives the wall-clock median and the median CPU time of the thread
(`time.thread_time`): on a shared machine the wall clock includes the time other processes held
the core, and the CPU time is what the work itself costs.

    .venv/bin/python benchmarks/online_features_speed.py [--sizes 16384 1024 1] [--days 60] \\
        [--warmup 10] [--naive-n 1024] [--naive-days 90] \\
        [--out benchmarks/results/online_features_speed.json] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from physiology_model.data.load import action_loads
from physiology_model.data.table import ACTIONS
from physiology_model.features.batch import compute_features
from physiology_model.features.online import OnlineFeatures


def make_days(rng: np.random.Generator, n_athletes: int, n_days: int) -> dict[str, np.ndarray]:
    """Simulator-like inputs `(n_athletes, n_days)`: 5 % of physiology missing, injuries rare."""
    shape = (n_athletes, n_days)

    def holes(x: np.ndarray) -> np.ndarray:
        return np.where(rng.random(shape) < 0.05, np.nan, x)

    loads = action_loads(rng.integers(0, len(ACTIONS), shape))
    cycle = (np.arange(n_days) + rng.integers(0, 28, (n_athletes, 1))) % 28 + 1.0
    event = rng.integers(0, 2 * n_days, (n_athletes, 1)) - np.arange(n_days)
    return {
        "hrv_rmssd_ms": holes(np.exp(rng.normal(4.1, 0.3, shape))),
        "rhr_bpm": holes(rng.normal(56.0, 4.0, shape)),
        "recovery_pct": holes(rng.uniform(5.0, 99.0, shape)),
        "injury": (rng.random(shape) < 0.01).astype(float),
        "load_trimp": loads.trimp, "z4_min": loads.hi_min, "z5_min": np.zeros(shape),
        "strength_min": loads.strength_min,
        "weekday": np.broadcast_to(np.arange(n_days) % 7, shape),
        "cycle_day": np.where(rng.random((n_athletes, 1)) < 0.5, cycle, np.nan),
        "days_to_event": np.where(rng.random((n_athletes, 1)) < 0.3, event, np.nan).astype(float),
        "age_years": rng.uniform(18.0, 70.0, n_athletes),
        "sex": rng.choice([1.0, -1.0], n_athletes),
    }


_PHYSIOLOGY = ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "injury")


def time_online(inputs: dict[str, np.ndarray], warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU seconds of `observe + record_load` for each day after the first `warmup`
    days."""
    n_athletes, n_days = inputs["hrv_rmssd_ms"].shape
    # Day-major copies: a simulator hands over each day's values as contiguous (N,) arrays.
    by_day = {c: np.ascontiguousarray(v.T) for c, v in inputs.items() if v.ndim == 2}
    online = OnlineFeatures(n_athletes, age_years=inputs["age_years"], sex=inputs["sex"])
    wall, cpu = [], []
    for d in range(n_days):
        day = {c: by_day[c][d] for c in _PHYSIOLOGY}
        start, start_cpu = time.perf_counter(), time.thread_time()
        online.observe(day, by_day["weekday"][d], days_to_event=by_day["days_to_event"][d],
                       cycle_day=by_day["cycle_day"][d])
        online.record_load(by_day["load_trimp"][d], z4_min=by_day["z4_min"][d],
                           z5_min=by_day["z5_min"][d], strength_min=by_day["strength_min"][d])
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return np.array(wall[warmup:]), np.array(cpu[warmup:])


def time_full_recompute(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU seconds to get each day's features by `compute_features` on the history up
    to that day."""
    n_days = inputs["hrv_rmssd_ms"].shape[1]
    signals = ("load_trimp", "z4_min", "z5_min", "strength_min") + _PHYSIOLOGY
    wall, cpu = [], []
    for d in range(n_days):
        start, start_cpu = time.perf_counter(), time.thread_time()
        compute_features({c: inputs[c][:, :d + 1] for c in signals}, inputs["weekday"][:, :d + 1],
                         age_years=inputs["age_years"], sex=inputs["sex"],
                         days_to_event=inputs["days_to_event"][:, :d + 1],
                         cycle_day=inputs["cycle_day"][:, :d + 1])[:, d]
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return np.array(wall), np.array(cpu)


def record(impl: str, n_athletes: int, wall: np.ndarray, cpu: np.ndarray, how: str) -> dict:
    """One JSON record; online days are summarised by their median, the full recompute (whose
    cost grows with the day) by its mean over the run."""
    summary = np.median if impl == "online" else np.mean
    per_day = float(summary(wall))
    return {"impl": impl, "n_athletes": n_athletes,
            "days_per_s": round(1.0 / per_day, 1),
            "athlete_days_per_s": round(n_athletes / per_day),
            "ms_per_day": round(1e3 * per_day, 3),
            "ms_per_day_p90": round(1e3 * float(np.quantile(wall, 0.9)), 3),
            "cpu_ms_per_day": round(1e3 * float(summary(cpu)), 3),
            "days_timed": int(wall.size), "per_day": how}


def run(sizes: list[int], days: int, warmup: int, naive_n: int, naive_days: int, seed: int
        ) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for n in sizes:
        wall, cpu = time_online(make_days(rng, n, warmup + days), warmup)
        records.append(record("online", n, wall, cpu, "median of observe + record_load"))
    if naive_n > 0 and naive_days > 0:
        wall, cpu = time_full_recompute(make_days(rng, naive_n, naive_days))
        records.append(record("full_recompute", naive_n, wall, cpu,
                              f"mean over days 1..{naive_days} of compute_features on the "
                              "history so far"))
    context = {"command": "python benchmarks/online_features_speed.py " + " ".join(sys.argv[1:]),
               "seed": seed, "cpu_count": os.cpu_count(), "machine": platform.machine(),
               "load_average_1min": round(os.getloadavg()[0], 2),
               "python": platform.python_version(), "numpy": np.__version__}
    return [{**r, **context} for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16384, 1024, 1])
    parser.add_argument("--days", type=int, default=60, help="timed days per size")
    parser.add_argument("--warmup", type=int, default=30,
                        help="untimed days first (one turn of the 28-day ring buffers)")
    parser.add_argument("--naive-n", type=int, default=1024)
    parser.add_argument("--naive-days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/online_features_speed.json"))
    args = parser.parse_args()
    if args.days < 1 or args.warmup < 0 or min(args.sizes) < 1:
        parser.error("--days and --sizes must be positive, --warmup non-negative")
    records = run(args.sizes, args.days, args.warmup, args.naive_n, args.naive_days, args.seed)
    for r in records:
        print(f"{r['impl']:>15} N={r['n_athletes']:>6}: {r['ms_per_day']:9.3f} ms/day wall "
              f"(p90 {r['ms_per_day_p90']:.3f}), {r['cpu_ms_per_day']:9.3f} ms/day CPU, "
              f"{r['days_per_s']:>9} days/s, {r['athlete_days_per_s']:>11} athlete-days/s")
    print(f"load average (1 min) at the end: {records[-1]['load_average_1min']} on "
          f"{records[-1]['cpu_count']} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
