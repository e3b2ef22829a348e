"""The tested athlete (agents/sac_tested.py): the actor reads the performance tests' summary,
the tests are that day's session in training, the checkpoint is data only and is handed tests
by the evaluator; and the stability options of agents/sac.py (a Polyak-averaged actor, a
critic ensemble)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.mpc import PERFORMANCE_FEATURE_NAMES
from agents.policy import N_FEATURES, reads_performance_tests
from agents.runs import RUN_FORMAT
from agents.sac import DiscreteSAC, SACConfig
from agents.sac_tested import (
    N_TEST_FEATURES,
    TestedSAC,
    TestedTrainingEnv,
    TestSettings,
)
from agents.training import load_agent, load_checkpoint, train
from analysis.benchmark import PerformanceTesting, run_policy
from physiology_model.data.table import ACTIONS
from simulator.cohort import generate_cohort
from simulator.env import BatchedPeriodizationEnv, EnvConfig
from simulator.observation import FEATURE_INDEX

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT_ENV = EnvConfig(episode_days=40, warmup_days=28)
TEMPO = ACTIONS.index("tempo_threshold")
TESTS = TestSettings(every=14, draws=64)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort(model):
    return generate_cohort(model, 8, seed=3)


def _network(**config) -> DiscreteSAC:
    return DiscreteSAC(SACConfig(hidden_sizes=(16, 16), **config),
                       n_features=N_FEATURES + N_TEST_FEATURES, seed=0)


def test_training_env_gives_the_actor_the_tests_and_makes_the_test_the_session(model,
                                                                               cohort) -> None:
    env = TestedTrainingEnv(BatchedPeriodizationEnv(cohort, 8, SHORT_ENV, seed=1), model,
                            TESTS, seed=0)
    obs = env.reset()
    assert obs.shape == (8, N_FEATURES + N_TEST_FEATURES)
    # day 0 is a test morning: where the rules allow tempo, it is the only allowed session
    mask = env.action_masks()
    allowed = env.sim.mask[:, TEMPO]
    assert allowed.any()
    assert (mask[allowed] == np.eye(6, dtype=bool)[TEMPO]).all()
    ess = obs[:, -1]  # belief_perf_ess_share: 1 before a second test
    assert np.allclose(ess, 1.0)
    rng = np.random.default_rng(0)
    seen = [obs]
    for _ in range(SHORT_ENV.episode_days - 1):
        m = env.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in m])
        obs, _, dones, infos = env.step(actions)
        seen.append(obs)
    assert env.tested_mornings >= 8 * 2  # days 0, 14 and 28, when the rules allowed tempo
    # after the second test the draws are weighed: the summary moved and the share fell
    assert (obs[:, -1] < 0.999).all()
    assert not np.allclose(seen[0][:, N_FEATURES:-1], obs[:, N_FEATURES:-1])
    obs, _, dones, infos = env.step(np.array([np.flatnonzero(r)[0]
                                              for r in env.action_masks()]))
    assert dones.all()
    assert infos[0]["terminal_observation"].shape == (N_FEATURES + N_TEST_FEATURES,)
    assert np.allclose(obs[:, -1], 1.0)  # a new episode forgets the tests


def test_the_tested_actor_reads_the_tests_and_nothing_else_reads_them(model, cohort) -> None:
    policy = TestedSAC(_network(), model, TESTS, seed=0)
    assert reads_performance_tests(policy)
    assert not reads_performance_tests(policy.network)
    seen = []
    original = policy.network.act

    def spy(inputs, mask):
        seen.append(np.array(inputs))
        return original(inputs, mask)

    policy.network.act = spy
    run = run_policy("tested", lambda sim: policy, cohort, SHORT_ENV, seed=0,
                     tests=PerformanceTesting(14, session=TEMPO))
    assert run.extra["tested"].sum() >= 8 * 2
    # the test was the day's session
    assert (run.actions[run.extra["tested"]] == TEMPO).all()
    inputs = np.stack(seen)  # (days, N, 48 + 7)
    assert inputs.shape[2] == N_FEATURES + len(PERFORMANCE_FEATURE_NAMES)
    np.testing.assert_allclose(inputs[:, :, :N_FEATURES], run.extra["obs"], rtol=1e-6)
    assert (inputs[-1, :, -1] < 0.999).all() and np.allclose(inputs[0, :, -1], 1.0)
    # without tests the same policy's test features stay at the prior
    seen.clear()
    run_policy("untested", lambda sim: policy, cohort, SHORT_ENV, seed=0)
    assert np.allclose(np.stack(seen)[:, :, -1], 1.0)


def test_a_tested_run_saves_data_only_and_loads_as_a_tested_policy(cohort, tmp_path) -> None:
    config = SACConfig(hidden_sizes=(16, 16), batch_size=32, buffer_size=2_000,
                       learning_starts=100, replay_ratio=0.05, tests_every=14, test_draws=64)
    run_dir = train("sac", cohort, 8 * 40 * 2, seed=0, device="cpu", out_dir=tmp_path,
                    n_envs=8, env_config=SHORT_ENV, agent_config=config, progress=False,
                    checkpoint_every=300)
    files = sorted(p.name for p in (run_dir / "model").iterdir())
    assert files == ["config.json", "tests.json", "weights.pt"]
    torch.load(run_dir / "model" / "weights.pt", weights_only=True)
    policy = load_agent(run_dir)
    assert isinstance(policy, TestedSAC) and reads_performance_tests(policy)
    assert policy.tests.every == 14 and policy.config.performance_draws == 64
    checkpoint = min((run_dir / "checkpoints").iterdir())
    assert isinstance(load_checkpoint("sac", checkpoint), TestedSAC)
    a = run_policy("a", lambda sim: policy, cohort, SHORT_ENV, seed=0,
                   tests=PerformanceTesting(14, session=TEMPO))
    again = load_agent(run_dir)
    b = run_policy("b", lambda sim: again, cohort, SHORT_ENV, seed=0,
                   tests=PerformanceTesting(14, session=TEMPO))
    np.testing.assert_array_equal(a.actions, b.actions)


def test_test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        TestSettings(every=0)
    with pytest.raises(ValueError):
        TestSettings(session="marathon")
    with pytest.raises(ValueError, match="tests_every"):
        SACConfig(tests_every=-1)
    with pytest.raises(ValueError):
        TestedSAC(DiscreteSAC(SACConfig(hidden_sizes=(8,)), seed=0), None, TESTS)


def test_the_polyak_actor_acts_trails_the_online_actor_and_survives_a_round_trip(
        tmp_path) -> None:
    agent = DiscreteSAC(SACConfig(hidden_sizes=(16, 16), actor_polyak=0.5, batch_size=8),
                        seed=0)
    assert agent.policy_actor is agent.actor_average
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(8, N_FEATURES)).astype(np.float32)
    mask = np.ones((8, 6), dtype=bool)
    agent.normalizer.update(torch.as_tensor(obs))
    from agents.sac import Batch

    t = torch.as_tensor
    batch = Batch(t(obs), t(rng.integers(0, 6, 8)), t(rng.normal(size=8).astype(np.float32)),
                  t(obs), t(np.ones(8, np.float32)), t(mask), t(mask))
    before = [p.clone() for p in agent.actor_average.parameters()]
    agent.update(batch)
    for avg, old, online in zip(agent.actor_average.parameters(), before,
                                agent.actor.parameters()):
        torch.testing.assert_close(avg, 0.5 * old + 0.5 * online)
    # the averaged actor is the one that acts
    expected = torch.softmax(agent.actor_average(agent.normalizer(t(obs))), -1).double()
    np.testing.assert_allclose(agent.action_probabilities(obs, mask), expected.detach().numpy(),
                               rtol=1e-5)
    agent.save(tmp_path / "ckpt")
    loaded = DiscreteSAC.load(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.action_probabilities(obs, mask),
                               agent.action_probabilities(obs, mask), rtol=1e-6)
    off = DiscreteSAC(replace(agent.config, actor_polyak=0.0), seed=0)
    assert off.actor_average is None and off.policy_actor is off.actor


def test_a_tested_policy_plans_a_real_athlete_with_and_without_tests(model, tmp_path) -> None:
    from agents.recommend import plan_for_athlete

    run = tmp_path / "run"
    policy = TestedSAC(_network(), model, TESTS, seed=0)
    policy.save(run / "model")
    (run / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "status": "finished",
                                              "agent": "sac"}))
    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=2, policy_dir=str(run))
    assert len(plan["days"]) == 2
    assert any("reads performance tests, but the athlete's data have none" in n
               for n in plan["notes"])
    tests = tmp_path / "tests.csv"
    tests.write_text("date,result\n2022-09-15,14.2\n2022-10-13,14.9\n2022-11-10,15.1\n")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=2, policy_dir=str(run),
                            tests=str(tests))
    used = [n for n in plan["notes"] if "performance test(s) used" in n]
    assert len(used) == 1 and used[0].startswith("3 of 3 performance test(s) used")


def test_a_critic_ensemble_trains_every_critic_and_targets_a_pair(tmp_path) -> None:
    from agents.sac import Batch

    agent = DiscreteSAC(SACConfig(hidden_sizes=(16, 16), n_critics=4, batch_size=8), seed=0)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(8, N_FEATURES)).astype(np.float32)
    mask = np.ones((8, 6), dtype=bool)
    t = torch.as_tensor
    agent.normalizer.update(t(obs))
    assert agent.critic(agent.normalizer(t(obs))).shape == (4, 8, 6)
    batch = Batch(t(obs), t(rng.integers(0, 6, 8)), t(np.ones(8, np.float32)), t(obs),
                  t(np.ones(8, np.float32)), t(mask), t(mask))
    # the target is the minimum of two of the four target critics: between the ensemble's
    # minimum and maximum
    with torch.no_grad():
        agent.actor.eval()
        nxt = agent.normalizer(t(obs))
        q = agent.critic_target(nxt)
        p = torch.softmax(agent.actor(nxt), -1)
        lo = 1 + (p * (q.min(0).values - agent.alpha * p.log())).sum(-1)
        hi = 1 + (p * (q.max(0).values - agent.alpha * p.log())).sum(-1)
    y = agent.soft_target(batch)
    assert torch.all(y >= lo - 1e-5) and torch.all(y <= hi + 1e-5)
    before = [w.clone() for w in agent.critic.parameters()]
    agent.update(batch)
    changed = [(w - b).abs().flatten(1).sum(1) > 0 for w, b in
               zip(agent.critic.parameters(), before) if w.dim() == 3]
    assert all(c.all() for c in changed)  # every critic of the ensemble moved
    agent.save(tmp_path / "ckpt")
    loaded = DiscreteSAC.load(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.critic(nxt), agent.critic(nxt))
    with pytest.raises(ValueError, match="n_critics"):
        SACConfig(n_critics=1)


def test_a_checkpoint_from_before_the_averaged_actor_loads_with_the_online_actor(
        tmp_path) -> None:
    agent = DiscreteSAC(SACConfig(hidden_sizes=(8,), actor_polyak=0.0), seed=0)
    agent.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    del meta["config"]["actor_polyak"]  # written before the field existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    loaded = DiscreteSAC.load(tmp_path / "old")
    assert loaded.config.actor_polyak == 0.0 and loaded.actor_average is None
    assert SACConfig().actor_polyak > 0  # today's default averages


def test_a_cohort_of_a_model_not_found_here_is_refused_before_the_run_starts(
        cohort, tmp_path, monkeypatch) -> None:
    """The tested SAC's belief uses the cohort's world model: a cohort drawn from a model
    that cannot be found must not be trained for with the shipped one instead."""
    from agents.training import _model_dir

    monkeypatch.chdir(tmp_path)
    elsewhere = replace(cohort, meta={**cohort.meta, "model_dir": "my_models/fit2"})
    config = SACConfig(hidden_sizes=(16, 16), learning_starts=100, tests_every=14,
                       test_draws=64)
    with pytest.raises(ValueError, match="'my_models/fit2', which is not found"):
        train("sac", elsewhere, 8 * 40, device="cpu", out_dir=tmp_path / "runs", n_envs=8,
              env_config=SHORT_ENV, agent_config=config, progress=False)
    assert not (tmp_path / "runs").exists()
    # the shipped model's own relative name, from another folder, is the shipped model
    assert _model_dir(replace(cohort, meta={"model_dir": "models/shipped"})) is None
    assert _model_dir(replace(cohort, meta={"model_dir": str(MODEL_DIR)})) is None
    (tmp_path / "my_models" / "fit2").mkdir(parents=True)
    assert _model_dir(elsewhere) == str((tmp_path / "my_models" / "fit2").resolve())


def test_a_tested_continuous_sac_takes_the_test_as_its_session_and_saves_data_only(
        cohort, tmp_path) -> None:
    """SB3's continuous SAC as the tested athlete: its actor reads the tests' summary, the
    test replaces whatever (duration, intensity) it asked for on a test morning (in training
    and when judged), and its checkpoint loads back as a tested policy that acts alike."""
    from agents.sb3_agents import ContinuousSACPolicy, SB3SACConfig

    config = SB3SACConfig(hidden_sizes=(16, 16), batch_size=32, buffer_size=2_000,
                          learning_starts=100, tests_every=14, test_draws=64)
    run_dir = train("sac-continuous", cohort, 8 * 40 * 2, seed=0, device="cpu",
                    out_dir=tmp_path, n_envs=8, env_config=SHORT_ENV, agent_config=config,
                    progress=False)
    files = sorted(p.name for p in (run_dir / "model").iterdir())
    assert files == ["normalizer.pt", "policy.json", "policy.pt", "tests.json"]
    policy = load_agent(run_dir)
    assert isinstance(policy, TestedSAC) and reads_performance_tests(policy)
    assert isinstance(policy.network, ContinuousSACPolicy)
    assert policy.action_type == "continuous" and policy.network.n_features == (
        N_FEATURES + N_TEST_FEATURES)
    testing = PerformanceTesting(14, session=TEMPO)
    a = run_policy("a", lambda sim: policy, cohort, SHORT_ENV, seed=0, tests=testing)
    tested = a.extra["tested"]
    assert tested.any() and (a.actions[tested] == TEMPO).all()
    again = run_policy("b", lambda sim: load_agent(run_dir), cohort, SHORT_ENV, seed=0,
                       tests=testing)
    np.testing.assert_array_equal(a.actions, again.actions)
    # without tests the same checkpoint plans from the wearable alone, and differs
    blind = run_policy("c", lambda sim: load_agent(run_dir), cohort, SHORT_ENV, seed=0)
    assert "tested" not in blind.extra and not np.array_equal(blind.actions, a.actions)
    # a real athlete's plan reads their tests through the same checkpoint
    from agents.recommend import plan_for_athlete

    tests = tmp_path / "tests.csv"
    tests.write_text("date,result\n2022-09-15,14.2\n2022-10-13,14.9\n")
    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=2, policy_dir=str(run_dir),
                            tests=str(tests))
    assert len(plan["days"]) == 2
    assert any(n.startswith("2 of 2 performance test(s) used") for n in plan["notes"])


def test_a_fixed_session_is_done_with_its_nominal_load_whatever_was_asked(cohort) -> None:
    """`Simulation.step(fixed=...)`: a continuous request on a fixed lane is replaced by the
    discrete session and its nominal load; other lanes keep their own session's load."""
    from physiology_model.data.load import action_loads
    from simulator.env import Simulation

    env = replace(SHORT_ENV, action_type="continuous")
    sims = [Simulation(cohort, 8, env) for _ in range(2)]
    for sim in sims:
        sim.reset(5)
    asked = np.tile([[1.0, 1.0]], (8, 1))  # the longest, hardest session
    fixed = np.full(8, -1)
    fixed[:3] = TEMPO
    sims[0].step(asked, fixed)
    sims[1].step(asked)
    executed = sims[0].last_executed
    assert (executed[:3] == TEMPO).all()
    np.testing.assert_array_equal(executed[3:], sims[1].last_executed[3:])
    load = FEATURE_INDEX["load_yesterday_trimp"]
    np.testing.assert_allclose(sims[0].obs[:3, load], action_loads(np.full(3, TEMPO)).trimp)
    np.testing.assert_array_equal(sims[0].obs[3:, load], sims[1].obs[3:, load])
    assert (sims[1].obs[:3, load] > sims[0].obs[:3, load]).all()  # what was asked is harder
