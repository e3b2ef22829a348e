"""Held-out quality of one learner as training goes on: does more training still help?

Trains one learner (`agents.training.train`, checkpoints every `--every` env steps) and plays
each checkpoint for one 90-day episode per held-out athlete (`analysis.benchmark.run_policy`,
same env seed for all, so the checkpoints are compared on the same athletes and days). Writes
`OUT/learning_curve.json`: the command, the configuration and seeds, the training report and,
per checkpoint, env steps, mean ΔP (% of baseline) with its SD, mean return and the largest
single-action share. Usage:

    python benchmarks/learning_curve.py --agent ppo --train-cohort TRAIN.npz \\
        --test-cohort TEST.npz --steps 3000000 --every 500000 --out DIR [--agent-config JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=["sac", "ppo", "sac-continuous"], default="ppo")
    parser.add_argument("--train-cohort", type=Path, required=True)
    parser.add_argument("--test-cohort", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--every", type=int, default=500_000)
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--agent-config", default=None, metavar="JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from agents.training import agent_config, load_checkpoint, train
    from analysis.benchmark import run_policy
    from simulator.cohort import Cohort
    from simulator.env import EnvConfig

    config = agent_config(args.agent, json.loads(args.agent_config or "{}"))
    started = time.perf_counter()
    run_dir = train(args.agent, args.train_cohort, args.steps, seed=args.seed,
                    out_dir=args.out, run_name="run", n_envs=args.n_envs, agent_config=config,
                    progress=False, checkpoint_every=args.every, torch_threads=args.threads)
    train_s = time.perf_counter() - started
    record = json.loads((run_dir / "run.json").read_text())
    test = Cohort.load(args.test_cohort)
    points = sorted((run_dir / "checkpoints").iterdir()) + [run_dir / "model"]
    curve = []
    for directory in points:
        policy = load_checkpoint(args.agent, directory)
        run = run_policy(directory.name, lambda sim, p=policy: p, test, EnvConfig(),
                         seed=args.eval_seed)
        m = run.metrics
        steps = (int(directory.name.split("_")[1]) if directory.name.startswith("step_")
                 else record["report"]["env_steps"])
        curve.append({"checkpoint": directory.name, "env_steps": steps,
                      "delta_performance": float(np.mean(m["delta_performance"])),
                      "delta_performance_sd": float(np.std(m["delta_performance"])),
                      "return": float(np.mean(m["return"])),
                      "max_action_share": float(np.mean(m["max_action_share"]))})
        print(f"{steps:>10,} env steps  ΔP {curve[-1]['delta_performance']:+.2f} "
              f"return {curve[-1]['return']:+.2f}", flush=True)
    payload = {"command": " ".join(["benchmarks/learning_curve.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "args": {k: str(v) for k, v in vars(args).items()},
               "agent_config": record["agent_config"],
               "train_wall_s": train_s, "curve": curve}
    (args.out / "learning_curve.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out / 'learning_curve.json'}")
    return curve


if __name__ == "__main__":
    main()
