"""`periodize evaluate`: every policy on a held-out cohort, and the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from analysis.cli.common import _load_model, _say
from physiology_model.data.table import ACTIONS
from physiology_model.jsonio import jsonable

DEFAULT_POLICIES = ("random", "seed_rule", "hrv_guided", "fixed_periodization", "bc", "mpc",
                    "oracle")


def _evaluate(args: argparse.Namespace) -> int:
    from analysis.benchmark import (
        PerformanceTesting,
        athlete_table,
        evaluate_policies,
        policy_factories,
    )
    from analysis.report import write_report
    from physiology_model.data.table import atomic_write
    from simulator.cohort import Cohort
    from simulator.env import EnvConfig

    if args.policies is None:
        args.policies = [*DEFAULT_POLICIES[:-1], *(["mpc_tested"] if args.tests_every else []),
                         DEFAULT_POLICIES[-1]]
    tests = None
    if args.test_session and not args.tests_every:
        raise ValueError("--test-session needs --tests-every")
    if args.tests_every:
        from agents.mpc import MPCConfig

        cv = MPCConfig.performance_test_cv if args.test_cv is None else args.test_cv
        tests = PerformanceTesting(args.tests_every, cv, None if args.test_session is None
                                   else ACTIONS.index(args.test_session))
    cohort = Cohort.load(args.cohort)
    model = _load_model(args.model)
    bc_policy = None
    if "bc" in args.policies:
        from agents.bc import BCPolicy, train_bc

        if args.bc:
            bc_policy = BCPolicy.load(args.bc)
        elif args.data:
            from physiology_model.data.loaders import load_exports

            _say("training behaviour cloning on the real athletes' sessions")
            bc_policy = train_bc(load_exports(args.data).frame, seed=0)
    config = EnvConfig(episode_days=args.days)
    if args.workers > 1 or args.shard_size or args.ray_address:
        runs, records, factories = _evaluate_sharded(args, config, tests, bc_policy)
    else:
        factories = policy_factories(args.policies, model=model, bc_policy=bc_policy,
                                     runs=args.runs or (), device=args.device, seed=args.seed,
                                     test_cv=args.test_cv)
        runs, records = evaluate_policies(factories, cohort, config, seed=args.seed,
                                          progress=_say, tests=tests)
    if tests is not None and not any("tested" in r.extra for r in runs.values()):
        _say("note: no policy read the performance tests (mpc_tested and planners distilled "
             "with tests do)")
    real = None
    if args.real:
        real = _evaluate_real(args, model, factories)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if real is not None:
        payload_real = json.dumps(jsonable({k: v for k, v in real.items() if k != "twin_runs"},
                                           strict=True), indent=1,
                                  allow_nan=False) + "\n"
        atomic_write(out / "real.json", lambda tmp: Path(tmp).write_text(payload_real))
    meta = {"command": "periodize " + " ".join(args.argv),
            "cohort": args.cohort, "n_athletes": cohort.n, "episode_days": args.days,
            "seed": args.seed, "shard_size": args.shard_size, "model": args.model,
            "policies": list(runs),
            "runs": list(args.runs or ()), "wall_s": {n: r.wall_s for n, r in runs.items()},
            "performance_tests": None if tests is None else {
                "every_days": tests.every, "cv": tests.cv, "session": args.test_session,
                "seed": tests.seed,
                "handed_to": [n for n, r in runs.items() if "tested" in r.extra]}}
    payload = json.dumps(jsonable(records, strict=True), indent=1, allow_nan=False) + "\n"
    atomic_write(out / "results.json", lambda tmp: Path(tmp).write_text(payload))
    table = athlete_table(runs)
    atomic_write(out / "athletes.csv",  # 12 significant digits: means to 1e-12
                 lambda tmp: table.to_csv(tmp, index=False, float_format="%.12g"))
    atomic_write(out / "config.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))
    write_report(out / "report.html", runs, records, meta=meta, run_dirs=args.runs or (),
                 forecast_json=Path(args.forecast) if args.forecast else None, real=real)
    _say(f"wrote {out / 'results.json'}, {out / 'athletes.csv'} (per athlete) and "
         f"{out / 'report.html'}")
    for name, run in runs.items():
        m = run.metrics
        print(f"{name:20s} ΔP {np.mean(m['delta_performance']):+6.2f} ± "
              f"{np.std(m['delta_performance']):.2f}   return {np.mean(m['return']):+7.2f}   "
              f"rec>60 {np.mean(m['pct_recovery_gt60']):5.1f}%   "
              f"violations executed {int(np.sum(m['executed_violations']))}")
    return 0


def _evaluate_sharded(args: argparse.Namespace, config, tests, bc_policy):
    """(policy, athlete shard) tasks over workers or Ray (analysis/shards.py)."""
    import tempfile

    from analysis.shards import PolicySpec, build_factories, evaluate_sharded

    with tempfile.TemporaryDirectory(prefix="periodize-bc-") as tmp:
        bc_path = None
        if bc_policy is not None:  # the workers load it from a file
            bc_path = str(bc_policy.save(Path(tmp) / "bc.npz"))
        spec = PolicySpec(tuple(args.policies), args.model, tuple(args.runs or ()), bc_path,
                          args.device, args.seed, args.test_cv)
        runs, records = evaluate_sharded(spec, args.cohort, config, args.seed,
                                         shard_size=args.shard_size, workers=args.workers,
                                         ray_address=args.ray_address, tests=tests, say=_say)
        factories = build_factories(spec) if args.real else {}
    return runs, records, factories


def _evaluate_real(args: argparse.Namespace, model, factories: dict) -> dict:
    """Sim-to-real and policies-in-twins on the real athletes of `--real` (analysis/real.py)."""
    from analysis.real import (
        held_out_athletes,
        policies_in_twins,
        sim_to_real,
        summarize_sim_to_real,
    )
    from physiology_model.data.loaders import load_exports

    frame = load_exports(args.real).frame
    athletes = held_out_athletes(model, frame, include_fitted=args.real_include_fitted)
    _say(f"sim-to-real: replaying {len(athletes)} real athletes through their twins")
    rows = sim_to_real(model, frame, athletes, seed=args.seed)
    twin_factories = {k: v for k, v in factories.items() if k != "oracle"}
    _say("policies inside the twins, against each athlete's actual plan")
    twin_runs, twin_records, ids = policies_in_twins(model, frame, athletes, twin_factories,
                                                     days=args.real_days, seed=args.seed,
                                                     progress=_say)
    for r in twin_records:
        if "p_vs_best_baseline" in r:
            r["p_vs_actual_plan"] = r.pop("p_vs_best_baseline")
            r.pop("best_baseline", None)
        r["setting"] = "twins"
    return {"athletes": athletes, "sim_to_real": rows,
            "sim_to_real_summary": summarize_sim_to_real(rows),
            "twin_athletes": ids, "twin_days": args.real_days, "twin_records": twin_records,
            "twin_runs": twin_runs}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    ev = sub.add_parser("evaluate", help="every policy on a held-out cohort; report")
    ev.add_argument("--model", required=True,
                       help="world model directory (`shipped`: the one fitted on the shipped data)")
    ev.add_argument("--cohort", required=True, help="held-out cohort file")
    ev.add_argument("--policies", nargs="+", default=None,
                    help="default: " + " ".join(DEFAULT_POLICIES) + " (and mpc_tested with "
                         "--tests-every)")
    ev.add_argument("--runs", nargs="*", help="trained run directories to evaluate too")
    ev.add_argument("--data", nargs="+", help="export paths (to train the bc baseline)")
    ev.add_argument("--bc", help="a saved bc policy (bc.json) instead of training one")
    ev.add_argument("--forecast", default="docs/results/forecast_eval.json",
                    help="forecast evaluation JSON to include in the report")
    ev.add_argument("--real", nargs="+", help="export paths of real athletes: sim-to-real and "
                                              "policies inside their digital twins")
    ev.add_argument("--real-days", type=int, default=60,
                    help="days of each real athlete's actual plan compared in its twin")
    ev.add_argument("--real-include-fitted", action="store_true",
                    help="also use athletes the world model was fitted on")
    ev.add_argument("--days", type=int, default=90, help="episode length")
    ev.add_argument("--seed", type=int, default=12345, help="episode seed (never used in "
                                                            "training)")
    ev.add_argument("--tests-every", type=int, default=0, metavar="DAYS",
                    help="hand a performance test every DAYS mornings to the policies that "
                         "read them (mpc_tested, planners distilled with tests)")
    ev.add_argument("--test-cv", type=float, default=None,
                    help="the test's coefficient of variation, which mpc_tested assumes too "
                         "(default: MPCConfig.performance_test_cv, a 5-km time trial's)")
    ev.add_argument("--test-session", choices=ACTIONS, default=None,
                    help="the test is that day's session (default: free)")
    ev.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--workers", type=int, default=1,
                    help="local processes running (policy, athlete shard) tasks")
    ev.add_argument("--shard-size", type=int, default=0,
                    help="athletes per shard (0: the whole cohort). Results depend on it and "
                         "on --seed, never on --workers or Ray")
    ev.add_argument("--ray-address", default=None,
                    help="run the tasks on this Ray cluster (host:port, auto, or local)")
    ev.add_argument("--out", required=True, help="output directory")
    ev.set_defaults(func=_evaluate)
