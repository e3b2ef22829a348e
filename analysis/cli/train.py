"""`periodize train`: a learner in the batched simulator (or bc on real data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.cli.common import _load_model, _say
from physiology_model.errors import DataError


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
        from agents.training import KEEP_STUDENT_HINT

        keep = KEEP_STUDENT_HINT if (out / "student" / "run.json").exists() else ""
        raise DataError(str(out), "already holds a training run; choose another --out or "
                                  f"remove it{keep}")
    recipe = args.agent == "sac" and "warm_start" not in overrides
    if not recipe and ("student" in overrides or args.student_athletes is not None):
        raise DataError("--agent-config", "'student' and --student-athletes set the student of "
                                          "--agent sac's default recipe, not of a run with its "
                                          "own warm_start or of another agent")
    if args.agent == "mpc-distilled":
        return _distill(args, out, overrides, env_config)
    if recipe:
        return _warm_sac(args, out, overrides, env_config)
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


def _warm_sac(args: argparse.Namespace, out: Path, overrides: dict, env_config=None) -> int:
    """`periodize train --agent sac` without a `warm_start` in `--agent-config`: the recipe
    that reached issue 20's target (`agents.training.train_warm_sac`): the MPC planner of
    `--model` (default: the cohort's world model) distilled into a student on
    `--student-athletes` athletes, then the SAC warm-started from it (settings over
    `WARM_SAC`; a "student" object sets the student's `DistillConfig` over the one matched to
    the SAC). `{"warm_start": null}` trains a SAC from scratch instead."""
    from dataclasses import asdict

    from agents.distill import DistillConfig
    from agents.sac import config_from_dict
    from agents.training import (
        STUDENT_ATHLETES,
        WARM_SAC,
        agent_config,
        student_config,
        train_warm_sac,
    )

    student = overrides.pop("student", {})
    if not isinstance(student, dict):
        raise DataError("--agent-config", "'student' must be a JSON object of DistillConfig "
                                          "fields")
    try:
        config = agent_config("sac", {**WARM_SAC, **overrides})
        student_cfg = config_from_dict(DistillConfig,
                                       {**asdict(student_config(config)), **student})
    except (ValueError, TypeError) as exc:
        raise DataError("--agent-config", str(exc)) from None
    athletes = STUDENT_ATHLETES if args.student_athletes is None else args.student_athletes
    if athletes < 1:
        raise DataError("--student-athletes", f"must be at least 1, got {athletes}")
    model = _load_model(args.model) if args.model else None
    print(f"periodize train --agent sac: distilling the MPC planner into a student on up to "
          f"{athletes} athletes, then the SAC from it ({out / 'student'}; "
          """--agent-config '{"warm_start": null}' trains the SAC from scratch)""")
    max_seconds = None if args.max_minutes is None else 60.0 * args.max_minutes
    run_dir = train_warm_sac(args.cohort, args.steps, model=model, model_dir=args.model,
                             seed=args.seed, out_dir=out.parent, run_name=out.name,
                             sac_config=config, student=student_cfg,
                             student_athletes=athletes, env_config=env_config,
                             device=args.device, n_envs=args.n_envs,
                             torch_threads=args.threads, max_seconds=max_seconds,
                             say=_say)
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
                      env_config=env_config, progress=_say)
    print(f"wrote {run_dir}")
    return 0


# -- plan --------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    train = sub.add_parser("train", help="train an agent in simulation (or bc on real data)")
    train.add_argument("--agent", required=True,
                       choices=["sac", "sac-continuous", "ppo", "bc", "mpc-distilled"])
    train.add_argument("--model", help="world model directory of the planner that "
                                       "mpc-distilled, and sac's student, imitate (default: "
                                       "the cohort's)")
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
    train.add_argument("--student-athletes", type=int, default=None, metavar="N",
                       help="sac's default recipe: athletes of the cohort its student is "
                            "distilled on (default agents.training.STUDENT_ATHLETES, the "
                            "shipped student's)")
    train.add_argument("--out", required=True, help="run directory")
    train.set_defaults(func=_train)
