"""Amortised planning: a network trained to choose what the MPC planner chooses (DAgger).

The MPC planner (`agents.mpc`) gains the most fitness of the agents but needs the world model
and ~10 ms per recommendation. Distillation trains a policy network on its choices (Ross,
Gordon & Bagnell 2011, DAgger, AISTATS): in round 1 the planner drives simulated athletes and
every morning's (observation, mask, planner's session) is recorded; in later rounds the
student drives a share of the mornings (`student_share`) while the planner still labels every
morning, so the student also learns what to do in the states its own mistakes lead to. The
planner is told the session actually done each day (`MPCPlanner.record_executed`).

The student is `DiscreteSAC`'s actor (the same network, observation normaliser and checkpoint
format), named `mpc-distilled`, trained by masked cross-entropy with early stopping on held-out
athletes; its critics are not trained, so its Q-gap diagnostic means nothing. Only the
observation reaches it, not the planner's personalised posterior: what it cannot read from
the 48 features it cannot copy.

    run_dir = distill(model, cohort, out_dir="runs", run_name="mpc-distilled")
    policy = agents.training.load_agent(run_dir)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.mpc import MPCConfig, MPCPlanner
from agents.sac import DiscreteSAC, SACConfig, masked_log_probs
from agents.training import jsonable, write_run_record
from simulator.cohort import Cohort
from simulator.env import EnvConfig, Simulation


@dataclass(frozen=True)
class DistillConfig:
    """Settings of `distill`."""

    rounds: int = 2
    """Episodes of labelling over the cohort; round 1 is driven by the planner alone."""
    student_share: float = 0.5
    """Share of mornings the student drives in rounds 2 and later (DAgger's 1 − β)."""
    hidden_sizes: tuple[int, ...] = (256, 128, 64)
    dropout: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 60
    patience: int = 6
    """Epochs without a better validation loss before training stops (the best is kept)."""
    validation_share: float = 0.2
    """Share of the cohort's athletes held out for early stopping."""

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("rounds, max_epochs, patience and batch_size must be ≥ 1")
        if not 0.0 <= self.student_share <= 1.0:
            raise ValueError(f"student_share must be in [0, 1], got {self.student_share}")
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError(f"validation_share must be in (0, 1), got {self.validation_share}")


def planner_labels(model: Any, cohort: Cohort, env_config: EnvConfig, seed: int, *,
                   student: DiscreteSAC | None = None, student_share: float = 0.0,
                   mpc_config: MPCConfig | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One episode of every athlete of `cohort`: (obs (D·N, F), mask (D·N, 6), planner's
    session (D·N,), athlete index (D·N,)), mornings in day-major order. With a `student`, each
    morning the student's session is done instead of the planner's with probability
    `student_share` (the label is the planner's either way)."""
    sim = Simulation(cohort, cohort.n, env_config)
    obs = sim.reset(seed)
    planner = MPCPlanner(model, mpc_config or MPCConfig(episode_days=env_config.episode_days),
                         seed=seed)
    planner.reset(seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    rows_obs, rows_mask, rows_label = [], [], []
    for _ in range(env_config.episode_days):
        mask = sim.agent_mask.copy()
        label = planner.act(obs, mask)
        action = label
        if student is not None and student_share > 0:
            own = student.act(obs, mask)
            action = np.where(rng.random(cohort.n) < student_share, own, label)
        rows_obs.append(obs.copy())
        rows_mask.append(mask)
        rows_label.append(label)
        obs, _, _ = sim.step(action)
        planner.record_executed(sim.last_executed)
    athletes = np.tile(np.arange(cohort.n), env_config.episode_days)
    return (np.concatenate(rows_obs), np.concatenate(rows_mask), np.concatenate(rows_label),
            athletes)


def fit_student(obs: np.ndarray, mask: np.ndarray, labels: np.ndarray, athletes: np.ndarray,
                config: DistillConfig, seed: int,
                student: DiscreteSAC | None = None) -> tuple[DiscreteSAC, dict[str, float]]:
    """Train (or keep training) the student on labelled mornings by masked cross-entropy;
    athletes in a random `validation_share` stop it early. Returns the student (best
    validation loss) and its training report."""
    if student is None:
        student = DiscreteSAC(SACConfig(hidden_sizes=config.hidden_sizes,
                                        dropout=config.dropout), seed=seed,
                              name="mpc-distilled")
    rng = np.random.default_rng(seed)
    ids = np.unique(athletes)
    held = rng.choice(ids, size=max(1, round(config.validation_share * len(ids))),
                      replace=False)
    val = np.isin(athletes, held)
    x = torch.as_tensor(obs, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.bool)
    y = torch.as_tensor(labels, dtype=torch.long)
    student.normalizer.update(x[~val])
    optimizer = torch.optim.Adam(student.actor.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    train_idx = torch.as_tensor(np.flatnonzero(~val))
    val_idx = torch.as_tensor(np.flatnonzero(val))

    def loss_and_accuracy(idx: torch.Tensor) -> tuple[float, float]:
        student.actor.eval()
        with torch.no_grad():
            logp = masked_log_probs(student.actor(student.normalizer(x[idx])), m[idx])
            loss = torch.nn.functional.nll_loss(logp, y[idx]).item()
            accuracy = (logp.argmax(-1) == y[idx]).float().mean().item()
        return loss, accuracy

    best_loss, best_state, best_epoch, epoch = float("inf"), None, 0, 0
    # dropout draws from torch's current generator: seed it here, as `train_sac` does, so a
    # student depends on `seed` alone and not on what ran before it in the process
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(1, config.max_epochs + 1):
            student.actor.train()
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for start in range(0, len(order), config.batch_size):
                idx = order[start:start + config.batch_size]
                logp = masked_log_probs(student.actor(student.normalizer(x[idx])), m[idx])
                loss = torch.nn.functional.nll_loss(logp, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            val_loss, _ = loss_and_accuracy(val_idx)
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.clone() for k, v in student.actor.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
    student.actor.load_state_dict(best_state)
    train_loss, train_accuracy = loss_and_accuracy(train_idx)
    val_loss, val_accuracy = loss_and_accuracy(val_idx)
    return student, {"epochs": epoch, "best_epoch": best_epoch, "train_loss": train_loss,
                     "train_accuracy": train_accuracy, "validation_loss": val_loss,
                     "validation_accuracy": val_accuracy, "mornings": len(labels)}


def _labelling(env_config: EnvConfig | None) -> tuple[EnvConfig, MPCConfig]:
    """The env (discrete actions) the planner labels in, and the planner's settings."""
    env_cfg = replace(env_config or EnvConfig(), action_type="discrete")
    return env_cfg, MPCConfig(episode_days=env_cfg.episode_days)


def distill_settings(n_athletes: int, seed: int = 0, config: DistillConfig = DistillConfig(),
                     env_config: EnvConfig | None = None) -> dict[str, Any]:
    """What decides a distilled run's result, as `distill` records it in `run.json` (JSON
    values): the cohort size, seed, env, student and planner settings. Two runs with equal
    settings on the same cohort are the same run (a finished one can be reused)."""
    env_cfg, planner_config = _labelling(env_config)
    return jsonable({"agent": "mpc-distilled", "seeds": seed, "n_envs": n_athletes,
                     "env_config": env_cfg, "agent_config": config,
                     "planner_config": planner_config})


def distill(model: Any, cohort: Cohort | str | Path, *, seed: int = 0,
            out_dir: str | Path = "runs", run_name: str = "mpc-distilled",
            config: DistillConfig = DistillConfig(), env_config: EnvConfig | None = None,
            model_dir: str | None = None) -> Path:
    """Distil the MPC planner into a policy network (module docstring) and save it as a run
    directory `agents.training.load_agent` reads (`run.json` + `model/`)."""
    cohort_obj = cohort if isinstance(cohort, Cohort) else Cohort.load(cohort)
    run_dir = Path(out_dir) / run_name
    if (run_dir / "run.json").exists():
        raise ValueError(f"{run_dir} already holds a run; choose another run_name or out_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    env_cfg, planner_config = _labelling(env_config)
    started = time.perf_counter()
    data: list[tuple[np.ndarray, ...]] = []
    student, reports = None, []
    for round_ in range(config.rounds):
        labelled = planner_labels(model, cohort_obj, env_cfg, seed + round_, student=student,
                                  student_share=0.0 if round_ == 0 else config.student_share,
                                  mpc_config=planner_config)
        data.append(labelled)
        # an athlete's mornings of every round fall on the same side of the validation split
        obs, mask, labels, athletes = (np.concatenate(parts) for parts in zip(*data))
        student, report = fit_student(obs, mask, labels, athletes, config, seed)
        report["round"] = round_ + 1
        reports.append(report)
    student.save(run_dir / "model")
    wall = time.perf_counter() - started
    write_run_record(run_dir, {
        **distill_settings(cohort_obj.n, seed, config, env_config), "steps": len(labels),
        "model_dir": model_dir, "cohort": {"n": cohort_obj.n, "meta": cohort_obj.meta},
        "device": "cpu",
        "report": {"env_steps": len(labels), "wall_seconds": wall, "rounds": reports,
                   "episode_returns": []}})
    return run_dir
