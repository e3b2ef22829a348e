"""The tested athlete: a masked discrete SAC whose actor reads monthly performance tests.

The wearable does not identify how an athlete's performance responds to training (the
planner blind to it keeps 72-79 % of the oracle's gain; with a monthly test it reaches 94 %,
issue 20). An athlete who runs a test every `tests_every` days gives the policy that
information. What the actor is given of it is the summary the tested distilled student
(`agents.distill`, `DistillConfig.tests_every`) gets from the same estimator: an
`agents.mpc.AthleteBelief` draws `draws` performance responses from the prior, tracks each
draw's Banister states through the loads the wearable reports, and weighs the draws by the
tests (`agents.mpc.performance_test_weights`); its summary
(`agents.mpc.PERFORMANCE_FEATURE_NAMES`: the weighted log gains and time constants, the
steady load the weighted draws favour, the effective share of draws left) is appended to
the 48 observed features. Only that part of the belief is computed: its physiology part
(personalised posteriors, `belief_*` of `BELIEF_FEATURE_NAMES`) costs a posterior fit per
athlete and personalisation day, which a training loop of millions of mornings cannot pay,
and the actor already sees the wearable's features it is estimated from. That makes this the
"cheaper summary" of issue 20's Deliver item 3.

The test is that day's session (the maintainers' protocol: `periodize evaluate --tests-every
28 --test-session tempo_threshold`, `analysis.benchmark.PerformanceTesting`): on a due morning
the athlete does `test_session` when the rules allow it, else on the first morning after that
they do. In training (`TestedTrainingEnv`) the mask given to the agent on a test morning
allows the test session only, so the stored transition is the one executed.

SB3's continuous SAC is tested the same way (`agents.sb3_agents.SB3SACConfig.tests_every`):
the same training env, whose continuous lanes have the test fixed as the day's session
(`simulator.env.Simulation.step`'s `fixed`), and the same deployed wrapper around its adapter.

`TestedSAC` is the deployed policy (`agents.policy.Policy`; it reads tests: its `config`
has `performance_draws` > 0, which `agents.policy.reads_performance_tests` checks, and it
has `observe_performance`, `record_executed`, `replay` and `belief`, as `periodize evaluate
--tests-every` and `periodize plan --policy` use them). Its checkpoint is the
`DiscreteSAC`'s (weights read with `weights_only=True`, JSON settings) plus `tests.json`
(the belief's settings and the world model's directory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnvWrapper

from agents.mpc import (
    PERFORMANCE_FEATURE_NAMES,
    AthleteBelief,
    MPCConfig,
    belief_feature_names,
)
from agents.policy import N_FEATURES, check_batch
from agents.sac import DiscreteSAC
from physiology_model.data.table import ACTIONS, N_ACTIONS
from simulator.constraints import enforce
from simulator.env import EnvConfig, continuous_session, session_class

TESTED_FORMAT = "adaptive-periodization.TestedSAC"
N_TEST_FEATURES = len(PERFORMANCE_FEATURE_NAMES)
DEFAULT_TEST_SESSION = "tempo_threshold"
"""A 5-km time trial is a tempo/threshold session."""


@dataclass(frozen=True)
class TestSettings:
    """How the athlete is tested and what the actor's belief draws."""

    __test__ = False  # not a pytest class

    every: int = 28
    """Days between tests, from the first morning."""
    session: str | None = DEFAULT_TEST_SESSION
    """The action the test is (None: a free test, no session spent)."""
    draws: int = 1024
    """Performance responses drawn per athlete (`MPCConfig.performance_draws`; 1,024 is what
    `periodize plan --tests` and the `mpc_tested` policy use)."""
    cv: float = MPCConfig.performance_test_cv
    """The tests' repeatability (a 5-km time trial's)."""

    def __post_init__(self) -> None:
        if self.every < 1 or self.draws < 1 or not 0.0 < self.cv < 1.0:
            raise ValueError(f"tests need every ≥ 1, draws ≥ 1 and cv in (0, 1), got "
                             f"{self.every}, {self.draws}, {self.cv}")
        if self.session is not None and self.session not in ACTIONS:
            raise ValueError(f"test session must be one of {ACTIONS}, got {self.session!r}")

    @property
    def session_index(self) -> int | None:
        return None if self.session is None else ACTIONS.index(self.session)

    def belief_config(self) -> MPCConfig:
        """The belief of the performance response only: no personalisation, one scenario of
        the population median physiology (its features are not used)."""
        return MPCConfig(performance_draws=self.draws, performance_test_cv=self.cv,
                         personalize_days=(), scenarios=1, summary_draws=1)


def test_features(belief: AthleteBelief) -> np.ndarray:
    """The performance part of the belief's features, (N, N_TEST_FEATURES) float32."""
    return belief.features()[:, -N_TEST_FEATURES:]


def load_world_model(model_dir: str | None) -> Any:
    """The world model the belief draws the physiology from (`model_dir`, or the shipped one,
    also for the name `shipped`, wherever the package is)."""
    from physiology_model.model.world_model import SHIPPED, WorldModel, resolve_model_dir

    return WorldModel.load(resolve_model_dir(model_dir or SHIPPED))


class TestedSAC:
    """An actor whose input is the observation and the test belief (module docstring), as a
    `Policy` that reads performance tests: our `DiscreteSAC`, or SB3's continuous SAC
    (`agents.sb3_agents.ContinuousSACPolicy`, `action_type` continuous; the session it asks
    for is the class of its (duration, intensity) under `env_config`, as the env executes
    it). Batched over athletes; `act` once per morning, `observe_performance(results)` before
    it on a test morning."""

    name = "sac-tested"
    __test__ = False  # not a pytest class

    def __init__(self, network: Any, model: Any, tests: TestSettings = TestSettings(),
                 seed: int = 0, model_dir: str | None = None,
                 env_config: EnvConfig | None = None) -> None:
        if network.n_features != N_FEATURES + N_TEST_FEATURES:
            raise ValueError(f"the network takes {network.n_features} inputs, the tested "
                             f"actor {N_FEATURES + N_TEST_FEATURES} (observation + tests)")
        self.network, self.tests, self.model_dir = network, tests, model_dir
        self.action_type = getattr(network, "action_type", "discrete")
        if self.action_type == "continuous":
            self.name = network.name
        self.env_config = env_config or EnvConfig()
        self.config = tests.belief_config()
        self._rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.belief = AthleteBelief(model, self.config, self._rng)

    @property
    def deterministic(self) -> bool:
        return self.network.deterministic

    @deterministic.setter
    def deterministic(self, value: bool) -> None:
        self.network.deterministic = value

    def reset(self, seed: int | None = None) -> None:
        """A new episode: forget the athletes and their tests; reseed when `seed` is given."""
        if seed is not None:
            self._rng = np.random.default_rng(np.random.SeedSequence(seed))
        self.belief.reset(self._rng)
        self.network.reset(seed)

    def inputs(self, obs: np.ndarray) -> np.ndarray:
        """The actor's input after this morning's `belief.observe(obs)`: (N, 48 + 7)."""
        return np.concatenate([np.asarray(obs, np.float32), test_features(self.belief)], 1)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's session of each athlete, (N,) int64, allowed by `mask`."""
        obs, mask = check_batch(obs, mask)
        self.belief.observe(obs)
        action = self.network.act(self.inputs(obs), mask)
        if self.action_type == "continuous":
            asked = session_class(continuous_session(action, self.env_config))
            self.belief.record_executed(enforce(asked, mask)[0])
        else:
            self.belief.record_executed(action)
        return action

    def observe_performance(self, results: np.ndarray) -> None:
        """This morning's tests, (N,) (NaN: none), before `act`."""
        self.belief.observe_performance(results)

    def record_executed(self, actions: np.ndarray) -> None:
        """The sessions actually done today (a test session, a rule's step-down)."""
        self.belief.record_executed(actions)

    def replay(self, observations: np.ndarray, actions: np.ndarray,
               tests: np.ndarray | None = None, posterior: Any = None) -> None:
        """A real athlete's past mornings, sessions and tests, and its posterior when the
        caller has it (`AthleteBelief.replay`)."""
        self.belief.replay(observations, actions, tests, posterior)

    def save(self, directory: str | Path) -> Path:
        """The network's checkpoint plus `tests.json`."""
        d = self.network.save(directory)
        settings = {"every": self.tests.every, "session": self.tests.session,
                    "draws": self.tests.draws, "cv": self.tests.cv}
        (d / "tests.json").write_text(json.dumps(
            {"format": TESTED_FORMAT, "model_dir": self.model_dir, "tests": settings},
            indent=2) + "\n")
        return d

    @staticmethod
    def is_checkpoint(directory: str | Path) -> bool:
        return (Path(directory) / "tests.json").is_file()

    @classmethod
    def load(cls, directory: str | Path, model: Any = None,
             device: torch.device | str = "cpu") -> TestedSAC:
        """The policy `save` wrote; the world model is `model` or the one `tests.json` names
        (the shipped one when it names none)."""
        from agents.checkpoint_io import CheckpointError, read_settings

        path = Path(directory) / "tests.json"
        meta = read_settings(path)
        if meta.get("format") != TESTED_FORMAT:
            raise CheckpointError(path, f"not a {TESTED_FORMAT} file")
        settings, model_dir = meta.get("tests"), meta.get("model_dir")
        if not isinstance(settings, dict) or not isinstance(model_dir or "", str):
            raise CheckpointError(path, "field 'tests' must be an object and 'model_dir' a "
                                        "path")
        try:
            tests = TestSettings(**settings)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(path, f"field 'tests': {exc}") from None
        if (Path(directory) / "policy.json").is_file():  # SB3's continuous SAC
            from agents.sb3_agents import load_sb3_policy

            network = load_sb3_policy(directory, device=device)
        else:
            network = DiscreteSAC.load(directory, device=device)
        return cls(network, load_world_model(model_dir) if model is None else model, tests,
                   model_dir=model_dir)


class TestedTrainingEnv(VecEnvWrapper):
    """A `simulator.env.BatchedPeriodizationEnv` whose athletes are tested (module
    docstring), as an SB3 `VecEnv` (what `agents.sac.train_sac` and SB3's SAC read):
    observations (N, 48 + 7) with the test belief's features and `critic_states()` passed
    through. On a test morning where the test is the session, a discrete env's
    `action_masks()` allow only that session (so the transition stored is the one done); a
    continuous env's lanes have the session fixed for the day (`BatchedPeriodizationEnv.
    fixed`), whatever (duration, intensity) the agent asked. The belief learns the session
    each lane did (`Simulation.last_executed`)."""

    __test__ = False  # not a pytest class

    def __init__(self, env: Any, model: Any, tests: TestSettings | None, seed: int = 0,
                 belief_config: MPCConfig | None = None, all_features: bool = False) -> None:
        """`belief_config` (default `tests.belief_config()`, the tests' part only) and
        `all_features` (the actor reads every feature of the belief, `AthleteBelief.features`,
        not only the tests' summary) serve the warm start from a distilled student
        (`agents.sac_warm`), whose belief and inputs they reproduce; `tests` None: no tests
        (a student distilled without them)."""
        import gymnasium as gym

        if tests is None and belief_config is None:
            raise ValueError("a training env without tests needs the belief's belief_config")
        belief_config = belief_config or tests.belief_config()
        n_extra = (len(belief_feature_names(belief_config)) if all_features
                   else N_TEST_FEATURES)
        space = gym.spaces.Box(-np.inf, np.inf, shape=(N_FEATURES + n_extra,),
                               dtype=np.float32)
        super().__init__(env, observation_space=space)
        self.env, self.tests = env, tests
        self.continuous = env.config.action_type == "continuous"
        streams = np.random.SeedSequence(seed).spawn(2)
        self._belief_rng = np.random.default_rng(streams[0])
        self._test_rng = np.random.default_rng(streams[1])
        self.belief = AthleteBelief(model, belief_config, self._belief_rng)
        self._features = (lambda b: b.features()) if all_features else test_features
        self._due = np.zeros(self.num_envs, dtype=bool)
        self._mask: np.ndarray | None = None
        self._fixed = np.full(self.num_envs, -1, dtype=np.int64)
        self.tested_mornings = 0
        """Lane-mornings tested so far (a check that the tests happen)."""

    @property
    def sim(self) -> Any:
        return self.env.sim

    def _morning(self, obs: np.ndarray) -> np.ndarray:
        """Tests due this morning, the belief's update and the agent's mask; the actor's input."""
        sim, tests = self.env.sim, self.tests
        mask = self.env.action_masks()
        self._fixed[:] = -1
        if tests is not None:
            self._due |= sim.day % tests.every == 0
            session = tests.session_index
            tested = self._due if session is None else self._due & sim.mask[:, session]
            if tested.any():
                results = sim.performance_test(tests.cv, self._test_rng)
                self.belief.observe_performance(np.where(tested, results, np.nan))
                self.tested_mornings += int(tested.sum())
            self._due &= ~tested
            if session is not None:
                self._fixed[tested] = session
                forced = np.zeros_like(mask)
                forced[:, session] = True
                mask = np.where(tested[:, None], forced, mask)
        self._mask = mask
        self.belief.observe(obs)
        return np.concatenate([np.asarray(obs, np.float32), self._features(self.belief)], 1)

    def _new_episode(self, obs: np.ndarray) -> np.ndarray:
        self.belief.reset(self._belief_rng)
        self._due[:] = False
        return self._morning(obs)

    def reset(self) -> np.ndarray:
        return self._new_episode(self.env.reset())

    def action_masks(self) -> np.ndarray:
        assert self._mask is not None, "reset() first"
        return self._mask.copy()

    def critic_states(self) -> np.ndarray:
        return self.env.critic_states()

    def step_async(self, actions: np.ndarray) -> None:
        if self.continuous:
            self.env.fixed = self._fixed.copy()
        self.env.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.env.step_wait()
        self.belief.record_executed(self.sim.last_executed)
        if np.any(dones):
            for i in np.flatnonzero(dones):
                if "terminal_observation" not in infos[i]:
                    raise ValueError("the env ended an episode without a terminal observation")
            terminal = np.stack([infos[i]["terminal_observation"] for i in range(len(infos))
                                 if "terminal_observation" in infos[i]])
            if len(terminal) == self.num_envs:  # lockstep lanes: the judging-day morning
                self.belief.observe(terminal)
                feats = self._features(self.belief)
                for i in np.flatnonzero(dones):
                    infos[i]["terminal_observation"] = np.concatenate(
                        [np.asarray(terminal[i], np.float32), feats[i]])
                    infos[i]["terminal_action_mask"] = np.ones(N_ACTIONS, dtype=bool) \
                        if "terminal_action_mask" not in infos[i] \
                        else infos[i]["terminal_action_mask"]
                return self._new_episode(obs), rewards, dones, infos
            raise ValueError("the tested env needs lanes that end their episodes together")
        return self._morning(obs), rewards, dones, infos

    def close(self) -> None:
        self.env.close()
