"""The simulation, training, planning and evaluation sub-commands of `periodize`.

`periodize cohort`, `periodize train`, `periodize plan` and `periodize evaluate`; each parses its
arguments, calls the library and prints what it wrote. Errors in the input end as a `DataError`
(one line, exit 2, see analysis/cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from physiology_model.data.table import ACTIONS
from physiology_model.errors import DataError
from physiology_model.jsonio import jsonable


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load_model(directory: str):
    from physiology_model.model.world_model import WorldModel, resolve_model_dir

    return WorldModel.load(resolve_model_dir(directory))


# -- cohort ------------------------------------------------------------------------------------
def _cohort(args: argparse.Namespace) -> int:
    from simulator.cohort import CohortConfig, generate_cohort, twin_cohort

    model = _load_model(args.model)
    config = CohortConfig(event_share=args.event_share)
    if args.twins:
        from physiology_model.data.loaders import load_exports

        frame = load_exports(args.twins).frame
        cohort = twin_cohort(model, frame, args.seed, config=config, model_dir=args.model)
    else:
        cohort = generate_cohort(model, args.n, args.seed, config=config, source=args.source,
                                 model_dir=args.model)
    cohort.save(args.out)
    kind = cohort.meta["kind"]
    print(f"wrote {args.out}: {cohort.n} {kind} athletes (seed {args.seed})")
    return 0


# -- train -------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from simulator.cohort import Cohort

    out = Path(args.out)
    if args.agent == "bc":
        from agents.bc import train_bc
        from physiology_model.data.loaders import load_exports

        if not args.data:
            raise DataError("(arguments)", "--agent bc trains on real data: give --data PATH")
        policy = train_bc(load_exports(args.data).frame, seed=args.seed)
        out.mkdir(parents=True, exist_ok=True)
        policy.save(out / "bc.json")
        (out / "run.json").write_text(json.dumps({"agent": "bc", "seed": args.seed,
                                                  "data": args.data}, indent=1) + "\n")
        print(f"wrote {out}: behaviour cloning of the real athletes' sessions")
        return 0
    from agents.training import agent_config, train

    if not args.cohort:
        raise DataError("(arguments)", f"--agent {args.agent} trains in simulation: give "
                                       f"--cohort FILE (periodize cohort ...)")
    overrides, env_config = _agent_config(args.agent_config)
    if (out / "run.json").exists():
        raise DataError(str(out), "already holds a training run; choose another --out or "
                                  "remove it")
    if args.agent == "mpc-distilled":
        return _distill(args, out, overrides, env_config)
    try:
        config = agent_config(args.agent, overrides)
    except (ValueError, TypeError) as exc:
        raise DataError("--agent-config", str(exc)) from None
    cohort = Cohort.load(args.cohort)
    max_seconds = None if args.max_minutes is None else 60.0 * args.max_minutes
    run_dir = train(args.agent, cohort, args.steps, seed=args.seed, device=args.device,
                    out_dir=out.parent, run_name=out.name, n_envs=args.n_envs,
                    agent_config=config, torch_threads=args.threads, max_seconds=max_seconds,
                    env_config=env_config)
    print(f"wrote {run_dir}")
    return 0


def _agent_config(value: str | None):
    """`--agent-config`: a JSON object, inline or in a file (what `periodize tune` writes as
    best.json), of learner settings; its optional "reward" object sets the env's reward
    (`simulator.rewards.RewardConfig` fields). Returns (learner overrides, EnvConfig or
    None)."""
    from dataclasses import asdict

    from agents.sac import config_from_dict
    from simulator.env import EnvConfig
    from simulator.rewards import RewardConfig

    if not value:
        return {}, None
    where = "--agent-config"
    text = value
    if not value.lstrip().startswith("{") and Path(value).is_file():
        where = value
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(where, f"cannot be read ({exc})") from None
    try:
        overrides = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError
        raise DataError(where, f"not JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise DataError(where, "must be a JSON object of settings")
    reward = overrides.pop("reward", None)
    if reward is None:
        return overrides, None
    if not isinstance(reward, dict):
        raise DataError(where, "'reward' must be a JSON object of RewardConfig fields")
    try:
        reward_config = config_from_dict(RewardConfig, {**asdict(RewardConfig()), **reward})
    except (ValueError, TypeError) as exc:
        raise DataError(where, f"reward: {exc}") from None
    return overrides, EnvConfig(reward=reward_config)


def _distill(args: argparse.Namespace, out: Path, overrides: dict, env_config=None) -> int:
    """`periodize train --agent mpc-distilled` (arguments already checked by `_train`)."""
    from dataclasses import asdict

    from agents.distill import DistillConfig, distill
    from agents.sac import config_from_dict
    from simulator.cohort import Cohort

    if not args.model:
        raise DataError("(arguments)", "--agent mpc-distilled imitates the MPC planner: give "
                                       "--model MODEL_DIR")
    try:
        config = config_from_dict(DistillConfig, {**asdict(DistillConfig()), **overrides})
    except (ValueError, TypeError) as exc:
        raise DataError("--agent-config", str(exc)) from None
    model = _load_model(args.model)
    run_dir = distill(model, Cohort.load(args.cohort), seed=args.seed, out_dir=out.parent,
                      run_name=out.name, config=config, model_dir=args.model,
                      env_config=env_config)
    print(f"wrote {run_dir}")
    return 0


# -- plan --------------------------------------------------------------------------------------
def _plan(args: argparse.Namespace) -> int:
    from agents.recommend import plan_details

    details = plan_details(args.model, args.data, athlete=args.athlete, days=args.days,
                           policy_dir=args.policy, seed=args.seed, event=args.event,
                           tests=args.tests)
    result = details.plan
    if args.html:
        from analysis.plan_page import write_plan_page

        write_plan_page(result, details, args.html)
        print(f"wrote {args.html}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return 0
    print(f"{len(result['days'])}-day plan for {result['athlete']} from {result['start']}, "
          f"the export's last morning (planner: {result['planner']})")
    if "event" in result:
        print(f"  event: {result['event']['date']}, {result['event']['days_away']} days away")
    if result["days"] and result["days"][0].get("why"):
        print(f"  this morning: {result['days'][0]['why']}")
    guess = {k: "*" if v != "athlete" else "" for k, v in result["forecast_basis"].items()}
    for day in result["days"]:
        lo, hi = day["recovery_pct_interval"]
        print(f"  {day['date']}  {day['session']:16s} {day['load_trimp']:5.0f} TRIMP   "
              f"recovery {day['recovery_pct']:4.0f}% [{lo:3.0f}-{hi:3.0f}]{guess['recovery']}   "
              f"HRV {day['hrv_ms']:5.1f} ms{guess['hrv']}"
              + (f"   ({day['reason']})" if day.get("reason") else ""))
    for note in result.get("notes", []):
        print(f"  note: {note}")
    alone = [k if k != "hrv" else "HRV" for k, v in guess.items() if v]
    if alone:
        print(f"  * {' and '.join(alone)} forecast from the model alone: none in this export")
    return 0


# -- recommend ---------------------------------------------------------------------------------
def _recommend(args: argparse.Namespace) -> int:
    from analysis.recommend import (
        RecommendSpec,
        recommend,
        summarize_rows,
        write_recommendations,
    )

    spec = RecommendSpec(args.model, args.policy, args.days, args.seed)
    rows = recommend(spec, args.data, workers=args.workers, ray_address=args.ray_address)
    write_recommendations(rows, args.out, spec)
    counts = summarize_rows(rows)
    print(f"wrote {args.out}: {counts['planned']} athletes planned, {counts['failed']} "
          f"could not be (status 'error', with the reason)")
    for row in rows:
        if row["status"] == "error":
            print(f"  {row['athlete']}: {row['error']}", file=sys.stderr)
    return 0


# -- tune --------------------------------------------------------------------------------------
def _tune(args: argparse.Namespace) -> int:
    from analysis.tune import TuneSpec, tune

    spec = TuneSpec(args.agent, args.cohort, args.val_cohort, args.out, args.trials,
                    storage=args.storage, study_name=args.study_name, model_dir=args.model,
                    steps=args.steps, n_envs=args.n_envs, seed=args.seed,
                    trial_minutes=args.trial_minutes, evaluations=args.evaluations,
                    val_days=args.val_days, heartbeat_s=args.heartbeat)
    summary = tune(spec, workers=args.workers, ray_address=args.ray_address)
    states = {}
    for t in summary["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    print(f"study {summary['study']} in {summary['storage']}: "
          + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    best = summary["best"]
    if best is None:
        print("no trial completed yet")
        return 1
    print(f"best: trial {best['number']}, validation ΔP share of the oracle "
          f"{best['value']:.1f} %, run {best['run_dir']}")
    print(f"wrote {Path(args.out) / 'best.json'} (periodize train --agent-config) and "
          f"{Path(args.out) / 'study.json'}")
    return 0


# -- daily -------------------------------------------------------------------------------------
def _daily(args: argparse.Namespace) -> int:
    from analysis.daily import format_results, run_daily
    from analysis.daily_report import format_report, report
    from analysis.daily_store import DailyStore

    if args.report:
        if not Path(args.db).is_file():
            raise DataError(args.db, "no such store (run `periodize daily` without --report "
                                     "first)")
        with DailyStore(args.db) as store:
            rep = report(store)
            if args.html:
                from analysis.plan_page import write_daily_page

                write_daily_page(store, rep, args.html)
        if args.json:
            sys.stdout.write(json.dumps(jsonable(rep, strict=True), indent=1) + "\n")
        else:
            print(format_report(rep))
        if args.html:
            print(f"wrote {args.html}")
        return 0
    if not args.model or not args.data:
        raise DataError("(arguments)", "periodize daily needs --model and --data (or --report)")
    results = run_daily(args.model, args.data, args.db, policy_dir=args.policy, date=args.date,
                        feel=args.feel, athlete=args.athlete, ab=args.ab, seed=args.seed)
    print(format_results(results))
    return 0


# -- evaluate ----------------------------------------------------------------------------------
DEFAULT_POLICIES = ("random", "seed_rule", "hrv_guided", "fixed_periodization", "bc", "mpc",
                    "oracle")
"""What `periodize evaluate` runs without `--policies` (the oracle last)."""


def _evaluate(args: argparse.Namespace) -> int:
    from analysis.benchmark import PerformanceTesting, evaluate_policies, policy_factories
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
    atomic_write(out / "config.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))
    write_report(out / "report.html", runs, records, meta=meta, run_dirs=args.runs or (),
                 forecast_json=Path(args.forecast) if args.forecast else None, real=real)
    _say(f"wrote {out / 'results.json'} and {out / 'report.html'}")
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
    """Add the sub-commands to `periodize`'s parser."""
    cohort = sub.add_parser("cohort", help="draw synthetic athletes (or digital twins)")
    cohort.add_argument("--model", required=True,
                       help="world model directory (`shipped`: the one fitted on the shipped data)")
    cohort.add_argument("--n", type=int, default=200, help="number of synthetic athletes")
    cohort.add_argument("--seed", type=int, required=True)
    cohort.add_argument("--out", required=True, help="cohort file (.npz)")
    cohort.add_argument("--source", default=None, help="device population to draw from")
    cohort.add_argument("--event-share", type=float, default=0.0,
                        help="share of athletes with a planned event")
    cohort.add_argument("--twins", nargs="+", default=None,
                        help="export paths: digital twins of these real athletes instead")
    cohort.set_defaults(func=_cohort)

    train = sub.add_parser("train", help="train an agent in simulation (or bc on real data)")
    train.add_argument("--agent", required=True,
                       choices=["sac", "sac-continuous", "ppo", "bc", "mpc-distilled"])
    train.add_argument("--model", help="world model directory (mpc-distilled: the planner's)")
    train.add_argument("--cohort", help="training cohort file")
    train.add_argument("--data", nargs="+", help="export paths (bc only)")
    train.add_argument("--steps", type=int, default=200_000, help="environment steps")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--n-envs", type=int, default=256, help="athletes per batched step")
    train.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads (the networks are small: on 2 shared cores one "
                            "thread was ~12x faster per gradient step than two)")
    train.add_argument("--agent-config", default=None, metavar="JSON",
                       help='learner settings over the defaults, e.g. \'{"gamma": 0.995}\', or '
                            'a JSON file of them (periodize tune writes best.json)')
    train.add_argument("--max-minutes", type=float, default=None,
                       help="stop training after this much wall time (the run is saved)")
    train.add_argument("--out", required=True, help="run directory")
    train.set_defaults(func=_train)

    plan = sub.add_parser("plan", help="a 7-day plan for a real athlete's export")
    plan.add_argument("--model", required=True,
                       help="world model directory (`shipped`: the one fitted on the shipped data)")
    plan.add_argument("--data", nargs="+", required=True, help="export files or directories")
    plan.add_argument("--athlete", default=None, help="user_id (default: the first)")
    plan.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    plan.add_argument("--planner", default="mpc", choices=["mpc"])
    plan.add_argument("--days", type=int, default=7)
    plan.add_argument("--event", default=None, metavar="YYYY-MM-DD",
                      help="a race or test after the export's last day: performance should "
                           "peak then")
    plan.add_argument("--tests", default=None, metavar="CSV",
                      help="the athlete's performance tests (columns date, result; higher is "
                           "better): the MPC (or a --policy distilled with tests) learns "
                           "the performance response from them")
    plan.add_argument("--seed", type=int, default=0)
    plan.add_argument("--json", action="store_true")
    plan.add_argument("--html", default=None, metavar="FILE",
                      help="also write the plan page (one static HTML file)")
    plan.set_defaults(func=_plan)

    rec = sub.add_parser("recommend", help="today's session and a 7-day plan for every "
                                           "athlete under a folder (parquet)")
    rec.add_argument("--model", required=True, help="world model directory")
    rec.add_argument("--data", required=True, help="folder of exports (one per athlete)")
    rec.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    rec.add_argument("--days", type=int, default=7)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--workers", type=int, default=1, help="local worker processes")
    rec.add_argument("--ray-address", default=None,
                     help="run on this Ray cluster instead (host:port, auto, or local)")
    rec.add_argument("--out", required=True, help="output .parquet file")
    rec.set_defaults(func=_recommend)

    tn = sub.add_parser("tune", help="an Optuna study of a learner's settings (resumable)")
    tn.add_argument("--agent", required=True,
                    choices=["sac", "sac-continuous", "ppo", "mpc-distilled"])
    tn.add_argument("--cohort", required=True, help="training cohort file")
    tn.add_argument("--val-cohort", required=True, help="validation cohort file (objective)")
    tn.add_argument("--trials", type=int, required=True,
                    help="finished trials the study should have in all (a rerun resumes)")
    tn.add_argument("--storage", default=None,
                    help="SQLAlchemy URL of the study (default: sqlite in --out)")
    tn.add_argument("--study-name", default="periodize")
    tn.add_argument("--model", default=None, help="world model (mpc-distilled)")
    tn.add_argument("--steps", type=int, default=200_000, help="env steps per trial")
    tn.add_argument("--n-envs", type=int, default=64)
    tn.add_argument("--seed", type=int, default=0)
    tn.add_argument("--trial-minutes", type=float, default=None,
                    help="wall-time limit of one trial's training")
    tn.add_argument("--evaluations", type=int, default=4,
                    help="intermediate validation runs per trial (the pruner's steps)")
    tn.add_argument("--val-days", type=int, default=90, help="validation episode length")
    tn.add_argument("--heartbeat", type=int, default=60,
                    help="seconds between a trial's heartbeats (a dead trial is retried "
                         "after twice this)")
    tn.add_argument("--workers", type=int, default=1, help="local Optuna worker processes")
    tn.add_argument("--ray-address", default=None,
                    help="run the Optuna workers as Ray tasks on this cluster")
    tn.add_argument("--out", required=True, help="study directory")
    tn.set_defaults(func=_tune)

    daily = sub.add_parser("daily", help="log this morning's recommendation and yesterday's "
                                         "outcome in a store; --report reads it")
    daily.add_argument("--db", required=True, help="the store (SQLite file, created if absent)")
    daily.add_argument("--model", help="world model directory")
    daily.add_argument("--data", nargs="+", help="export files or directories")
    daily.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    daily.add_argument("--athlete", default=None, help="user_id (default: every athlete)")
    daily.add_argument("--date", default=None, metavar="YYYY-MM-DD",
                       help="this morning (default: the export's last day); the export is "
                            "cut there")
    daily.add_argument("--feel", type=int, choices=range(1, 6), default=None, metavar="1-5",
                       help="how do you feel today? (1 worst; stored, see analysis.daily)")
    daily.add_argument("--ab", action="store_true",
                       help="A/B: each athlete gets the agent or the seed-rule baseline, "
                            "stable per athlete")
    daily.add_argument("--seed", type=int, default=0)
    daily.add_argument("--report", action="store_true",
                       help="coverage, CRPS, adherence, flags and A/B from the store")
    daily.add_argument("--html", default=None, help="with --report: also this HTML page")
    daily.add_argument("--json", action="store_true", help="with --report: JSON")
    daily.set_defaults(func=_daily)

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
