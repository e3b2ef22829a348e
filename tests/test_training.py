"""`agents.training.train` / `load_agent` on the real batched env, device selection, and the SB3
learners' adapters."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import device as device_module
from agents.device import select_device
from agents.policy import Policy
from agents.runs import RUN_FORMAT
from agents.sac import SACConfig
from agents.sb3_agents import PPOConfig, SB3SACConfig
from agents.training import (
    agent_config,
    evaluate_on_cohort,
    load_agent,
    run_settings,
    train,
)
from physiology_model.errors import DataError
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import BatchedPeriodizationEnv, EnvConfig

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT_ENV = EnvConfig(episode_days=20, warmup_days=28)
TINY_SAC = SACConfig(hidden_sizes=(32, 32), batch_size=64, buffer_size=5_000,
                     learning_starts=100, replay_ratio=0.05, tests_every=0)
"""The wearable SAC (the tested one, the default, has its own tests: test_sac_tested.py)."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohorts():
    model = WorldModel.load(MODEL_DIR)
    return generate_cohort(model, 16, seed=0), generate_cohort(model, 12, seed=1000)


def _morning(cohort, n: int = 12, action_type: str = "discrete"):
    env = BatchedPeriodizationEnv(cohort, n, replace(SHORT_ENV, action_type=action_type),
                                  seed=77)
    obs = env.reset()
    for _ in range(5):  # a few days in, so that masks and features vary
        mask = env.action_masks()
        action = (np.zeros((n, 2), np.float32) if action_type == "continuous"
                  else np.argmax(mask, axis=1))
        obs, *_ = env.step(action)
    return obs, env.action_masks()


# -- device selection ------------------------------------------------------------------------


def test_cuda_is_selected_only_when_available(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")
    assert select_device("cuda") == torch.device("cuda")
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        select_device("gpu")
    assert device_module.DEVICE_CHOICES == ("auto", "cpu", "cuda")


def test_train_refuses_cuda_without_a_gpu(monkeypatch, cohorts, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        train("sac", cohorts[0], 100, device="cuda", out_dir=tmp_path, n_envs=4,
              progress=False)
    assert not any(tmp_path.iterdir())  # nothing written before the error


# -- our SAC through train() -----------------------------------------------------------------


def test_train_sac_writes_a_run_that_loads_back_to_identical_actions(cohorts, tmp_path) -> None:
    steps = 8 * 20 * 3  # three 20-day episodes of 8 lanes
    run_dir = train("sac", cohorts[0], steps, seed=3, device="auto", out_dir=tmp_path,
                    n_envs=8, env_config=SHORT_ENV, agent_config=TINY_SAC, progress=False,
                    checkpoint_every=8 * 20)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["agent"] == "sac"
    assert meta["report"]["env_steps"] == steps and meta["report"]["gradient_steps"] > 0
    assert len(meta["report"]["episode_returns"]) == 3
    assert meta["device"] == str(select_device("auto"))
    assert meta["agent_config"]["hidden_sizes"] == [32, 32]
    settings = run_settings("sac", steps, 3, 8, SHORT_ENV, TINY_SAC)
    assert {k: meta[k] for k in settings} == settings  # what full_evaluation compares
    assert run_settings("sac", steps, 4, 8, SHORT_ENV, TINY_SAC)["seeds"] != meta["seeds"]
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert len(list((run_dir / "checkpoints").iterdir())) == 3
    policy = load_agent(run_dir)
    assert isinstance(policy, Policy) and policy.name == "sac"
    again = load_agent(run_dir)
    obs, mask = _morning(cohorts[1])
    actions = policy.act(obs, mask)
    assert np.array_equal(again.act(obs, mask), actions)
    assert mask[np.arange(len(actions)), actions].all()
    with pytest.raises(ValueError, match="already holds a run"):
        train("sac", cohorts[0], steps, seed=3, out_dir=tmp_path, n_envs=8,
              env_config=SHORT_ENV, agent_config=TINY_SAC, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_a_run_trained_on_cuda_plans_the_same_on_the_cpu(cohorts, tmp_path, agent) -> None:
    """Train on a GPU machine, recommend on a laptop: the checkpoint carries no device."""
    steps = 8 * 20 * 3
    config = TINY_SAC if agent == "sac" else PPOConfig(n_steps=20, batch_size=80, n_epochs=1,
                                                       hidden_sizes=(32, 32))
    run_dir = train(agent, cohorts[0], steps, seed=3, device="cuda", out_dir=tmp_path,
                    n_envs=8, env_config=SHORT_ENV, agent_config=config, progress=False)
    assert json.loads((run_dir / "run.json").read_text())["device"].startswith("cuda")
    obs, mask = _morning(cohorts[1])
    on_gpu, on_cpu = load_agent(run_dir, device="cuda"), load_agent(run_dir, device="cpu")
    assert np.array_equal(on_gpu.act(obs, mask), on_cpu.act(obs, mask))


@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_max_seconds_ends_training_early_and_saves_the_run(cohorts, tmp_path, agent) -> None:
    config = TINY_SAC if agent == "sac" else PPOConfig(n_steps=20, batch_size=80, n_epochs=1,
                                                       hidden_sizes=(32, 32))
    steps = 10 ** 7
    run_dir = train(agent, cohorts[0], steps, out_dir=tmp_path, n_envs=8, env_config=SHORT_ENV,
                    agent_config=config, progress=False, max_seconds=0.0)
    report = json.loads((run_dir / "run.json").read_text())["report"]
    assert report["time_limited"] and 0 < report["env_steps"] < steps
    obs, mask = _morning(cohorts[1])
    assert mask[np.arange(len(obs)), load_agent(run_dir).act(obs, mask)].all()


def test_agent_config_overrides_the_defaults_and_names_bad_fields() -> None:
    config = agent_config("ppo", {"gamma": 0.99, "hidden_sizes": [16, 16]})
    assert config == replace(PPOConfig(), gamma=0.99, hidden_sizes=(16, 16))
    assert agent_config("sac") == SACConfig()
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        agent_config("ppo", {"gama": 0.9})
    with pytest.raises(ValueError, match="gamma"):
        agent_config("sac", {"gamma": 1.5})
    with pytest.raises(ValueError, match="unknown agent"):
        agent_config("dqn")


def test_train_rejects_bad_arguments(cohorts, tmp_path) -> None:
    with pytest.raises(ValueError, match="agent must be one of"):
        train("dqn", cohorts[0], 100, out_dir=tmp_path)
    with pytest.raises(ValueError, match="takes a SACConfig"):
        train("sac", cohorts[0], 100, out_dir=tmp_path, agent_config=PPOConfig())
    with pytest.raises(ValueError, match="hazard_margin guards a SAC warm-started"):
        train("sac", cohorts[0], 100, out_dir=tmp_path,
              agent_config=SACConfig(hazard_margin=0.005))
    assert not any(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(ValueError, match="steps"):
        train("ppo", cohorts[0], 0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        train("sac", tmp_path / "no-such-cohort.npz", 100, out_dir=tmp_path)
    with pytest.raises(DataError, match="not a training run"):
        load_agent(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(DataError, match="run.json: unreadable"):
        load_agent(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "status": "finished",
                                                  "agent": "sac"}))
    with pytest.raises(DataError, match="checkpoint cannot be loaded.*config.json is missing"):
        load_agent(tmp_path)  # the run's model/ is gone


# -- SB3 learners ----------------------------------------------------------------------------


def test_maskable_ppo_trains_saves_and_loads_to_identical_masked_actions(cohorts,
                                                                        tmp_path) -> None:
    config = PPOConfig(n_steps=20, batch_size=80, n_epochs=1, hidden_sizes=(32, 32))
    run_dir = train("ppo", cohorts[0], 8 * 20 * 2, seed=1, out_dir=tmp_path, n_envs=8,
                    env_config=SHORT_ENV, agent_config=config, progress=False)
    policy = load_agent(run_dir)
    assert isinstance(policy, Policy) and policy.name == "ppo"
    assert policy.action_type == "discrete"
    obs, mask = _morning(cohorts[1])
    actions = policy.act(obs, mask)
    assert actions.dtype == np.int64 and mask[np.arange(len(actions)), actions].all()
    assert np.array_equal(load_agent(run_dir).act(obs, mask), actions)
    entropy, gap = policy.diagnostics(obs, mask)
    assert np.all(entropy <= np.log(mask.sum(1)) + 1e-6) and np.isnan(gap).all()
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))


def test_continuous_sb3_sac_returns_box_actions_that_survive_a_round_trip(cohorts,
                                                                         tmp_path) -> None:
    config = SB3SACConfig(hidden_sizes=(32, 32), batch_size=32, buffer_size=2_000,
                          learning_starts=80, replay_ratio=0.125, tests_every=0)
    run_dir = train("sac-continuous", cohorts[0], 8 * 20 * 2, seed=2, out_dir=tmp_path,
                    n_envs=8, env_config=SHORT_ENV, agent_config=config, progress=False)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["env_config"]["action_type"] == "continuous"
    policy = load_agent(run_dir)
    assert policy.action_type == "continuous" and policy.name == "sac-continuous"
    obs, mask = _morning(cohorts[1], action_type="continuous")
    actions = policy.act(obs, mask)
    assert actions.shape == (len(obs), 2) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0)
    np.testing.assert_array_equal(load_agent(run_dir).act(obs, mask), actions)
    entropy, gap = policy.diagnostics(obs, mask)
    # the default asymmetric critic needs the latent state for its Q-gap: NaN when deployed
    assert policy.n_latent > 0 and np.isfinite(entropy).all() and np.isnan(gap).all()
    summary = evaluate_on_cohort(policy, cohorts[1], env_config=SHORT_ENV, seed=5)
    assert summary["episodes"] == cohorts[1].n and np.isfinite(summary["return"])


def test_evaluate_on_cohort_reports_the_episode_means(cohorts) -> None:
    from agents.sac import DiscreteSAC

    agent = DiscreteSAC(TINY_SAC, seed=0)
    summary = evaluate_on_cohort(agent, cohorts[1], env_config=SHORT_ENV, seed=4)
    shares = sum(v for k, v in summary.items() if k.startswith("share_"))
    assert shares == pytest.approx(1.0)
    assert summary["attempted_violations"] == 0  # a masked policy never asks for more
    assert summary["policy_entropy"] >= 0 and summary["q_gap"] >= 0
    assert summary == evaluate_on_cohort(agent, cohorts[1], env_config=SHORT_ENV, seed=4)


# -- learning on the real env (slow) ---------------------------------------------------------


@pytest.mark.slow
def test_sac_beats_uniform_random_on_held_out_athletes(tmp_path) -> None:
    """Our SAC (default config) on 256 training athletes, 300 000 transitions (about 3-5 min on
    2 loaded cores), beats uniform masked random in episode return on 100 athletes it never
    saw. Both policies meet the same athletes and the same random streams (the env's
    counter-based noise), so the comparison is paired."""
    from agents.policy import masked_sample

    model = WorldModel.load(MODEL_DIR)
    train_cohort = generate_cohort(model, 256, seed=0)
    test_cohort = generate_cohort(model, 100, seed=1000)
    run_dir = train("sac", train_cohort, 300_000, seed=0, out_dir=tmp_path, n_envs=64,
                    progress=False, torch_threads=1)
    learned = evaluate_on_cohort(load_agent(run_dir), test_cohort, seed=11)

    class UniformRandom:
        name = "random"

        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def reset(self, seed=None) -> None:
            if seed is not None:
                self.rng = np.random.default_rng(seed)

        def act(self, obs, mask):
            return masked_sample(mask.astype(float), mask, self.rng)

    baseline = evaluate_on_cohort(UniformRandom(), test_cohort, seed=11)
    assert learned["return"] > baseline["return"] + 0.2, (learned, baseline)


def test_stale_settings_says_how_a_run_differs_from_the_settings_wanted(tmp_path):
    import json

    from agents.runs import stale_settings

    assert stale_settings(tmp_path, {"seeds": 0}) is None  # no run here
    record = {"status": "finished", "seeds": 0, "n_envs": 8}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert stale_settings(tmp_path, {"seeds": 0, "n_envs": 8}) == []
    assert stale_settings(tmp_path, {"seeds": 1, "n_envs": 8}) == ["seeds"]
    (tmp_path / "run.json").write_text(json.dumps({**record, "status": "running"}))
    assert stale_settings(tmp_path, {"seeds": 0, "n_envs": 8}) == ["unfinished"]
    (tmp_path / "run.json").write_text("{not json")
    assert stale_settings(tmp_path, {"seeds": 0}) == ["unfinished"]
