"""Daily recommendations per second: `periodize recommend` (analysis.batch_recommend) end to end.

Synthetic athletes: a cohort drawn from the world model (`simulator.cohort.generate_cohort`,
`--seed`) lives `--history-days` days in the simulator under the seed's recovery rule; each
athlete's mornings (HRV, RHR, recovery) and sessions (with their TRIMP) are written as one
canonical daily CSV in its own folder, the last morning measured and not yet trained (today).
Those folders are what `recommend` reads, as it would read users' exports.

Planners: the MPC (no `--policy`) and the distilled planner (`--policy` of a small
`mpc-distilled` run trained here on `--distill-athletes` athletes for one round: its quality
does not matter for its speed). Each run (`--runs PLANNER:WORKERS:ATHLETES`, WORKERS a number
of local processes or `ray2`: a local two-node Ray cluster, one CPU each, head and worker
started here with `ray start --head --block` / `ray start --address --block` and stopped at
the end by their process ids) plans the first ATHLETES synthetic athletes once; the wall time
includes starting the workers and loading the model in each. The records give
recommendations/s (athletes planned per second of wall time) and, labelled `projected_*`,
the wall time that rate implies for 10^3, 10^4 and 10^5 athletes (computed from the measured
rate, not measured; sizes that were measured are the runs' own). `meta.model_load_s` is the
world model's load time in this process, the start-up every worker pays once. The machine's
load average is recorded at the start and the end: on a shared machine the rates depend on it.

    .venv/bin/python benchmarks/recommend_throughput.py
        [--runs mpc:1:400 mpc:2:400 mpc:ray2:400 distilled:1:100 distilled:2:100 ...]
        [--history-days 42] [--seed 0] [--out benchmarks/results/recommend_throughput.json]
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


class LocalRayCluster:
    """A two-node Ray cluster on this machine (module docstring), one CPU per node: `address`
    while it runs; `stop()` ends the two `ray start --block` processes it started."""

    def __init__(self, work: Path, cpus_per_node: int = 1) -> None:
        import socket
        import subprocess

        def free_port() -> int:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                return sock.getsockname()[1]

        import secrets

        ray = str(Path(sys.executable).parent / "ray")
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        # `ray start` turns token authentication on: a fresh token for this cluster, in this
        # process's environment too (the driver and the nodes' workers need it)
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                           "RAY_USAGE_STATS_ENABLED": "0"})
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                             if p)}
        log = (work / "ray.log").open("w")
        common = ["--block", f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
        self.processes: list = []
        try:
            self.processes.append(subprocess.Popen(
                [ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                 f"--ray-client-server-port={free_port()}", *common], env=env, stdout=log,
                stderr=subprocess.STDOUT))
            self._wait_nodes(1)
            self.processes.append(subprocess.Popen(
                [ray, "start", f"--address={self.address}", *common], env=env, stdout=log,
                stderr=subprocess.STDOUT))
            self._wait_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _wait_nodes(self, n: int, timeout: float = 180.0) -> None:
        import subprocess

        deadline = time.time() + timeout
        probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                 "print(sum(x['Alive'] for x in ray.nodes()))")
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError("a ray start process ended; see ray.log")
            out = subprocess.run([sys.executable, "-c", probe, self.address],
                                 capture_output=True, text=True, env=os.environ)
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(2.0)
        raise RuntimeError(f"the local Ray cluster did not reach {n} nodes in {timeout:.0f} s")

    def stop(self) -> None:
        import signal

        for p in reversed(self.processes):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.processes):
            try:
                p.wait(timeout=90)
            except Exception:  # noqa: BLE001 - the process would not end: kill that one
                p.kill()
                p.wait()


def _parse_run(text: str) -> tuple[str, str, int]:
    planner, workers, n = text.split(":")
    if planner not in ("mpc", "distilled") or not (workers.isdigit() or workers == "ray2"):
        raise argparse.ArgumentTypeError(f"--runs wants PLANNER:WORKERS:ATHLETES, got {text}")
    return planner, workers, int(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "shipped"))
    parser.add_argument("--runs", type=_parse_run, nargs="+",
                        default=[_parse_run(r) for r in (
                            "mpc:1:400", "mpc:2:400", "mpc:ray2:400",
                            "distilled:1:100", "distilled:2:100", "distilled:ray2:100")])
    parser.add_argument("--history-days", type=int, default=42)
    parser.add_argument("--distill-athletes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(ROOT / "build" / "recommend_throughput"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "recommend_throughput.json"))
    args = parser.parse_args(argv)

    load_at_start = list(os.getloadavg())
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = WorldModel.load(args.model)
    model_load_s = time.perf_counter() - started  # what every worker pays once at its start
    n_all = max(n for _, _, n in args.runs)
    exports = work / f"exports_n{n_all}_d{args.history_days}_s{args.seed}"
    if not (exports / ".complete").exists():
        started = time.perf_counter()
        write_synthetic_exports(model, n_all, args.history_days, args.seed, exports)
        (exports / ".complete").write_text("")
        print(f"wrote {n_all} synthetic exports in {time.perf_counter() - started:.0f} s")
    policy_dir = None
    if any(planner == "distilled" for planner, _, _ in args.runs):
        from agents.distill import DistillConfig, distill

        policy_dir = work / f"distilled_n{args.distill_athletes}_s{args.seed}"
        if not (policy_dir / "run.json").exists():
            cohort = generate_cohort(model, args.distill_athletes, seed=args.seed + 1)
            distill(model, cohort, seed=args.seed, out_dir=policy_dir.parent,
                    run_name=policy_dir.name, model_dir=args.model,
                    config=DistillConfig(rounds=1, max_epochs=5))
    records = []
    cluster = None
    try:
        for planner, workers, n in args.runs:
            data = _subset(exports, n, work / f"subset_{n}")
            spec = RecommendSpec(args.model,
                                 str(policy_dir) if planner == "distilled" else None, 7,
                                 args.seed)
            ray_address = None
            if workers == "ray2":
                if cluster is None:
                    cluster = LocalRayCluster(work)
                ray_address = cluster.address
            load_before = list(os.getloadavg())
            started = time.perf_counter()
            rows = recommend(spec, data, workers=2 if workers == "ray2" else int(workers),
                             ray_address=ray_address, progress=False)
            wall = time.perf_counter() - started
            if ray_address is not None:
                import ray

                ray.shutdown()
            planned = len({r["athlete"] for r in rows if r["status"] == "ok"})
            rate = planned / wall
            rec = {"planner": planner, "workers": workers, "athletes": n, "planned": planned,
                   "errors": sum(r["status"] == "error" for r in rows), "wall_s": wall,
                   "recommendations_per_s": rate,
                   **{f"projected_wall_s_for_{k}": (10 ** e / rate if rate > 0 else None)
                      for k, e in (("1e3", 3), ("1e4", 4), ("1e5", 5))},
                   "load_average_before": load_before,
                   "load_average_after": list(os.getloadavg())}
            records.append(rec)
            print(json.dumps(rec), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    by = {(r["planner"], r["workers"], r["athletes"]): r["recommendations_per_s"]
          for r in records}
    for (planner, workers, n), rate in by.items():
        if workers != "1" and (planner, "1", n) in by:
            records.append({"planner": planner, "metric": f"speedup_{workers}_over_1_worker",
                            "athletes": n, "value": rate / by[(planner, "1", n)]})
        if workers == "ray2" and (planner, "2", n) in by:
            records.append({"planner": planner, "metric": "ray2_rate_over_2_local_workers",
                            "athletes": n, "value": rate / by[(planner, "2", n)]})
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "config": {k: (v if k != "runs" else [":".join(map(str, r)) for r in v])
                       for k, v in vars(args).items()}, "seed": args.seed,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "model_load_s": model_load_s, "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
            "note": ("projected_* fields are computed from the measured rate, not measured; "
                     "the machine is shared with other jobs, so the rates depend on its load "
                     "(load averages recorded per run)")}
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
