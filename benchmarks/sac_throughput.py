"""Training throughput of our masked discrete SAC vs SB3's SAC, and policy inference latency.

In one run, on the same machine and the same cohort of the shipped world model:

- `ours-sac`: `agents.sac.train_sac` on `BatchedPeriodizationEnv` (`--n-envs` lanes, the
  default `SACConfig`: one gradient step of batch 256 per 32 transitions);
- `sb3-sac-default`: SB3's SAC with its default settings (MlpPolicy 256-256, batch 256, buffer
  10^6, learning_starts 100, train_freq 1, gradient_steps 1) on the continuous single env
  (`DummyVecEnv` of one `PeriodizationEnv`): the reference of the target (≥ 10×);
- `sb3-sac-batched`: SB3's SAC as our `sac-continuous` learner trains it (the batched env, the
  same replay ratio and network as ours), which separates what batching and the replay ratio
  buy from what the implementation buys.

Each learner first collects its warm-up transitions (`learning_starts`, not timed), then is
timed over `--seconds` of training with gradient steps (env steps per second = transitions
collected / wall time). Latency: the median wall time of one `act` call for one athlete
(obs (1, 48), mask (1, 6)) of our SAC and of the SB3 adapters, on the CPU, over `--latency-calls`
calls after warm-up.

Writes a JSON list of records `{impl, device, metric, value, unit, ...}` (the extra keys hold
the configuration, torch threads and the machine's load average) to
`benchmarks/results/sac_throughput.json` and prints a table. Usage:

    .venv/bin/python benchmarks/sac_throughput.py [--n-envs 64] [--seconds 60] [--threads 1]
        [--device auto] [--cohort-size 512 | --cohort FILE.npz] [--latency-calls 2000]

On a shared machine, compare numbers only within one run (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.device import describe_device, select_device
from agents.policy import N_FEATURES
from agents.sac import DiscreteSAC, RunningNormalizer, SACConfig, train_sac
from agents.sb3_agents import (
    ContinuousSACPolicy,
    MaskablePPOPolicy,
    NormalizedVecEnv,
    PPOConfig,
    SB3SACConfig,
    make_maskable_ppo,
    make_sb3_sac,
)
from simulator.cohort import Cohort
from simulator.env import BatchedPeriodizationEnv, EnvConfig, PeriodizationEnv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import load_average  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sac_throughput.json"


def _record(impl: str, device: torch.device, metric: str, value: float, unit: str,
            **extra: Any) -> dict[str, Any]:
    return {"impl": impl, "device": str(device), "metric": metric, "value": float(value),
            "unit": unit, **extra}


def time_ours(cohort, device: torch.device, n_envs: int, seconds: float,
              seed: int) -> tuple[dict[str, Any], DiscreteSAC]:
    """Env-steps/s of our SAC from its first gradient step on (after `learning_starts`
    transitions of random actions), for about `seconds` of learning."""
    config = SACConfig()
    env = BatchedPeriodizationEnv(cohort, n_envs, EnvConfig(), seed=seed)
    agent = DiscreteSAC(config, device=device, seed=seed)
    t0 = time.perf_counter()
    report = train_sac(agent, env, 10 ** 9, seed=seed, progress=False,
                       max_seconds=_warmup_seconds(env, config.learning_starts) + seconds)
    record = _record("ours-sac", device, "train_env_steps_per_s",
                     report.learning_env_steps_per_second, "env steps/s", n_envs=n_envs,
                     env_steps=report.learning_env_steps, gradient_steps=report.gradient_steps,
                     wall_s=report.learning_seconds, replay_ratio=config.replay_ratio,
                     batch_size=config.batch_size, hidden_sizes=list(config.hidden_sizes),
                     dropout=config.dropout, warmup_env_steps=config.learning_starts,
                     total_wall_s=time.perf_counter() - t0)
    return record, agent


def _warmup_seconds(env: BatchedPeriodizationEnv, transitions: int) -> float:
    """A generous bound on the time of `transitions` random-action steps of `env` (measured on
    a short run of it, resets included)."""
    t0 = time.perf_counter()
    env.reset()
    for _ in range(5):
        env.step(np.argmax(env.action_masks(), axis=1))
    per_transition = (time.perf_counter() - t0) / (5 * env.num_envs)
    return 3.0 * per_transition * transitions + 2.0


class _StopAfter:
    """SB3 callback factory: stop `learn` once `seconds` of timed training have passed."""

    def __init__(self, seconds: float) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        limit = seconds

        class Stop(BaseCallback):
            def _on_training_start(self) -> None:
                self.t0 = time.perf_counter()
                self.n0 = self.num_timesteps

            def _on_step(self) -> bool:
                return time.perf_counter() - self.t0 < limit

        self.callback = Stop()


def _time_sb3(model, seconds: float, warmup_steps: int) -> tuple[float, int, float]:
    model.learn(total_timesteps=warmup_steps, progress_bar=False)  # fills learning_starts
    stop = _StopAfter(seconds).callback
    before = model.num_timesteps
    t0 = time.perf_counter()
    model.learn(total_timesteps=10 ** 9, reset_num_timesteps=False, progress_bar=False,
                callback=stop)
    wall = time.perf_counter() - t0
    steps = model.num_timesteps - before
    return steps / wall, steps, wall


def time_sb3_default(cohort, device: torch.device, seconds: float, seed: int) -> dict[str, Any]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = EnvConfig(action_type="continuous")
    env = DummyVecEnv([lambda: PeriodizationEnv(cohort, config)])
    model = SAC("MlpPolicy", env, seed=seed, device=device, verbose=0)
    rate, steps, wall = _time_sb3(model, seconds, model.learning_starts + 10)
    return _record("sb3-sac-default", device, "train_env_steps_per_s", rate, "env steps/s",
                   n_envs=1, env_steps=steps, wall_s=wall, replay_ratio=1.0,
                   batch_size=model.batch_size, hidden_sizes=[256, 256], dropout=0.0)


def time_sb3_batched(cohort, device: torch.device, n_envs: int, seconds: float,
                     seed: int) -> tuple[dict[str, Any], ContinuousSACPolicy]:
    config = SB3SACConfig()
    env = BatchedPeriodizationEnv(cohort, n_envs, EnvConfig(action_type="continuous"),
                                  seed=seed)
    normalizer = RunningNormalizer(N_FEATURES)
    venv = NormalizedVecEnv(env, normalizer)
    if config.asymmetric_critic:  # the critics read the latent state, as in agents.training
        from agents.sb3_agents import CriticStateVecEnv
        from simulator.env import CRITIC_STATE_NAMES

        venv = CriticStateVecEnv(venv, env, RunningNormalizer(len(CRITIC_STATE_NAMES)))
    model = make_sb3_sac(venv, config, seed=seed, device=device)
    rate, steps, wall = _time_sb3(model, seconds, config.learning_starts + 4 * n_envs)
    record = _record("sb3-sac-batched", device, "train_env_steps_per_s", rate, "env steps/s",
                     n_envs=n_envs, env_steps=steps, wall_s=wall,
                     replay_ratio=model.gradient_steps / n_envs, batch_size=config.batch_size,
                     hidden_sizes=list(config.hidden_sizes), dropout=0.0)
    return record, ContinuousSACPolicy(model, normalizer, "sac-continuous")


def latency_ms(policy, obs: np.ndarray, mask: np.ndarray, calls: int) -> float:
    """Median wall time of one `act` on one athlete, ms."""
    for _ in range(50):
        policy.act(obs, mask)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        policy.act(obs, mask)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def _one_morning(cohort, seed: int) -> tuple[np.ndarray, np.ndarray]:
    env = BatchedPeriodizationEnv(cohort, 1, EnvConfig(), seed=seed)
    return env.reset(), env.action_masks()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-envs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="timed training per learner, s")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cohort-size", type=int, default=512)
    parser.add_argument("--cohort", type=Path, default=None,
                        help="a saved cohort (.npz) instead of drawing --cohort-size athletes "
                             "from the shipped world model (a machine without PyMC/ArviZ)")
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sb3-batched", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*render_mode.*")
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if args.cohort is not None:
        cohort = Cohort.load(args.cohort)
    else:
        from physiology_model.model.world_model import WorldModel
        from simulator.cohort import generate_cohort

        cohort = generate_cohort(WorldModel.load(ROOT / "models" / "shipped"),
                                 args.cohort_size, args.seed)
    common = {"threads": args.threads, "device_name": describe_device(device),
              "machine": platform.machine(), "cpu_count": os.cpu_count()}
    records: list[dict[str, Any]] = []

    def add(record: dict[str, Any]) -> None:
        record.update(common, load_avg=load_average())
        records.append(record)
        print(f"  {record['impl']:<18} {record['metric']:<24} {record['value']:>12.4g} "
              f"{record['unit']}", flush=True)

    print(f"device {device} ({common['device_name']}), torch threads {args.threads}")
    ours, agent = time_ours(cohort, device, args.n_envs, args.seconds, args.seed)
    add(ours)
    sb3 = time_sb3_default(cohort, device, args.seconds, args.seed)
    add(sb3)
    add(_record("ours-sac/sb3-sac-default", device, "train_speedup",
                ours["value"] / sb3["value"], "x"))
    continuous_policy = None
    if not args.skip_sb3_batched:
        batched, continuous_policy = time_sb3_batched(cohort, device, args.n_envs,
                                                      args.seconds, args.seed)
        add(batched)

    # Inference on the CPU, one athlete per call (a morning recommendation).
    cpu = torch.device("cpu")
    obs, mask = _one_morning(cohort, args.seed + 1)
    with torch.no_grad():
        cpu_agent = agent
        if device.type != "cpu":
            tmp = ROOT / "benchmarks" / "results" / ".sac_latency_ckpt"
            agent.save(tmp)
            cpu_agent = DiscreteSAC.load(tmp, device=cpu)
    add(_record("ours-sac", cpu, "act_latency_ms_per_recommendation",
                latency_ms(cpu_agent, obs, mask, args.latency_calls), "ms",
                batch=1))
    ppo_env = NormalizedVecEnv(BatchedPeriodizationEnv(cohort, 8, EnvConfig(), seed=args.seed),
                               RunningNormalizer(N_FEATURES))
    ppo_env.reset()
    ppo = MaskablePPOPolicy(make_maskable_ppo(ppo_env, PPOConfig(), seed=args.seed, device=cpu),
                            ppo_env.normalizer, "ppo")
    add(_record("sb3-maskable-ppo", cpu, "act_latency_ms_per_recommendation",
                latency_ms(ppo, obs, mask, args.latency_calls), "ms", batch=1))
    if continuous_policy is not None and device.type == "cpu":
        add(_record("sb3-sac-continuous", cpu, "act_latency_ms_per_recommendation",
                    latency_ms(continuous_policy, obs, mask, args.latency_calls), "ms",
                    batch=1))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cohort_size": cohort.n,
            "cohort_file": str(args.cohort) if args.cohort else None,
            "seconds_per_learner": args.seconds, "seed": args.seed}
    for record in records:
        record["run"] = meta
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {args.out}")
    return records


if __name__ == "__main__":
    main()
