"""The issue-20 fixes of the masked discrete SAC, one at a time, on one wall-time budget each.

Every variant (overrides of `SACConfig` and `EnvConfig` from today's defaults) trains through
`agents.training.train(..., max_seconds=budget)` with one torch thread, saving a checkpoint
every `--checkpoint-every` env steps; then the final model and the last checkpoints each play
one 90-day episode per held-out athlete (`analysis.benchmark.run_policy`, the evaluation of
`periodize evaluate`, always on the default env). Random choice and the oracle play the same
athletes with the same env seed once, so every share is paired. Per variant the output holds
the env steps reached, the final model's mean ΔP, its share of the oracle's ΔP gain over
random with a 95 % bootstrap interval over the athletes (`share_of_oracle_gain`), the mean
daily TRIMP, the largest single-action share, the executed violations, and the shares of the
last checkpoints (the swing between consecutive evaluations, and the mean share over the last
checkpoints and the final model, steadier than one evaluation). Scored on the last model, not
the best checkpoint.

`old` is the SAC as it was before issue 20 (judging day flagged as a time-limit truncation,
γ 0.99, α 0.2 on the shared learning rate, target entropy 0.5·log k, critic dropout 0.2, a
critic that sees the observation only); `fixed` is today's default. Usage (variants run one
after another, so a small machine is fine; each gets `--budget-s` of wall time):

    python benchmarks/sac_fixes.py --train-cohort TRAIN.npz --test-cohort TEST.npz \\
        --budget-s 180 --out benchmarks/results/sac_fixes.json [--variants old fixed ...]

    python benchmarks/sac_fixes.py --summarise benchmarks/results/sac_fixes*.json

Writes the JSON (command, configuration, seeds, machine, every result) after every variant, so
an interrupted sweep keeps what it finished; run directories go to `--runs` (default a
temporary folder). On a shared or loaded machine give every variant the same env steps
(`--max-steps`, with `--budget-s` only as a cap) rather than the same wall time.
`--warm-start RUN` names the distilled student (`periodize train --agent mpc-distilled`) that
the `warm*` variants start from (`SACConfig.warm_start`) and the `student` variant scores as it
is, in the same invocation (with `--tests-every 28` for a student distilled with tests).
`--tests-every 28` scores with a monthly performance test taken as that day's tempo session,
handed to the policies that read tests (the tested SAC, `tested*` variants; the others play
as without tests); `--reuse-runs` scores finished runs of `--runs` again instead of training
them (same settings), so that a baseline can sit in several result files. Training is
deterministic for a seed on the CPU, so a variant rerun gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import machine_record  # noqa: E402

OLD_SAC: dict[str, Any] = {"gamma": 0.99, "initial_alpha": 0.2, "alpha_learning_rate": 3e-4,
                           "target_entropy_scale": 0.5, "critic_dropout": 0.2,
                           "asymmetric_critic": False, "critic_layer_norm": False}
"""The SACConfig values before issue 20 (with `OLD_ENV`: the old SAC)."""
OLD_ENV: dict[str, Any] = {"judging_day_terminal": False}
OLD_TEMPERATURE = {k: OLD_SAC[k] for k in ("initial_alpha", "alpha_learning_rate",
                                           "target_entropy_scale", "critic_dropout")}
NO_LN = {"critic_layer_norm": False}
"""`fixed`: the three issue-20 fixes (objective, asymmetric critic, temperature) without the
critic LayerNorm that the measurements then made a default too (`fixed-layernorm` is today's
default)."""

NO_POLYAK = {"actor_polyak": 0.0}
"""The acting actor before the Polyak-averaged one became the default: every variant measured
then pins it, so that rerunning a variant gives the committed numbers."""
UNCUT_SESSIONS = {"seed_session_lengths": False}
"""Every sac-continuous variant's env, in training and scoring: they were measured before
`EnvConfig.seed_session_lengths` (2026-12-07)."""
WEARABLE = {"tests_every": 0}
"""Every `sac` variant's base: the tested SAC became the default after these runs (2026-12-07),
so a variant that does not set `tests_every` is the wearable SAC it was when measured."""
SB3_OLD = {"gamma": 0.99, "asymmetric_critic": False}
"""SB3 SAC's defaults before γ 1 and the asymmetric critic (pinned likewise)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "old": {"config": {**OLD_SAC, **NO_POLYAK}, "env": OLD_ENV},
    "old-seed1": {"config": {**OLD_SAC, **NO_POLYAK}, "env": OLD_ENV, "seed": 1},
    "objective+temperature": {"config": {"asymmetric_critic": False, **NO_LN, **NO_POLYAK}},
    "asymmetric-only": {"config": {**OLD_SAC, "asymmetric_critic": True, **NO_POLYAK}, "env": OLD_ENV},
    "fixed": {"config": {**NO_LN, **NO_POLYAK}},
    "fixed-no-objective": {"config": {"gamma": 0.99, **NO_LN, **NO_POLYAK}, "env": OLD_ENV},
    "fixed-old-temperature": {"config": {**OLD_TEMPERATURE, **NO_LN, **NO_POLYAK}},
    "fixed-seed1": {"config": {**NO_LN, **NO_POLYAK}, "seed": 1},
    "fixed-batch1024-buffer400k": {"config": {"batch_size": 1024, "buffer_size": 400_000,
                                              **NO_LN, **NO_POLYAK}},
    "fixed-rr8": {"config": {"replay_ratio": 0.125, **NO_LN, **NO_POLYAK}},
    "fixed-layernorm": {"config": {"critic_layer_norm": True, **NO_POLYAK}},
    "fixed-gamma099": {"config": {"gamma": 0.99, **NO_LN, **NO_POLYAK}},
    "fixed-layernorm-seed1": {"config": {"critic_layer_norm": True, **NO_POLYAK}, "seed": 1},
    "fixed-layernorm-seed2": {"config": {"critic_layer_norm": True, **NO_POLYAK}, "seed": 2},
    "sac-continuous-old": {"agent": "sac-continuous", "config": SB3_OLD, "env": OLD_ENV},
    "sac-continuous": {"agent": "sac-continuous", "config": SB3_OLD},
    "sac-continuous-gamma1": {"agent": "sac-continuous", "config": {"gamma": 1.0,
                                                                "asymmetric_critic": False}},
    "ppo-old": {"agent": "ppo", "env": OLD_ENV},
    "ppo": {"agent": "ppo"},
    "sac-continuous-asymmetric": {"agent": "sac-continuous",
                                  "config": {"gamma": 1.0, "asymmetric_critic": True}},
    "tested-polyak": {"config": {"tests_every": 28, "actor_polyak": 0.005}},
    "tested-polyak-free-tests": {"config": {"tests_every": 28, "actor_polyak": 0.005,
                                            "test_session": None}},
    "tested-polyak-seed1": {"config": {"tests_every": 28, "actor_polyak": 0.005}, "seed": 1},
    "sac-continuous-gamma099-symmetric-seed1": {
        "agent": "sac-continuous", "config": {"gamma": 0.99, "asymmetric_critic": False},
        "seed": 1},
    "sac-continuous-gamma1-asymmetric-seed1": {
        "agent": "sac-continuous", "config": {"gamma": 1.0, "asymmetric_critic": True},
        "seed": 1},
    "tested": {"config": {"tests_every": 28, **NO_POLYAK}},
    "tested-seed1": {"config": {"tests_every": 28, **NO_POLYAK}, "seed": 1},
    "polyak-actor": {"config": {"actor_polyak": 0.005}},
    "polyak-actor-seed1": {"config": {"actor_polyak": 0.005}, "seed": 1},
    "rr8": {"config": {"replay_ratio": 0.125, **NO_POLYAK}},
    "ensemble4": {"config": {"n_critics": 4, **NO_POLYAK}},
    "batch1024-buffer400k": {"config": {"batch_size": 1024, "buffer_size": 400_000,
                                        **NO_POLYAK}},
    "fixed-layernorm-seed3": {"config": {"critic_layer_norm": True, **NO_POLYAK}, "seed": 3},
    # the defaults of 2026-12-07, wearable-only (tests_every 0, WEARABLE) and with the monthly
    # test (today's default): the long runs
    "default": {"config": {}},
    "default-tested": {"config": {"tests_every": 28}},
    # the warm start from a distilled student (`--warm-start RUN`, agents/sac_warm.py)
    "student": {"student": True},
    "warm-tested": {"config": {"tests_every": 28}, "warm": True},
    "warm-tested-delay": {"config": {"tests_every": 28, "actor_delay": 20_000}, "warm": True},
    "warm-tested-bc": {"config": {"tests_every": 28, "bc_weight": 1.0, "bc_decay": 60_000},
                       "warm": True},
    "warm-tested-bc-steady": {"config": {"tests_every": 28, "bc_weight": 1.0}, "warm": True},
    # the same with the injury guard of the shipped recipe (training is the same run's: the
    # guard acts only when the checkpoints are scored)
    "warm-tested-bc-steady-guarded": {"config": {"tests_every": 28, "bc_weight": 1.0,
                                                 "hazard_margin": 0.005}, "warm": True},
    "warm-tested-bc-steady-seed1": {"config": {"tests_every": 28, "bc_weight": 1.0},
                                    "warm": True, "seed": 1},
    "warm-tested-lr1e-4": {"config": {"tests_every": 28, "learning_rate": 1e-4},
                           "warm": True},
    "warm-tested-seed1": {"config": {"tests_every": 28}, "warm": True, "seed": 1},
    # SB3's continuous SAC as shipped since 2026-12-07: today's defaults (the tested athlete,
    # γ 1, the asymmetric critic) on today's env, sessions cut to the seed's lengths
    "sac-continuous-default-tested": {"agent": "sac-continuous", "config": {}, "today": True},
    "sac-continuous-default-tested-seed1": {"agent": "sac-continuous", "config": {},
                                            "today": True, "seed": 1},
    "sac-continuous-default-tested-seed2": {"agent": "sac-continuous", "config": {},
                                            "today": True, "seed": 2},
}
"""Named variants: `agent` (default `sac`), `config` (agent-config overrides), `env`
(EnvConfig overrides for training), `seed` (training seed, default `--seed`), `warm` (the
SAC starts from the distilled student `--warm-start`: `SACConfig.warm_start`), `student`
(the `--warm-start` student itself, scored as it is, not trained), `today` (a continuous
variant on today's env rather than `UNCUT_SESSIONS`). Every result
records its resolved `agent_config`: the committed results were run when the SAC default had
no critic LayerNorm, so their `fixed*` specs read `{}` where this table now says `NO_LN`."""
DEFAULT_VARIANTS = ("old", "fixed", "objective+temperature", "asymmetric-only", "fixed-layernorm")


TESTS: dict[str, Any] = {"every": 0}
"""`--tests-every`: the performance tests of the evaluation (`PerformanceTesting`, the test
taken as that day's tempo_threshold session), handed to the policies that read them (the
tested SAC); the others, random and the oracle play as without tests."""


def _score(policy_factory: Any, name: str, test: Any, eval_seed: int,
           env: dict[str, Any] | None = None) -> dict[str, list[float]]:
    from analysis.benchmark import PerformanceTesting, run_policy
    from physiology_model.data.table import ACTIONS

    tests = (PerformanceTesting(TESTS["every"], session=ACTIONS.index("tempo_threshold"))
             if TESTS["every"] else None)
    run = run_policy(name, policy_factory, test, _env_config(env or {}), seed=eval_seed,
                     tests=tests)
    keep = ("delta_performance", "return", "max_action_share", "executed_violations",
            "injured_days", "mean_load_trimp")
    out = {k: np.asarray(run.metrics[k], float).tolist() for k in keep if k in run.metrics}
    if "tested" in run.extra:
        out["tests_taken"] = run.extra["tested"].sum(axis=0).astype(float).tolist()
    return out


def _share(dp: list[float], refs: dict[str, dict[str, list[float]]]) -> dict[str, float] | None:
    from analysis.benchmark import share_of_oracle_gain

    return share_of_oracle_gain(dp, refs["random"]["delta_performance"],
                                refs["oracle"]["delta_performance"], n_boot=2000)


def _summary(metrics: dict[str, list[float]], refs: dict[str, Any]) -> dict[str, Any]:
    out = {k: float(np.mean(v)) for k, v in metrics.items()}
    out["executed_violations"] = float(np.sum(metrics.get("executed_violations", [0.0])))
    share = _share(metrics["delta_performance"], refs)
    if share is not None:
        out["pct_of_oracle"] = share["pct"]
        out["pct_of_oracle_ci95"] = [share["ci95_low"], share["ci95_high"]]
    return out


def _train_and_score(name: str, spec: dict[str, Any], args: argparse.Namespace,
                     refs: dict[str, Any], test: Any) -> dict[str, Any]:
    import torch

    from agents.training import agent_config, load_agent, train

    torch.set_num_threads(1)
    if spec.get("student"):
        return _score_student(name, spec, args, refs, test)
    agent = spec.get("agent", "sac")
    # the continuous variants were measured before sessions were cut to the seed's lengths
    uncut = agent == "sac-continuous" and not spec.get("today")
    env_cfg = _env_config({**(UNCUT_SESSIONS if uncut else {}),
                           **spec.get("env", {})})
    sessions = {"seed_session_lengths": env_cfg.seed_session_lengths}
    overrides = dict(spec.get("config", {}))
    if agent == "sac":  # the wearable SAC unless the variant says otherwise (WEARABLE)
        overrides = {**WEARABLE, **overrides}
    if spec.get("warm"):
        if args.warm_start is None:
            raise ValueError(f"variant {name} starts from a distilled student: give "
                             "--warm-start RUN_DIR")
        overrides["warm_start"] = str(args.warm_start)
    cfg = agent_config(agent, overrides)
    started = time.perf_counter()
    run_dir = args.runs / name
    done = run_dir / "run.json"
    if args.reuse_runs and done.is_file() and json.loads(done.read_text())["status"] == "finished":
        record = json.loads(done.read_text())  # scored again, not trained again
        if record["agent_config"] != json.loads(json.dumps(asdict(cfg))):
            raise ValueError(f"{run_dir} was trained with other settings")
        train_wall = record["report"]["wall_seconds"]
    else:
        run_dir = train(agent, str(args.train_cohort), args.max_steps,
                        seed=spec.get("seed", args.seed), device="cpu", out_dir=args.runs,
                        run_name=name, n_envs=args.n_envs, env_config=env_cfg,
                        agent_config=cfg, progress=False, torch_threads=1,
                        checkpoint_every=args.checkpoint_every, max_seconds=args.budget_s)
        train_wall = time.perf_counter() - started
        record = json.loads((run_dir / "run.json").read_text())
    policy = load_agent(run_dir, device="cpu")
    final = _score(lambda sim: policy, name, test, args.eval_seed, sessions)
    checkpoints = []
    ckpt_root = run_dir / "checkpoints"
    for ckpt in sorted(ckpt_root.iterdir())[-args.last_checkpoints:] if ckpt_root.is_dir() else []:
        p = _load_checkpoint(agent, ckpt)
        m = _score(lambda sim, p=p: p, f"{name}/{ckpt.name}", test, args.eval_seed, sessions)
        share = _share(m["delta_performance"], refs)
        checkpoints.append({"checkpoint": ckpt.name,
                            "delta_performance": float(np.mean(m["delta_performance"])),
                            "pct_of_oracle": share["pct"] if share else None})
    pcts = [c["pct_of_oracle"] for c in checkpoints] + [_summary(final, refs).get("pct_of_oracle")]
    pcts = [p for p in pcts if p is not None]
    swing = float(np.max(np.abs(np.diff(pcts)))) if len(pcts) > 1 else None
    mean_last = float(np.mean(pcts)) if pcts else None
    return {"name": name, "spec": spec, "agent": agent,
            "agent_config": record["agent_config"], "env_config": record["env_config"],
            "seeds": record["seeds"], "env_steps": record["report"]["env_steps"],
            "gradient_steps": record["report"]["gradient_steps"],
            "env_steps_per_s": record["report"]["env_steps_per_second"],
            "train_wall_s": train_wall, "final_metrics": record["report"]["final_metrics"],
            "summary": _summary(final, refs), "checkpoints": checkpoints,
            "max_swing_pct_points": swing, "mean_pct_of_oracle_last_evaluations": mean_last,
            "per_athlete": final}


def _score_student(name: str, spec: dict[str, Any], args: argparse.Namespace,
                   refs: dict[str, Any], test: Any) -> dict[str, Any]:
    """The distilled student `--warm-start` scored as it is (the warm starts' baseline)."""
    from agents.training import load_agent

    if args.warm_start is None:
        raise ValueError("variant student scores the distilled student: give --warm-start")
    record = json.loads((args.warm_start / "run.json").read_text())
    policy = load_agent(args.warm_start, device="cpu")
    final = _score(lambda sim: policy, name, test, args.eval_seed)
    return {"name": name, "spec": spec, "agent": record["agent"],
            "run_dir": str(args.warm_start), "agent_config": record["agent_config"],
            "env_config": record["env_config"], "seeds": record["seeds"],
            "env_steps": record["report"]["env_steps"], "gradient_steps": 0,
            "env_steps_per_s": None, "train_wall_s": record["report"]["wall_seconds"],
            "final_metrics": {}, "student_report": record["report"],
            "summary": _summary(final, refs), "checkpoints": [],
            "max_swing_pct_points": None,
            "mean_pct_of_oracle_last_evaluations": _summary(final, refs).get("pct_of_oracle"),
            "per_athlete": final}


def _load_checkpoint(agent: str, directory: Path) -> Any:
    from agents.training import load_checkpoint

    return load_checkpoint(agent, directory)


def _env_config(overrides: dict[str, Any]):
    from simulator.env import EnvConfig

    return replace(EnvConfig(), **overrides)


def _reference_key(args: argparse.Namespace) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256(args.test_cohort.read_bytes()).hexdigest()
    return {"test_cohort_sha256": digest, "eval_seed": args.eval_seed}


def _cached_references(args: argparse.Namespace) -> dict[str, Any] | None:
    """Random's and the oracle's per-athlete metrics from `--references-cache` when it was
    written for the same test cohort (by content) and evaluation seed, else None."""
    path = args.references_cache
    if path is None or not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return cached["references"] if cached.get("key") == _reference_key(args) else None


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def summarise(paths: list[Path]) -> list[dict[str, Any]]:
    """One row per variant of the given result files (printed as a table): the final model's
    share of the oracle with its interval, the mean share over the last evaluations (last
    checkpoints and final model) and their largest swing, TRIMP/day, the largest action
    share, injured days, executed violations, env steps."""
    rows = []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        for name, v in payload["variants"].items():
            s = v["summary"]
            pcts = [c["pct_of_oracle"] for c in v["checkpoints"]
                    if c["pct_of_oracle"] is not None] + [s.get("pct_of_oracle")]
            rows.append({"file": Path(path).name, "variant": name,
                         "pct_of_oracle": s.get("pct_of_oracle"),
                         "ci95": s.get("pct_of_oracle_ci95"),
                         "mean_pct_last_evaluations": float(np.mean(pcts)),
                         "evaluations": len(pcts), "swing": v["max_swing_pct_points"],
                         "trimp_per_day": s.get("mean_load_trimp"),
                         "max_action_share": s["max_action_share"],
                         "injured_days": s.get("injured_days"),
                         "executed_violations": s["executed_violations"],
                         "env_steps": v["env_steps"]})
    print(f"{'variant':<28}{'% oracle [95 % CI]':>20}{'mean last':>10}{'swing':>7}"
          f"{'TRIMP/d':>8}{'max sh':>7}{'inj d':>6}{'viol':>5}{'steps':>9}")
    for r in rows:
        ci = r["ci95"] or [float("nan")] * 2
        print(f"{r['variant']:<28}{r['pct_of_oracle']:>7.0f} [{ci[0]:>4.0f}, {ci[1]:>4.0f}]"
              f"{r['mean_pct_last_evaluations']:>10.0f}{r['swing'] or float('nan'):>7.0f}"
              f"{r['trimp_per_day']:>8.0f}{r['max_action_share']:>7.2f}"
              f"{r['injured_days']:>6.1f}{r['executed_violations']:>5.0f}{r['env_steps']:>9,}")
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--summarise":
        summarise([Path(p) for p in argv[1:]])
        return {}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-cohort", type=Path, required=True)
    parser.add_argument("--test-cohort", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--runs", type=Path, default=None,
                        help="folder for the run directories (default: a temporary one)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        choices=list(VARIANTS))
    parser.add_argument("--budget-s", type=float, default=180.0,
                        help="training wall time of every variant, s")
    parser.add_argument("--max-steps", type=int, default=50_000_000)
    parser.add_argument("--n-envs", type=int, default=128)
    parser.add_argument("--checkpoint-every", type=int, default=100_000,
                        help="env steps between the checkpoints scored for the swing")
    parser.add_argument("--last-checkpoints", type=int, default=3)
    parser.add_argument("--references-cache", type=Path, default=None,
                        help="JSON file keeping random's and the oracle's scores of the test "
                             "cohort between invocations (recomputed when the cohort differs)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--eval-seed", type=int, default=0, help="env seed of the evaluation")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="score a finished run already in --runs (same settings) instead "
                             "of training it again")
    parser.add_argument("--tests-every", type=int, default=0,
                        help="evaluate with a performance test every this many days, taken as "
                             "that day's tempo_threshold session, handed to the policies that "
                             "read tests (the tested SAC; 0: none)")
    parser.add_argument("--warm-start", type=Path, default=None,
                        help="a distilled run directory (periodize train --agent "
                             "mpc-distilled) that the warm* variants start from and the "
                             "student variant scores")
    parser.add_argument("--warm-start-command", default=None,
                        help="the command that made --warm-start (recorded in the JSON)")
    args = parser.parse_args(argv)
    TESTS["every"] = args.tests_every
    for path in (args.train_cohort, args.test_cohort):
        if not path.is_file():
            parser.error(f"{path} does not exist (make one with `periodize cohort`)")
    from analysis.benchmark import policy_factories
    from simulator.cohort import Cohort

    args.runs = args.runs or Path(tempfile.mkdtemp(prefix="sac_fixes_"))
    test = Cohort.load(args.test_cohort)
    started = time.perf_counter()
    refs = _cached_references(args)
    if refs is None:
        refs = {ref: _score(policy_factories([ref], seed=args.eval_seed)[ref], ref, test,
                            args.eval_seed) for ref in ("random", "oracle")}
        if args.references_cache is not None:
            _write(args.references_cache, {"key": _reference_key(args), "references": refs})
    import torch

    payload: dict[str, Any] = {
        "command": " ".join(["benchmarks/sac_fixes.py"] + argv),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_record(torch=torch.__version__,
                                  load_average_at_start=os.getloadavg()),
        "cohorts": {"train": Cohort.load(args.train_cohort).meta | {"n": Cohort.load(
                        args.train_cohort).n},
                    "test": test.meta | {"n": test.n}},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "warm_start": None if args.warm_start is None else {
            "run_dir": str(args.warm_start), "command": args.warm_start_command},
        "references": {k: _summary(v, refs) for k, v in refs.items()},
        "variants": {}, "failures": {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        try:
            result = _train_and_score(name, VARIANTS[name], args, refs, test)
        except Exception as exc:  # noqa: BLE001 (one broken variant must not lose the rest)
            payload["failures"][name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: FAILED {payload['failures'][name]}", flush=True)
            continue
        result["load_average_after"] = os.getloadavg()
        payload["variants"][name] = result
        payload["wall_s"] = time.perf_counter() - started
        _write(args.out, payload)
        s = result["summary"]
        ci = s.get("pct_of_oracle_ci95", [float("nan")] * 2)
        print(f"{name:<28} ΔP {s['delta_performance']:+.2f}  "
              f"{s.get('pct_of_oracle', float('nan')):.0f} % of oracle [{ci[0]:.0f}, {ci[1]:.0f}]"
              f"  TRIMP/day {s.get('mean_load_trimp', float('nan')):.0f}"
              f"  max share {s['max_action_share']:.2f}  steps {result['env_steps']:,}"
              f"  swing {result['max_swing_pct_points']}", flush=True)
    _write(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
