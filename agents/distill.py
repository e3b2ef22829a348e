"""Amortised planning: a network trained to choose what the MPC planner chooses (DAgger).

The MPC planner (`agents.mpc`) gains the most fitness of the agents but needs the world model
and ~10 ms per recommendation. Distillation trains a policy network on its choices (Ross,
Gordon & Bagnell 2011, DAgger, AISTATS): in round 1 the planner drives simulated athletes and
every morning's (observation, mask, planner's session) is recorded; in later rounds the
student drives a share of the mornings (`student_share`) while the planner still labels every
morning, so the student also learns what to do in the states its own mistakes lead to. The
planner is told the session actually done each day (`MPCPlanner.record_executed`).

The student (`DistilledPlanner`) sees what the planner sees and what it infers: each morning
its `AthleteBelief` (the planner's own estimator: population parameters anchored to the
athlete's baselines, then the athlete's posterior from day 7, the tracked Banister states,
today's residuals and the last six sessions) is updated from the observation, and a network
gets the 48 features plus the belief's (`agents.mpc.BELIEF_FEATURE_NAMES`). Only the search
over plans is amortised. Measured on 256 training athletes, one round (the planner agrees with
a reseeded copy of itself on 82 % of mornings): a student of the observation alone agreed with
the planner on 59 % of held-out mornings, with the belief's parameters and states on 64 % (and
on the seed-1000 cohort its ΔP rose from +0.29 % to +0.76 %), with the sessions as well on
67 %.

Performance tests (`DistillConfig.tests_every`): the teacher is then the planner of an athlete
who runs a test every few weeks (`MPCConfig.performance_draws` draws of the performance
response, weighed by the tests: `agents.mpc.performance_test_weights`), and the student's
belief draws and weighs the same way, so its inputs gain the weighted draws' summary
(`agents.mpc.PERFORMANCE_FEATURE_NAMES`). Such a student is handed the tests as the planner is
(`DistilledPlanner.observe_performance`, `periodize plan --policy RUN --tests CSV`). What
the tests are worth to the student is measured by `benchmarks/performance_tests.py`
(docs/results.md).

The injury guard (`SACConfig.hazard_margin`, set for a SAC fine-tuned from a student,
`agents.sac_warm`): the planner prices tonight's injury or illness onset in its objective, a
network only copies or learns around it, and the warm-started SAC had about 0.1 more injured
days per athlete and 90 days than the tested planner (issue 20). With a margin, each
morning the belief computes every session's onset hazard tonight (`AthleteBelief.
night_hazards`: the reported loads followed by the session's, this morning's recovery, the
population's typical hazard, as the planner's first roll-out day) and the network chooses
among the allowed sessions within `margin` of the lowest (`guarded_mask`). It is applied
where the policy acts (evaluations, plans), not in the SAC's training env: a shield on a
trained policy (Alshiekh et al. 2018, "Safe reinforcement learning via shielding", AAAI), not
a hard rule (the plan's `reason` names only those).

The network is `DiscreteSAC`'s actor (the same network, observation normaliser and checkpoint
format) trained by masked cross-entropy with early stopping on held-out athletes; its critics
are not trained. What did not raise the agreement on those 256 athletes: the CEM's final
day-0 frequencies as soft targets instead of its chosen session, a wider network (512-256-128),
less dropout, smaller batches, and 14 days of sessions instead of 6.

    run_dir = distill(model, cohort, out_dir="runs", run_name="mpc-distilled")
    policy = agents.training.load_agent(run_dir)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.lanes import lane_rng
from agents.mpc import AthleteBelief, MPCConfig, MPCPlanner, belief_feature_names
from agents.policy import check_batch
from agents.runs import write_run_record
from agents.sac import DiscreteSAC, SACConfig, masked_log_probs
from physiology_model.jsonio import jsonable
from physiology_model.model.world_model import WorldModel, resolve_model_dir
from simulator.cohort import Cohort
from simulator.env import EnvConfig, Simulation
from simulator.observation import FEATURE_INDEX


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
    tests_every: int = 0
    """Days between the simulated athletes' performance tests while labelling (0: none): the
    teacher is then the planner that weighs `performance_draws` draws of the performance
    response by the tests, and the student sees the draws' summary
    (`agents.mpc.PERFORMANCE_FEATURE_NAMES`) and must be handed the tests when it plans."""
    performance_draws: int = 0
    """`MPCConfig.performance_draws` of the teacher and the student's belief (needed with
    tests; 1,024 is what `periodize plan --tests` uses)."""
    test_cv: float = MPCConfig.performance_test_cv
    """The tests' repeatability (`Simulation.performance_test`, `MPCConfig.
    performance_test_cv`)."""

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("rounds, max_epochs, patience and batch_size must be ≥ 1")
        if self.tests_every < 0 or self.performance_draws < 0 or self.test_cv <= 0:
            raise ValueError("tests_every and performance_draws must be ≥ 0 and test_cv > 0")
        if self.tests_every and not self.performance_draws:
            raise ValueError("tests weigh the performance draws: set performance_draws > 0 "
                             "with tests_every")
        if not 0.0 <= self.student_share <= 1.0:
            raise ValueError(f"student_share must be in [0, 1], got {self.student_share}")
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError(f"validation_share must be in (0, 1), got {self.validation_share}")


BELIEF_FORMAT = "adaptive-periodization.DistilledPlanner"
BELIEF_SETTINGS: tuple[str, ...] = ("scenarios", "parameters", "summary_draws",
                                    "personalize_days", "personalize_proposals",
                                    "personalize_draws", "personalize_rounds",
                                    "performance_draws", "performance_test_cv")
"""The `MPCConfig` fields that decide the belief (the rest configure the search)."""


def n_inputs(config: MPCConfig) -> int:
    """The student network's inputs under the belief `config`: the observation and the
    belief's features (`agents.mpc.belief_feature_names`)."""
    return len(FEATURE_INDEX) + len(belief_feature_names(config))


N_INPUTS = n_inputs(MPCConfig())
"""The inputs of a student whose belief does not draw the performance response."""


def student_inputs(obs: np.ndarray, belief: AthleteBelief) -> np.ndarray:
    """The network's input (N, n_inputs): the observation and the belief after `observe(obs)`."""
    return np.concatenate([np.asarray(obs, dtype=np.float32), belief.features()], axis=1)


def guarded_mask(hazards: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """`mask` without the sessions whose onset hazard tonight (`AthleteBelief.night_hazards`,
    (N, A)) exceeds the lowest of the allowed sessions' by more than `margin`: the injury
    guard of a trained policy (module docstring). The lowest-hazard allowed session always
    stays, so a row that allowed something still does."""
    allowed = np.where(mask, hazards, np.inf)
    return mask & (allowed <= allowed.min(axis=1, keepdims=True) + margin)


class DistilledPlanner:
    """The distilled planner as a `Policy` (module docstring): the planner's belief tracker and
    a network on (observation, belief). Batched over athletes; call `act` once per morning."""

    name = "mpc-distilled"

    def __init__(self, model: Any, network: DiscreteSAC, config: MPCConfig | None = None,
                 seed: int = 0, model_dir: str | None = None) -> None:
        self.config = config or MPCConfig()
        if network.n_features != n_inputs(self.config):
            raise ValueError(f"the network takes {network.n_features} inputs, the student "
                             f"{n_inputs(self.config)} (observation + belief)")
        self.network, self.model_dir = network, model_dir
        if network.name != "mpc-distilled":  # a SAC fine-tuned from a student (sac_warm)
            self.name = network.name
        self._rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.belief = AthleteBelief(model, self.config, self._rng)

    def reset(self, seed: Any = None) -> None:
        """A new episode: forget the athletes; reseed when `seed` is given: an int, or one
        `SeedSequence` per athlete (`agents.lanes`; the network then acts deterministically,
        drawing nothing)."""
        lanes = isinstance(seed, (list, tuple))
        if lanes and not getattr(self.network, "deterministic", True):
            raise ValueError("per-athlete streams need a deterministic network")
        if seed is not None:
            self._rng = lane_rng(seed)
        self.belief.reset(self._rng)
        self.network.reset(None if lanes else seed)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's session of each athlete, (N,) int64, allowed by `mask`."""
        obs, mask = check_batch(obs, mask)
        self.belief.observe(obs)
        margin = self.network.config.hazard_margin
        if margin is not None:
            mask = guarded_mask(self.belief.night_hazards(), mask, margin)
        action = self.network.act(student_inputs(obs, self.belief), mask)
        self.belief.record_executed(action)
        return action

    def record_executed(self, actions: np.ndarray) -> None:
        """The sessions actually done today when a rule changed them (`AthleteBelief`)."""
        self.belief.record_executed(actions)

    def observe_performance(self, results: np.ndarray) -> None:
        """Performance tests done this morning, (N,) (NaN: none), before `act`
        (`AthleteBelief.observe_performance`): a student distilled with tests
        (`DistillConfig.tests_every`) reads what they tell through its belief."""
        self.belief.observe_performance(results)

    def replay(self, observations: np.ndarray, actions: np.ndarray,
               tests: np.ndarray | None = None, posterior: Any = None) -> None:
        """A real athlete's past mornings, sessions and tests, and its posterior when the
        caller has it, before today (`AthleteBelief.replay`); call after `reset`."""
        self.belief.replay(observations, actions, tests, posterior)

    def save(self, directory: str | Path) -> Path:
        """The network's checkpoint plus `belief.json` (the belief's settings and the world
        model's directory)."""
        d = self.network.save(directory)
        settings = {k: getattr(self.config, k) for k in BELIEF_SETTINGS}
        (d / "belief.json").write_text(json.dumps(jsonable(
            {"format": BELIEF_FORMAT, "model_dir": self.model_dir, "belief": settings}),
            indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path, model: Any = None,
             device: torch.device | str = "cpu") -> DistilledPlanner:
        """The student saved by `save`; the world model is `model` or, when None, the one in
        the directory `belief.json` names."""
        path = Path(directory) / "belief.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a distilled planner ({exc}); distillations from "
                             "before the student saw the belief must be run again") from None
        if not isinstance(meta, dict) or meta.get("format") != BELIEF_FORMAT:
            raise ValueError(f"{path} is not a {BELIEF_FORMAT} file")
        if not isinstance(meta.get("belief"), dict) or not isinstance(
                meta.get("model_dir") or "", str):
            problem = "field 'belief' must be an object and 'model_dir' a path"
            raise ValueError(f"{path}: {problem}")  # noqa: TRY004 (the loaders' error type)
        if model is None:
            if not meta.get("model_dir"):
                raise ValueError(f"{path} names no world model: pass the model it was "
                                 "distilled with")

            model = WorldModel.load(resolve_model_dir(meta["model_dir"]))
        settings = {k: tuple(v) if isinstance(v, list) else v
                    for k, v in meta["belief"].items()}
        try:
            config = replace(MPCConfig(), **settings)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: field 'belief': {exc}") from None
        network = DiscreteSAC.load(directory, device=device)
        return cls(model, network, config,
                   model_dir=meta.get("model_dir"))


def planner_labels(model: Any, cohort: Cohort, env_config: EnvConfig, seed: int, *,
                   network: DiscreteSAC | None = None, student_share: float = 0.0,
                   mpc_config: MPCConfig | None = None, tests_every: int = 0,
                   test_cv: float = MPCConfig.performance_test_cv
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One episode of every athlete of `cohort`: (student inputs (D·N, n_inputs), mask
    (D·N, 6), planner's session (D·N,), athlete index (D·N,)), mornings in day-major order.
    The inputs' belief is the planner's own. With a student `network`, each morning the
    student's session is done instead of the planner's with probability `student_share` (the
    label is the planner's either way). With `tests_every` > 0 the planner is handed a
    performance test (`Simulation.performance_test` at `test_cv`) every that many mornings
    from the first, before it plans (its config needs `performance_draws`)."""
    sim = Simulation(cohort, cohort.n, env_config)
    obs = sim.reset(seed)
    planner = MPCPlanner(model, mpc_config or MPCConfig(episode_days=env_config.episode_days),
                         seed=seed)
    planner.reset(seed)
    rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    rows_inputs, rows_mask, rows_label = [], [], []
    for day in range(env_config.episode_days):
        if tests_every and day % tests_every == 0:
            planner.observe_performance(sim.performance_test(test_cv, test_rng))
        mask = sim.agent_mask.copy()
        label = planner.act(obs, mask)
        inputs = student_inputs(obs, planner.belief)
        action = label
        if network is not None and student_share > 0:
            own = network.act(inputs, mask)
            action = np.where(rng.random(cohort.n) < student_share, own, label)
        rows_inputs.append(inputs)
        rows_mask.append(mask)
        rows_label.append(label)
        obs, _, _ = sim.step(action)
        planner.record_executed(sim.last_executed)
    athletes = np.tile(np.arange(cohort.n), env_config.episode_days)
    return (np.concatenate(rows_inputs), np.concatenate(rows_mask),
            np.concatenate(rows_label), athletes)


def fit_student(obs: np.ndarray, mask: np.ndarray, labels: np.ndarray, athletes: np.ndarray,
                config: DistillConfig, seed: int,
                student: DiscreteSAC | None = None) -> tuple[DiscreteSAC, dict[str, float]]:
    """Train (or keep training) a network on labelled inputs `obs` (M, F) by masked
    cross-entropy; athletes in a random `validation_share` stop it early. Returns the network
    (best validation loss) and its training report."""
    if student is None:
        # trained by cross-entropy on `actor` itself: no Polyak-averaged copy acts
        student = DiscreteSAC(SACConfig(hidden_sizes=config.hidden_sizes,
                                        dropout=config.dropout, actor_polyak=0.0,
                                        tests_every=config.tests_every), seed=seed,
                              n_features=obs.shape[1], name="mpc-distilled")
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


def _labelling(env_config: EnvConfig | None, config: DistillConfig
              ) -> tuple[EnvConfig, MPCConfig]:
    """The env (discrete actions) the planner labels in, and the planner's settings."""
    env_cfg = replace(env_config or EnvConfig(), action_type="discrete")
    return env_cfg, MPCConfig(episode_days=env_cfg.episode_days,
                              performance_draws=config.performance_draws,
                              performance_test_cv=config.test_cv)


def distill_settings(n_athletes: int, seed: int = 0, config: DistillConfig = DistillConfig(),
                     env_config: EnvConfig | None = None) -> dict[str, Any]:
    """What decides a distilled run's result, as `distill` records it in `run.json` (JSON
    values): the cohort size, seed, env, student and planner settings. Two runs with equal
    settings on the same cohort are the same run (a finished one can be reused)."""
    env_cfg, planner_config = _labelling(env_config, config)
    return jsonable({"agent": "mpc-distilled", "seeds": seed, "n_envs": n_athletes,
                     "env_config": env_cfg, "agent_config": config,
                     "planner_config": planner_config,
                     "student_inputs": ["observation", "belief"]})


def distill(model: Any, cohort: Cohort | str | Path, *, seed: int = 0,
            out_dir: str | Path = "runs", run_name: str = "mpc-distilled",
            config: DistillConfig = DistillConfig(), env_config: EnvConfig | None = None,
            model_dir: str | None = None,
            progress: Callable[[str], None] | None = None) -> Path:
    """Distil the MPC planner into a policy network (module docstring) and save it as a run
    directory `agents.training.load_agent` reads (`run.json` + `model/`). `progress` is told
    when each round starts and how well its student agrees with the planner."""
    cohort_obj = cohort if isinstance(cohort, Cohort) else Cohort.load(cohort)
    run_dir = Path(out_dir) / run_name
    if (run_dir / "run.json").exists():
        raise ValueError(f"{run_dir} already holds a run; choose another run_name or out_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    env_cfg, planner_config = _labelling(env_config, config)
    started = time.perf_counter()
    data: list[tuple[np.ndarray, ...]] = []
    network, reports = None, []
    for round_ in range(config.rounds):
        if progress:
            progress(f"distilling, round {round_ + 1} of {config.rounds}: the planner labels "
                     f"{cohort_obj.n} athletes × {env_cfg.episode_days} days")
        labelled = planner_labels(model, cohort_obj, env_cfg, seed + round_, network=network,
                                  student_share=0.0 if round_ == 0 else config.student_share,
                                  mpc_config=planner_config, tests_every=config.tests_every,
                                  test_cv=config.test_cv)
        data.append(labelled)
        # an athlete's mornings of every round fall on the same side of the validation split
        obs, mask, labels, athletes = (np.concatenate(parts) for parts in zip(*data))
        network, report = fit_student(obs, mask, labels, athletes, config, seed)
        report["round"] = round_ + 1
        if progress:
            progress(f"distilling, round {round_ + 1}: the student chooses the planner's "
                     f"session on {100 * report['validation_accuracy']:.0f} % of held-out "
                     "mornings")
        reports.append(report)
    DistilledPlanner(model, network, planner_config, seed, model_dir).save(run_dir / "model")
    wall = time.perf_counter() - started
    write_run_record(run_dir, {
        **distill_settings(cohort_obj.n, seed, config, env_config), "steps": len(labels),
        "model_dir": model_dir, "cohort": {"n": cohort_obj.n, "meta": cohort_obj.meta},
        "device": "cpu",
        "report": {"env_steps": len(labels), "wall_seconds": wall, "rounds": reports,
                   "episode_returns": []}})
    return run_dir
