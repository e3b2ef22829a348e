"""SB3's continuous SAC with an asymmetric critic (agents/sb3_agents.py): in training the
critics receive the simulator's critic state and the actor does not; the deployed adapter
acts from the observation alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.policy import N_FEATURES
from agents.sac import RunningNormalizer
from agents.sb3_agents import (
    ContinuousSACPolicy,
    CriticStateVecEnv,
    NormalizedVecEnv,
    SB3SACConfig,
    build_sb3_policy_network,
    load_sb3_policy,
)
from agents.training import load_agent, train
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import CRITIC_STATE_NAMES, BatchedPeriodizationEnv, EnvConfig

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT_ENV = EnvConfig(episode_days=20, warmup_days=28, action_type="continuous")
L = len(CRITIC_STATE_NAMES)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(WorldModel.load(MODEL_DIR), 8, seed=5)


def test_the_training_env_appends_the_critic_state_to_the_observation(cohort) -> None:
    base = BatchedPeriodizationEnv(cohort, 8, SHORT_ENV, seed=0)
    venv = CriticStateVecEnv(NormalizedVecEnv(base, RunningNormalizer(N_FEATURES)), base,
                             RunningNormalizer(L))
    obs = venv.reset()
    assert obs.shape == (8, N_FEATURES + L) == (8, venv.observation_space.shape[0])
    np.testing.assert_allclose(
        obs[:, N_FEATURES:],
        venv.normalizer(torch.as_tensor(base.critic_states())).numpy(), rtol=1e-5)
    for _ in range(SHORT_ENV.episode_days):
        obs, _, dones, infos = venv.step(np.zeros((8, 2), np.float32))
    assert dones.all() and infos[0]["terminal_observation"].shape == (N_FEATURES + L,)


def test_the_critic_reads_the_critic_state_and_the_actor_does_not() -> None:
    policy = build_sb3_policy_network("sac-continuous", (16, 16), n_latent=L)
    policy.set_training_mode(False)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(5, N_FEATURES + L)).astype(np.float32))
    y = x.clone()
    y[:, N_FEATURES:] += 3.0  # another latent state, the same observation
    with torch.no_grad():
        torch.testing.assert_close(policy.actor(x, deterministic=True),
                                   policy.actor(y, deterministic=True))
        a = policy.actor(x, deterministic=True)
        assert not torch.allclose(policy.critic(x, a)[0], policy.critic(y, a)[0])
        z = x.clone()
        z[:, 0] += 3.0  # the observation itself does reach the actor
        assert not torch.allclose(policy.actor(z, deterministic=True), a)
    assert policy.actor.features_extractor.features_dim == N_FEATURES
    assert policy.critic.features_extractor.features_dim == N_FEATURES + L


def test_an_asymmetric_run_saves_data_only_and_acts_from_the_observation(cohort,
                                                                        tmp_path) -> None:
    config = SB3SACConfig(hidden_sizes=(16, 16), batch_size=32, buffer_size=2_000,
                          learning_starts=100, replay_ratio=0.125, gamma=1.0,
                          asymmetric_critic=True, tests_every=0)
    run = train("sac-continuous", cohort, 8 * 20 * 2, seed=0, device="cpu", out_dir=tmp_path,
                n_envs=8, env_config=SHORT_ENV, agent_config=config, progress=False)
    assert sorted(p.name for p in (run / "model").iterdir()) == [
        "normalizer.pt", "policy.json", "policy.pt"]
    policy = load_agent(run)
    assert isinstance(policy, ContinuousSACPolicy) and policy.n_latent == L
    env = BatchedPeriodizationEnv(cohort, 8, SHORT_ENV, seed=3)
    obs = env.reset()
    actions = policy.act(obs, env.action_masks())
    assert actions.shape == (8, 2) and np.all(np.abs(actions) <= 1.0)
    again = load_sb3_policy(run / "model")
    np.testing.assert_array_equal(again.act(obs, env.action_masks()), actions)
    entropy, gap = policy.diagnostics(obs, env.action_masks())
    assert np.isfinite(entropy).all() and np.isnan(gap).all()  # no latent outside training
    from analysis.benchmark import run_policy  # the evaluator offers it the latent state

    scored = run_policy("sac-continuous", lambda sim: policy, cohort, SHORT_ENV, seed=0)
    assert np.isfinite(scored.metrics["delta_performance"]).all()
    with pytest.raises(ValueError, match="CriticStateVecEnv"):
        from agents.sb3_agents import make_sb3_sac

        make_sb3_sac(NormalizedVecEnv(env, RunningNormalizer(N_FEATURES)),
                     replace(config, learning_starts=0))
