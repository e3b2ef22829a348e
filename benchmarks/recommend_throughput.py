"""Daily recommendations per second: `periodize recommend` (analysis.batch_recommend) end to end.

Synthetic athletes: a cohort drawn from the world model (`simulator.cohort.generate_cohort`,
`--seed`) lives `--history-days` days in the simulator under the seed's recovery rule; each
athlete's mornings (HRV, RHR, recovery) and sessions (with their TRIMP) are written as one
canonical daily CSV in its own folder, the last morning measured and not yet trained (today).
Those folders are what `recommend` reads, as it would read users' exports.

Planners: the MPC (no `--policy`) and the distilled planner (`--policy` of a small
`mpc-distilled` run trained here on `--distill-athletes` athletes for one round: its quality
does not matter for its speed). Each (planner, workers) pair plans the first `--athletes` (MPC:
`--mpc-athletes`) synthetic athletes, once, from a fresh process pool; the wall time includes
starting the workers and loading the model in each. The records give recommendations/s
(athletes planned per second of wall time) and, labelled `extrapolated`, the wall time that
rate implies for 10^5 athletes (computed here from the measured rate, not measured).
`meta.model_load_s` is the world model's load time in this process, the start-up every worker
pays (benchmarks/project_scale.py separates it from the per-athlete rate).

    .venv/bin/python benchmarks/recommend_throughput.py [--athletes 1000] [--mpc-athletes 1000]
        [--workers 1 2] [--history-days 42] [--seed 0]
        [--out benchmarks/results/recommend_throughput.json]
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
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.baselines import SeedRulePolicy  # noqa: E402
from analysis.batch_recommend import RecommendSpec, recommend  # noqa: E402
from analysis.benchmark import write_benchmark  # noqa: E402
from physiology_model.data.load import action_loads  # noqa: E402
from physiology_model.data.table import ACTIONS  # noqa: E402
from physiology_model.model.world_model import WorldModel  # noqa: E402
from simulator.cohort import generate_cohort  # noqa: E402
from simulator.env import EnvConfig, Simulation  # noqa: E402


def write_synthetic_exports(model, n: int, days: int, seed: int, out: Path) -> None:
    """`n` athlete folders of `days` canonical daily rows (module docstring)."""
    cohort = generate_cohort(model, n, seed=seed)
    sim = Simulation(cohort, n, EnvConfig(episode_days=days))
    obs = sim.reset(seed)
    policy = SeedRulePolicy()
    policy.reset(seed)
    start = pd.Timestamp("2026-01-01")
    columns = {k: np.full((days, n), np.nan) for k in
               ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "load_trimp")}
    sessions = np.full((days, n), -1)
    for d in range(days):
        for k in ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct"):
            columns[k][d] = sim.reading[k]
        if d == days - 1:
            break  # today: measured, not trained yet
        obs, _, _ = sim.step(policy.act(obs, sim.agent_mask.copy()))
        sessions[d] = sim.last_executed
        columns["load_trimp"][d] = action_loads(sim.last_executed).trimp
    dates = pd.date_range(start, periods=days, freq="D").strftime("%Y-%m-%d")
    for i in range(n):
        frame = pd.DataFrame({"date": dates, **{k: v[:, i].round(2) for k, v in columns.items()},
                              "session": [ACTIONS[a] if a >= 0 else "" for a in sessions[:, i]]})
        folder = out / f"athlete_{i:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / "daily.csv", index=False)


def _subset(src: Path, n: int, dst: Path) -> Path:
    """A folder with the first `n` athlete folders of `src` (their files hard-linked)."""
    for folder in sorted(p for p in src.iterdir() if p.is_dir())[:n]:
        (dst / folder.name).mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if not (dst / folder.name / f.name).exists():
                os.link(f, dst / folder.name / f.name)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "shipped"))
    parser.add_argument("--athletes", type=int, default=1000, help="distilled planner")
    parser.add_argument("--mpc-athletes", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--planners", nargs="+", default=["distilled", "mpc"],
                        choices=["distilled", "mpc"])
    parser.add_argument("--history-days", type=int, default=42)
    parser.add_argument("--distill-athletes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(ROOT / "build" / "recommend_throughput"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "recommend_throughput.json"))
    args = parser.parse_args(argv)

    work = Path(args.work)
    started = time.perf_counter()
    model = WorldModel.load(args.model)
    model_load_s = time.perf_counter() - started  # what every worker pays once at its start
    n_all = max(args.athletes, args.mpc_athletes)
    exports = work / f"exports_n{n_all}_d{args.history_days}_s{args.seed}"
    if not (exports / ".complete").exists():
        started = time.perf_counter()
        write_synthetic_exports(model, n_all, args.history_days, args.seed, exports)
        (exports / ".complete").write_text("")
        print(f"wrote {n_all} synthetic exports in {time.perf_counter() - started:.0f} s")
    policy_dir = None
    if "distilled" in args.planners:
        from agents.distill import DistillConfig, distill

        policy_dir = work / f"distilled_n{args.distill_athletes}_s{args.seed}"
        if not (policy_dir / "run.json").exists():
            cohort = generate_cohort(model, args.distill_athletes, seed=args.seed + 1)
            distill(model, cohort, seed=args.seed, out_dir=policy_dir.parent,
                    run_name=policy_dir.name, model_dir=args.model,
                    config=DistillConfig(rounds=1, max_epochs=5))
    records = []
    for planner in args.planners:
        n = args.athletes if planner == "distilled" else args.mpc_athletes
        data = _subset(exports, n, work / f"subset_{n}")
        spec = RecommendSpec(args.model, str(policy_dir) if planner == "distilled" else None,
                             7, args.seed)
        for workers in args.workers:
            started = time.perf_counter()
            rows = recommend(spec, data, workers=workers)
            wall = time.perf_counter() - started
            planned = len({r["athlete"] for r in rows if r["status"] == "ok"})
            rate = planned / wall
            rec = {"planner": planner, "workers": workers, "athletes": n, "planned": planned,
                   "errors": sum(r["status"] == "error" for r in rows), "wall_s": wall,
                   "recommendations_per_s": rate,
                   "extrapolated_wall_s_for_1e5": 1e5 / rate if rate > 0 else None}
            records.append(rec)
            print(json.dumps(rec))
    by = {(r["planner"], r["workers"]): r["recommendations_per_s"] for r in records}
    for planner in args.planners:
        if (planner, 1) in by and (planner, 2) in by:
            records.append({"planner": planner, "metric": "speedup_2_workers",
                            "value": by[(planner, 2)] / by[(planner, 1)]})
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "config": {k: v for k, v in vars(args).items()}, "seed": args.seed,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "model_load_s": model_load_s, "load_average_at_end": list(os.getloadavg()),
            "note": "extrapolated_* fields are computed from the measured rate, not measured"}
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
