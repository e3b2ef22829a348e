"""What periodic performance tests would buy the MPC planner.

The planner's shortfall from the oracle is the performance response it cannot observe
(`mpc_gap.py`: told the true performance parameters, it gains more than the oracle). No
wearable reading reveals it, but an athlete can run a time trial. This runs, on a tuning cohort
(seed 3000 by default, as `mpc_sweep.py` and `mpc_gap.py`), the planner as it is (prior medians
of the performance response), the planner with D prior draws and no tests (what the draws alone
do), and the planner with the same draws weighed by tests every K days (`Simulation.
performance_test`: the latent performance times exp(cv·ε); the first on day 0, before
training; `MPCPlanner.observe_performance`; `mpc_latency.run_episode`), against random play
and the oracle on the same athletes and random streams, and the best baseline of every
evaluation so far (fixed periodization). Each row: ΔP, its share of the oracle's ΔP gain over
random (95 % bootstrap interval over athletes), the paired ΔP difference to the planner as it
is and to fixed periodization (Wilcoxon p), return, injured days, executed hard-rule
violations, the mean over athletes of the most frequent session's share of days, and the
median effective sample size of the weighted draws after the last test.

By default the tests are free: no session is given up for them, so the gains are an upper
bound for tests at that cadence and precision (a real time trial is a hard session, and it is
one more thing to ask of an athlete). `--test-session NAME` makes the test that day's session
instead (`mpc_latency.run_episode`: e.g. `tempo_threshold` for a 5-km time trial, on the
first morning from the due one that the rules allow it).

    .venv/bin/python benchmarks/performance_tests.py [--n 200] [--cohort-seed 3000 | --cohort F]
        [--draws 1024] [--every 28 14 7] [--cv 0.015] [--extra-cv 0.027] [--jobs 2]
        [--test-session tempo_threshold] [--distilled RUN_DIR ...] [--reuse EARLIER.json]
        [--blind-oracle]
        [--out benchmarks/results/performance_tests.json]

`--blind-oracle` adds the oracle told everything but the performance response
(`agents.mpc.PerformanceBlindOracle`): what knowing all that a wearable could reveal is worth.
`--jobs` runs the policies in that many processes (each on the same cohort and streams);
`--cohort` takes a saved cohort (`periodize cohort`) instead, e.g. a held-out one, and
`--no-draws-row` leaves out the planner with draws but no tests (`--every` and `--extra-cv`
with no values leave out the tested planners). `--distilled RUN_DIR ...` adds distilled
planners (`agents.distill`), named `distilled:<directory name>`; one distilled with tests
(`DistillConfig.tests_every`) is handed tests at the cadence and CV it was distilled with.
Each row keeps its per-athlete ΔP, so `--reuse EARLIER.json` (an output on the same athletes,
streams and model) takes the rows of the same name from it instead of running them again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import FixedPeriodizationPolicy, RandomPolicy
from agents.mpc import MPCConfig, MPCPlanner, OraclePlanner, PerformanceBlindOracle
from analysis.benchmark import gap_record, write_benchmark
from physiology_model.data.table import ACTIONS
from physiology_model.model.world_model import WorldModel
from simulator.cohort import Cohort, generate_cohort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mpc_latency import SIM_SEED, TEST_SEED, run_episode  # the MPC benchmarks' episodes

BASELINES = {"fixed_periodization": FixedPeriodizationPolicy, "random": RandomPolicy}
ORACLES = {"oracle": OraclePlanner, "oracle_blind_to_performance": PerformanceBlindOracle}


def _settings(args: argparse.Namespace) -> dict[str, tuple[MPCConfig, int, float]]:
    """The planner's settings by name: (config, test cadence in days or 0, test CV)."""
    drawn = MPCConfig(performance_draws=args.draws)
    settings = {"mpc": (MPCConfig(), 0, 0.0)}
    if args.draws_row:
        settings[f"mpc_draws{args.draws}"] = (drawn, 0, 0.0)
    for every in args.every:
        settings[f"tests_every{every}_cv{args.cv:g}"] = (
            replace(drawn, performance_test_cv=args.cv), every, args.cv)
    for cv in args.extra_cv:
        settings[f"tests_every{min(args.every)}_cv{cv:g}"] = (
            replace(drawn, performance_test_cv=cv), min(args.every), cv)
    return settings


def _cohort(args: argparse.Namespace, model: WorldModel) -> Cohort:
    if args.cohort:
        return Cohort.load(args.cohort)
    return generate_cohort(model, args.n, seed=args.cohort_seed)


def _distilled_tests(run_dir: str) -> tuple[int, float]:
    """(cadence in days or 0, CV) of the tests a distilled run was labelled with."""
    config = json.loads((Path(run_dir) / "run.json").read_text())["agent_config"]
    return int(config.get("tests_every", 0)), float(config.get("test_cv", 0.0))


def _stats(summary: dict[str, np.ndarray], ess: float | None) -> dict[str, Any]:
    """A row's figures besides ΔP, from its episode summary."""
    return {"return_mean": float(summary["return"].mean()),
            "injured_days_mean": float(summary["injured_days"].mean()),
            "executed_violations": int(summary["executed_violations"].sum()),
            "max_action_share_mean": float(summary["max_action_share"].mean()),
            "performance_ess_median_last_test": ess}


def _run(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], np.ndarray]:
    """Policy `name` on the cohort → (`_stats`, per-athlete ΔP)."""
    model = WorldModel.load(args.model)
    cohort = _cohort(args, model)
    if name in BASELINES:
        summary, ess = run_episode(lambda sim: BASELINES[name](), cohort, args.n)[0], None
    elif name in ORACLES:
        summary, ess = run_episode(lambda sim: ORACLES[name](sim, seed=0), cohort,
                                   args.n)[0], None
    else:
        if name in args.distilled_dirs:
            from agents.training import load_agent

            run_dir, every, cv = args.distilled_dirs[name]
            policy = load_agent(run_dir, model=model)
        else:
            config, every, cv = args.settings[name]
            policy = MPCPlanner(model, config, seed=0)
        summary = run_episode(lambda sim: policy, cohort, args.n, every, cv,
                              args.test_session)[0]
        ess_list = policy.belief.diagnostics["performance_ess"][-args.n:]
        ess = float(np.median(ess_list)) if every else None
    return _stats(summary, ess), summary["delta_performance"]


REUSE_META = ("cohort", "cohort_seed", "sim_seed", "test_seed", "model", "n")
"""What must match for `--reuse` to take rows from an earlier output."""


def _reused(path: str | None, meta: dict[str, Any]) -> dict[str, tuple[dict, np.ndarray]]:
    """Rows of an earlier output (`--reuse`) on the same athletes and streams, by name."""
    if path is None:
        return {}
    old = json.loads(Path(path).read_text())
    differ = [k for k in REUSE_META if old["meta"].get(k) != meta[k]]
    if differ:
        raise SystemExit(f"{path} is not on the same athletes and streams ({', '.join(differ)} "
                         f"differ): it cannot lend rows")
    keys = ("return_mean", "injured_days_mean", "executed_violations",
            "max_action_share_mean", "performance_ess_median_last_test")
    return {r["policy"]: ({k: r[k] for k in keys}, np.asarray(r["delta_performance_by_athlete"]))
            for r in old["records"] if "delta_performance_by_athlete" in r}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--n", type=int, default=200, help="athletes of the tuning cohort")
    parser.add_argument("--cohort-seed", type=int, default=3000)
    parser.add_argument("--cohort", default=None, help="a saved cohort file (all its athletes)")
    parser.add_argument("--no-draws-row", dest="draws_row", action="store_false")
    parser.add_argument("--draws", type=int, default=1024,
                        help="prior draws of the performance response per athlete")
    parser.add_argument("--every", type=int, nargs="*", default=[28, 14, 7],
                        help="test cadences (days) to run at --cv")
    parser.add_argument("--cv", type=float, default=MPCConfig().performance_test_cv)
    parser.add_argument("--extra-cv", type=float, nargs="*", default=[0.027],
                        help="also run the shortest cadence at these CVs")
    parser.add_argument("--test-session", choices=ACTIONS, default=None,
                        help="the test is that day's session (default: free)")
    parser.add_argument("--distilled", nargs="*", default=[], metavar="RUN_DIR",
                        help="distilled planners to run too")
    parser.add_argument("--reuse", default=None, metavar="JSON",
                        help="an earlier output on the same athletes: its rows of the same "
                             "name are not run again")
    parser.add_argument("--blind-oracle", action="store_true",
                        help="also run the oracle blind to the performance response "
                             "(agents.mpc.PerformanceBlindOracle)")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    parser.add_argument("--out", default="benchmarks/results/performance_tests.json")
    args = parser.parse_args(argv)
    if args.cohort:
        args.n = Cohort.load(args.cohort).n
    if args.n < 2 or args.draws < 1 or min(args.every, default=1) < 1 or args.jobs < 1:
        parser.error("--n must be ≥ 2, --draws, --every and --jobs ≥ 1")
    if args.extra_cv and not args.every:
        parser.error("--extra-cv runs the shortest of --every: give --every too")
    suffix = f"_as_{args.test_session}" if args.test_session else ""
    args.test_session = ACTIONS.index(args.test_session) if args.test_session else None
    args.distilled_dirs = {}  # name → (run directory, test cadence, test CV)
    for d in args.distilled:
        every, cv = _distilled_tests(d)
        args.distilled_dirs[f"distilled:{Path(d).name}{suffix if every else ''}"] = (d, every, cv)
    started = time.perf_counter()
    meta = {"command": "python benchmarks/performance_tests.py " + " ".join(argv or sys.argv[1:]),
            "cohort": args.cohort, "cohort_seed": None if args.cohort else args.cohort_seed,
            "sim_seed": SIM_SEED, "test_seed": TEST_SEED, "model": args.model, "n": args.n,
            "test_session": None if suffix == "" else suffix[4:], "reused_from": args.reuse,
            "jobs": args.jobs}
    settings = {(name + suffix if value[1] else name): value
                for name, value in _settings(args).items()}
    args.settings = settings
    oracles = ["oracle", *(["oracle_blind_to_performance"] if args.blind_oracle else [])]
    names = [*oracles, *settings, *args.distilled_dirs, *BASELINES]  # the slowest first
    results = _reused(args.reuse, meta)
    todo = [name for name in names if name not in results]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results.update(zip(todo, pool.map(_run, todo, [args] * len(todo))))
    order = [*BASELINES, *oracles, *settings, *args.distilled_dirs]
    dp = {name: results[name][1] for name in order}
    students = list(args.distilled_dirs)
    records = []
    for name in order:
        config, every, cv = settings.get(name, (None, 0, 0.0))
        if name in args.distilled_dirs:
            every, cv = args.distilled_dirs[name][1:]
        record = {"policy": name, "test_every_days": every or None,
                  "test_cv": cv if every else None,
                  "performance_draws": config.performance_draws if config else None,
                  "reused": name not in todo,
                  "delta_performance_mean": float(dp[name].mean()),
                  **gap_record(dp, name, None if name in ("random", "oracle") else "mpc"),
                  **{k: v for k, v in gap_record(dp, name, "fixed_periodization").items()
                     if not k.startswith("pct_") and name != "random"},
                  **results[name][0], "n": args.n}
        if name in students[1:]:  # paired with the first distilled planner too
            record.update({k: v for k, v in gap_record(dp, name, students[0]).items()
                           if not k.startswith("pct_")})
        record["delta_performance_by_athlete"] = [round(float(x), 6) for x in dp[name]]
        records.append(record)
        ci = record["pct_of_oracle_gain_ci95"]
        vs = "".join(f"  vs {ref} {record[f'delta_p_minus_{ref}']:+.3f} ± "
                     f"{record[f'delta_p_minus_{ref}_se']:.3f}"
                     for ref in ("mpc", *students[:1]) if f"delta_p_minus_{ref}" in record)
        print(f"{name:28s} ΔP {record['delta_performance_mean']:6.3f}  "
              f"{record['pct_of_oracle_gain']:6.1f} % [{ci[0]:.0f}, {ci[1]:.0f}]{vs}  "
              f"return {record['return_mean']:7.3f}  injured days "
              f"{record['injured_days_mean']:.2f}  violations {record['executed_violations']}  "
              f"top session {record['max_action_share_mean']:.2f}", flush=True)
    meta["wall_s"] = time.perf_counter() - started
    write_benchmark(args.out, meta, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
