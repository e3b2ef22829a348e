"""Where a policy's injury risk comes from: the simulator's daily hazard and its three terms.

For each policy (names of `analysis.benchmark.policy_factories`, e.g. `mpc_tested`, and run
directories) one 90-day episode per athlete of `--cohort` (the first `--athletes`), with the
monthly test taken as that day's tempo session: the mean over athletes and days of the onset
hazard (`physiology_model.dynamics.hazard.daily_hazard`, the athlete's own coefficients) and
of its terms (load spike, low recovery, monotony), the acute:chronic ratio and monotony, the
injured days, ΔP and each session's share of days.

`--match-shares POLICY` then asks whether the first run directory's extra risk is how often it
chooses each session: its action probabilities are multiplied by per-session factors, adjusted
over `--rounds` episodes until its session shares are those of POLICY, and the hazard is
measured again each round. Usage:

    python benchmarks/hazard_terms.py --cohort VAL.npz --athletes 150 --policies mpc_tested \\
        --runs models/agents/sac models/agents/mpc-distilled-tested \\
        --match-shares mpc_tested --out benchmarks/results/hazard_terms.json
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import machine_record


class _HazardLog:
    """Records every `daily_hazard` call of the simulator (one per simulated day)."""

    def __init__(self) -> None:
        from physiology_model.dynamics.hazard import daily_hazard, hazard_terms
        from simulator import env

        self.days: list[np.ndarray] = []

        def logged(acwr, recovery, monotony, params):
            h = daily_hazard(acwr, recovery, monotony, params)
            spike, low, mono = hazard_terms(acwr, recovery, monotony, params)
            self.days.append(np.stack([np.broadcast_to(x, h.shape) for x in
                                       (h, spike, low, mono, acwr, monotony)]))
            return h
        env.daily_hazard = logged

    def summary(self, days: int) -> dict[str, float]:
        """Means over athletes and the last `days` simulated days (the episode's)."""
        a = np.stack(self.days[-days:], axis=1)
        names = ("hazard", "spike_term", "low_recovery_term", "monotony_term", "acwr",
                 "monotony")
        return {n: float(np.nanmean(x)) for n, x in zip(names, a)}


def _episode(name: str, policy_factory: Any, cohort: Any, n: int, log: _HazardLog
             ) -> dict[str, Any]:
    from analysis.benchmark import PerformanceTesting, run_policy
    from physiology_model.data.table import ACTIONS
    from simulator.env import EnvConfig

    tests = PerformanceTesting(28, session=ACTIONS.index("tempo_threshold"))
    config = EnvConfig()
    log.days.clear()
    run = run_policy(name, policy_factory, cohort, config, seed=0, n=n, tests=tests)
    actions = run.actions.astype(int)
    shares = np.bincount(actions.ravel(), minlength=len(ACTIONS)) / actions.size
    return {**log.summary(config.episode_days),
            "injured_days": float(np.mean(run.metrics["injured_days"])),
            "delta_performance": float(np.mean(run.metrics["delta_performance"])),
            "session_shares": dict(zip(ACTIONS, shares.tolist()))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--athletes", type=int, default=150)
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--policies", nargs="*", default=["mpc_tested"])
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--match-shares", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from agents.sac_tested import load_world_model
    from analysis.benchmark import policy_factories
    from physiology_model.data.table import ACTIONS
    from simulator.cohort import Cohort

    start = time.perf_counter()
    log = _HazardLog()
    model = load_world_model(args.model)
    cohort = Cohort.load(args.cohort)
    factories = policy_factories(args.policies, model=model, runs=args.runs)
    results = {}
    for name, factory in factories.items():
        results[name] = _episode(name, factory, cohort, args.athletes, log)
        print(name, {k: round(v, 5) for k, v in results[name].items()
                     if isinstance(v, float)}, flush=True)
    rounds = []
    if args.match_shares and args.runs:
        target = np.array([results[args.match_shares]["session_shares"][a] for a in ACTIONS])
        policy = factories[next(n for n in factories if n not in args.policies)](None)
        network = policy.network
        plain = network.action_probabilities
        bias = np.zeros(len(ACTIONS))

        def shifted(obs, mask):
            p = np.where(mask, plain(obs, mask) * np.exp(bias), 0.0)
            return p / p.sum(axis=1, keepdims=True)
        network.action_probabilities = shifted
        for r in range(args.rounds):
            got = _episode("shifted", lambda sim: policy, cohort, args.athletes, log)
            rounds.append({"round": r, "log_factors": bias.tolist(), **got})
            print("round", r, np.round(bias, 2), round(got["hazard"], 5), flush=True)
            shares = np.array([got["session_shares"][a] for a in ACTIONS])
            bias = bias + 0.7 * (np.log(np.maximum(target, 1e-3))
                                 - np.log(np.maximum(shares, 1e-3)))
    out = {"benchmark": "hazard_terms",
           "config": {"command": "python benchmarks/hazard_terms.py "
                      + " ".join(argv if argv is not None else sys.argv[1:]),
                      "cohort": str(args.cohort), "athletes": args.athletes,
                      "model": args.model, "env_seed": 0, "tests_every": 28,
                      "test_session": "tempo_threshold"},
           "machine": machine_record(), "policies": results, "matched_shares": rounds,
           "wall_s": time.perf_counter() - start}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
