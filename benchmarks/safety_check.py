"""Hard-rule check at scale: random and adversarial requests, executed violations counted.

Two policies ask the batched simulator for sessions on every day of 90-day episodes: uniform
random over all six sessions (masked or not) and an adversary that always asks for a session
the rules forbid when there is one (HIIT first), else HIIT. After every step the executed
sessions are checked against the mask that was in force that morning, and at the end the
executed histories against the rules themselves (no 4 hard days in a row, no 7 days without
rest). Writes a JSON record per policy.

    .venv/bin/python benchmarks/safety_check.py [--n 16384] [--episodes 1] [--seed 0]
        [--out benchmarks/results/safety_check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _longest_runs(executed: np.ndarray, hard: np.ndarray) -> tuple[int, int]:
    """Longest run of hard days and of days without rest, over all athletes (days, N)."""
    from simulator.constraints import REST, longest_runs

    return (int(longest_runs(hard[executed]).max()),
            int(longest_runs(executed != REST).max()))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/safety_check.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from physiology_model.data.table import ACTIONS
    from physiology_model.model.world_model import WorldModel
    from simulator.cohort import generate_cohort
    from simulator.env import EnvConfig, Simulation

    cohort = generate_cohort(WorldModel.load(ROOT / "models/shipped"), args.n, args.seed)
    config = EnvConfig()
    hard = np.isin(np.arange(len(ACTIONS)),
                   [ACTIONS.index(a) for a in config.safety.hard_actions])
    rng = np.random.default_rng(args.seed)
    hiit = ACTIONS.index("hiit")
    records = []
    for policy in ("random", "adversarial"):
        sim = Simulation(cohort, args.n, config)
        steps = executed_outside_mask = attempted = 0
        longest_hard = longest_no_rest = 0
        start = time.perf_counter()
        for episode in range(args.episodes):
            sim.episode[:] = episode
            sim.reset(args.seed + episode)
            executed = []
            for _ in range(config.episode_days):
                mask = sim.mask.copy()
                if policy == "random":
                    request = rng.integers(0, len(ACTIONS), size=args.n)
                else:
                    forbidden = ~mask
                    request = np.where(forbidden[:, hiit], hiit,
                                       np.where(forbidden.any(1), forbidden.argmax(1), hiit))
                sim.step(request)
                executed_outside_mask += int((~mask[np.arange(args.n), sim.last_executed]).sum())
                attempted += int(sim.last_violated.sum())
                steps += args.n
                executed.append(sim.last_executed.copy())
            lh, lr = _longest_runs(np.array(executed), hard)
            longest_hard, longest_no_rest = max(longest_hard, lh), max(longest_no_rest, lr)
        record = {"policy": policy, "athlete_days": steps,
                  "attempted_violations": attempted,
                  "executed_outside_mask": executed_outside_mask,
                  "longest_hard_run_days": longest_hard,
                  "longest_run_without_rest_days": longest_no_rest,
                  "executed_violations_counted_by_env": int(
                      sim.stats["executed_violations"].sum()),
                  "wall_s": time.perf_counter() - start, "seed": args.seed,
                  "command": "python benchmarks/safety_check.py " + " ".join(sys.argv[1:])}
        records.append(record)
        print(json.dumps(record))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    return records


if __name__ == "__main__":
    main()
