"""`periodize tune`: an Optuna study of a learner's settings."""

from __future__ import annotations

import argparse
from pathlib import Path


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
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
