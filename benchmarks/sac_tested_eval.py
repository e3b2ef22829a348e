"""What the monthly test is worth to a trained SAC: the same checkpoints scored three ways.

For each run directory (`periodize train --agent sac` output, or `benchmarks/sac_fixes.py
--runs`): the final model on the held-out cohort

- `with_tests`: a test every `--tests-every` days taken as that day's tempo_threshold session
  (the maintainers' protocol, `periodize evaluate --tests-every 28 --test-session
  tempo_threshold`), handed to a policy that reads tests;
- `wearable_only`: no tests at all (a tested SAC then never gets a result: its test features
  stay at the prior);
- `sessions_only`: the test sessions are done but the results are hidden from the policy
  (what the tests cost as sessions, without what they tell).

Shares of the oracle's ΔP gain use random's and the oracle's scores from
`benchmarks/sac_fixes.py --references-cache` (the same cohort and evaluation seed). Usage:

    python benchmarks/sac_tested_eval.py --test-cohort VAL.npz --references-cache REFS.json \\
        --out benchmarks/results/sac_tested_eval.json RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class _SessionsOnly:
    """A policy that is made to take the test sessions but never sees the results."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.name = policy, policy.name
        self.config = type("TestsHidden", (), {"performance_draws": 1})()

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.policy.act(obs, mask)

    def observe_performance(self, results: np.ndarray) -> None:
        """The results are hidden."""

    def record_executed(self, actions: np.ndarray) -> None:
        if callable(getattr(self.policy, "record_executed", None)):
            self.policy.record_executed(actions)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--test-cohort", type=Path, required=True)
    parser.add_argument("--references-cache", type=Path, required=True)
    parser.add_argument("--tests-every", type=int, default=28)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from agents.training import load_agent
    from analysis.benchmark import PerformanceTesting, run_policy, share_of_oracle_gain
    from physiology_model.data.table import ACTIONS
    from simulator.cohort import Cohort
    from simulator.env import EnvConfig

    refs = json.loads(args.references_cache.read_text())["references"]
    test = Cohort.load(args.test_cohort)
    tests = PerformanceTesting(args.tests_every, session=ACTIONS.index("tempo_threshold"))
    out: dict[str, Any] = {"command": " ".join(["benchmarks/sac_tested_eval.py",
                                                *(argv or sys.argv[1:])]),
                           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": {}}
    for run in args.runs:
        policy = load_agent(run)
        rows = {}
        for mode, factory, handed in (
                ("with_tests", lambda sim, p=policy: p, tests),
                ("wearable_only", lambda sim, p=policy: p, None),
                ("sessions_only", lambda sim, p=policy: _SessionsOnly(p), tests)):
            r = run_policy(mode, factory, test, EnvConfig(), seed=args.eval_seed, tests=handed)
            dp = np.asarray(r.metrics["delta_performance"], float)
            share = share_of_oracle_gain(dp, refs["random"]["delta_performance"],
                                         refs["oracle"]["delta_performance"], n_boot=2000)
            rows[mode] = {"delta_performance": float(dp.mean()), "pct_of_oracle": share["pct"],
                          "pct_of_oracle_ci95": [share["ci95_low"], share["ci95_high"]],
                          "tests_taken_per_athlete": float(r.extra["tested"].sum(0).mean())
                          if "tested" in r.extra else 0.0,
                          "per_athlete_delta_performance": dp.tolist()}
            print(f"{run.name:<24}{mode:<16}ΔP {dp.mean():+.2f}  {share['pct']:.0f} % "
                  f"[{share['ci95_low']:.0f}, {share['ci95_high']:.0f}]", flush=True)
        out["runs"][str(run)] = {"name": policy.name, "scores": rows}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
