"""What the warm start's training env costs: env-steps/s of the SAC's training env per belief.

The warm-started SAC (`SACConfig.warm_start`, agents/sac_warm.py) reads what its distilled
student reads: the observation and the planner's whole belief (`AthleteBelief.features`),
which the training env must compute every morning for every lane. This times one 90-day
episode of `--lanes` lanes with masked-random actions, per morning, for

- `env_only`: `BatchedPeriodizationEnv` (the wearable SAC's env);
- `tests_only`: `TestedTrainingEnv` with the tests' part of the belief (the tested SAC's);
- `student_belief`: `TestedTrainingEnv` with the whole belief of a student distilled with
  tests (`MPCConfig(performance_draws=--draws)`, personalisation on its default days), what
  the warm-started SAC trains on.

The monthly test is that day's session in the two tested envs. Usage:

    python benchmarks/sac_warm_env_cost.py --cohort TRAIN.npz [--lanes 128]
        --out benchmarks/results/sac_warm_env_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import machine_record  # noqa: E402


def _episode(env: Any, days: int, seed: int) -> np.ndarray:
    """Seconds of each env step (action choice included) over one episode after reset."""
    from agents.policy import masked_sample

    rng = np.random.default_rng(seed)
    env.reset()
    seconds = []
    for _ in range(days):
        started = time.perf_counter()
        mask = env.action_masks()
        env.step(masked_sample(mask.astype(float), mask, rng))
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--lanes", type=int, default=128)
    parser.add_argument("--draws", type=int, default=1024)
    parser.add_argument("--tests-every", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from agents.mpc import MPCConfig
    from agents.sac_tested import TestedTrainingEnv, TestSettings, load_world_model
    from simulator.cohort import Cohort
    from simulator.env import BatchedPeriodizationEnv, EnvConfig

    cohort, config = Cohort.load(args.cohort), EnvConfig()
    model = load_world_model(None)
    tests = TestSettings(every=args.tests_every, draws=args.draws)
    student = MPCConfig(performance_draws=args.draws)
    builders = {
        "env_only": lambda env: env,
        "tests_only": lambda env: TestedTrainingEnv(env, model, tests, seed=args.seed),
        "student_belief": lambda env: TestedTrainingEnv(env, model, tests, seed=args.seed,
                                                        belief_config=student,
                                                        all_features=True)}
    out: dict[str, Any] = {
        "command": " ".join(["benchmarks/sac_warm_env_cost.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_record(load_average_at_start=os.getloadavg()),
        "lanes": args.lanes, "days": config.episode_days, "results": {}}
    for name, build in builders.items():
        env = build(BatchedPeriodizationEnv(cohort, args.lanes, config, seed=args.seed))
        seconds = _episode(env, config.episode_days, args.seed)
        slowest = np.argsort(seconds)[::-1][:5]
        out["results"][name] = {
            "episode_s": float(seconds.sum()),
            "env_steps_per_s": float(args.lanes * len(seconds) / seconds.sum()),
            "median_step_s": float(np.median(seconds)),
            "slowest_steps_s": {int(d): float(seconds[d]) for d in slowest}}
        print(f"{name:<16}{out['results'][name]['env_steps_per_s']:>10.0f} env-steps/s  "
              f"episode {seconds.sum():.1f} s", flush=True)
    out["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
