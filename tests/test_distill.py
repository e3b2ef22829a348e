"""Distilling the MPC planner into a policy network (agents/distill.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.distill import (
    N_INPUTS,
    DistillConfig,
    DistilledPlanner,
    distill,
    fit_student,
    n_inputs,
    planner_labels,
)
from agents.mpc import BELIEF_FEATURE_NAMES, PERFORMANCE_FEATURE_NAMES, MPCConfig, MPCPlanner
from agents.sac import DiscreteSAC
from agents.training import load_agent
from physiology_model.errors import DataError
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig, Simulation

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT = EnvConfig(episode_days=10, warmup_days=14)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_student_learns_a_rule_it_can_see():
    """Labels that are a function of the observation (and allowed by the mask) are learned."""
    rng = np.random.default_rng(0)
    n = 3000
    obs = rng.normal(size=(n, 48)).astype(np.float32)
    mask = rng.random((n, 6)) < 0.7
    mask[:, 0] = True
    scores = obs[:, :6] + np.where(mask, 0.0, -1e9)
    labels = scores.argmax(axis=1)
    athletes = np.arange(n) % 50
    student, report = fit_student(obs, mask, labels, athletes,
                                  DistillConfig(max_epochs=40, hidden_sizes=(64, 64)), seed=1)
    assert report["validation_accuracy"] > 0.8
    assert np.all(mask[np.arange(n), student.act(obs, mask)])


def test_planner_labels_follow_the_mask_and_the_student_can_drive(model):
    cohort = generate_cohort(model, 6, seed=3)
    cfg = MPCConfig(episode_days=SHORT.episode_days)
    obs, mask, labels, athletes = planner_labels(model, cohort, SHORT, 0, mpc_config=cfg)
    assert obs.shape == (60, N_INPUTS) and mask.shape == (60, 6) and labels.shape == (60,)
    assert N_INPUTS == 48 + len(BELIEF_FEATURE_NAMES) and np.all(np.isfinite(obs))
    # the first morning's inputs are the simulator's observation, then the planner's belief
    sim = Simulation(cohort, 6, SHORT)
    np.testing.assert_array_equal(obs[:6, :48], sim.reset(0))
    assert np.all(mask[np.arange(60), labels])
    assert athletes.tolist() == list(range(6)) * 10
    # a student that always rests drives every morning: the labels are still the planner's
    resting = DiscreteSAC(seed=0, n_features=N_INPUTS)
    resting.act = lambda o, m: np.zeros(len(o), dtype=np.int64)
    driven = planner_labels(model, cohort, SHORT, 0, network=resting, student_share=1.0,
                            mpc_config=cfg)
    assert np.all(driven[1][np.arange(60), driven[2]])
    assert not np.array_equal(driven[0], obs)  # the athletes lived other days


def test_planner_records_the_session_actually_done(model):
    cohort = generate_cohort(model, 3, seed=4)
    sim = Simulation(cohort, 3, SHORT)
    obs = sim.reset(0)
    planner = MPCPlanner(model, MPCConfig(episode_days=SHORT.episode_days), seed=0)
    with pytest.raises(ValueError, match="record_executed"):
        planner.record_executed(np.zeros(3, dtype=np.int64))  # before any plan
    planner.act(obs, sim.agent_mask.copy())
    planner.record_executed(np.zeros(3, dtype=np.int64))
    assert planner.belief._last_action.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="record_executed"):
        planner.record_executed(np.zeros(2, dtype=np.int64))


def test_distill_writes_a_run_that_loads_as_a_policy(model, tmp_path):
    from analysis.cli import main

    cohort = generate_cohort(model, 8, seed=5)
    said = []
    run = distill(model, cohort, out_dir=tmp_path, env_config=SHORT,
                  config=DistillConfig(rounds=2, max_epochs=3, hidden_sizes=(16,)),
                  progress=said.append)
    meta = json.loads((run / "run.json").read_text())
    assert meta["agent"] == "mpc-distilled" and meta["status"] == "finished"
    assert len(said) == 4 and "round 2 of 2" in said[2]  # a minutes-long step says where it is
    accuracy = 100 * meta["report"]["rounds"][1]["validation_accuracy"]
    assert f"on {accuracy:.0f} % of held-out mornings" in said[3]
    assert [r["mornings"] for r in meta["report"]["rounds"]] == [80, 160]
    with pytest.raises(DataError, match="names no world model"):
        load_agent(run)  # distilled without a model directory: the caller must give one
    policy, again = load_agent(run, model=model), load_agent(run, model=model)
    assert isinstance(policy, DistilledPlanner) and policy.name == "mpc-distilled"
    # a saved student replays an episode exactly (its belief included), legal every day
    sim = Simulation(cohort, 8, SHORT)
    obs = sim.reset(1)
    policy.reset(3)
    again.reset(3)
    for _ in range(SHORT.episode_days):
        mask = sim.agent_mask.copy()
        action = policy.act(obs, mask)
        assert np.all(mask[np.arange(8), action])
        np.testing.assert_array_equal(again.act(obs, mask), action)
        obs, _, _ = sim.step(action)
    with pytest.raises(ValueError, match="already holds a run"):
        distill(model, cohort, out_dir=tmp_path, env_config=SHORT)
    # a real athlete's plan from the student, which first lives through the athlete's past
    from agents.recommend import plan_for_athlete

    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=3, policy_dir=str(run))
    assert plan["planner"] == f"policy {run}" and len(plan["days"]) == 3
    tests = tmp_path / "tests.csv"
    tests.write_text("date,result\n2022-10-13,14.9\n2022-11-10,15.1\n")
    with pytest.raises(DataError, match="does not read performance tests"):
        plan_for_athlete(str(MODEL_DIR), [data], days=1, policy_dir=str(run), tests=str(tests))
    # the command line needs the planner's model and reads settings as JSON
    path = tmp_path / "c.npz"
    cohort.save(path)
    assert main(["train", "--agent", "mpc-distilled", "--cohort", str(path), "--out",
                 str(tmp_path / "x")]) == 2
    assert main(["train", "--agent", "mpc-distilled", "--cohort", str(path), "--model",
                 str(MODEL_DIR), "--agent-config", '{"round": 1}', "--out",
                 str(tmp_path / "y")]) == 2


def test_distilled_planner_feeds_its_network_the_belief(model):
    """The network's input is today's observation and the belief updated from it."""
    cohort = generate_cohort(model, 4, seed=6)
    seen = []

    class Recorder(DiscreteSAC):
        def act(self, obs, mask):
            seen.append(np.array(obs))
            return np.zeros(len(obs), dtype=np.int64)

    policy = DistilledPlanner(model, Recorder(seed=0, n_features=N_INPUTS),
                              MPCConfig(episode_days=SHORT.episode_days))
    sim = Simulation(cohort, 4, SHORT)
    obs = sim.reset(2)
    policy.reset(0)
    for day in range(8):
        policy.act(obs, sim.agent_mask.copy())
        np.testing.assert_array_equal(seen[-1][:, :48], obs)
        np.testing.assert_array_equal(seen[-1][:, 48:], policy.belief.features())
        if day == 6:
            before = policy.belief.features()
        obs, _, _ = sim.step(np.zeros(4, dtype=np.int64))
    # day 7 replaced the population's parameters by each athlete's posterior
    names = list(BELIEF_FEATURE_NAMES)
    assert seen[-1][:, 48 + names.index("belief_day-1_rest")].all()  # yesterday's rest
    assert not seen[-1][:, 48 + names.index("belief_day-1_hiit")].any()
    assert not np.allclose(seen[-1][:, 48 + names.index("belief_mu_rec")],
                           before[:, names.index("belief_mu_rec")])
    with pytest.raises(ValueError, match="inputs"):
        DistilledPlanner(model, DiscreteSAC(seed=0), MPCConfig())


def test_a_planner_distilled_with_tests_reads_them(model, tmp_path):
    """With `tests_every` the teacher weighs its performance draws by the simulated athletes'
    tests, the student sees the draws' summary, and a real athlete's tests reach it."""
    with pytest.raises(ValueError, match="performance_draws"):
        DistillConfig(tests_every=7)
    cohort = generate_cohort(model, 6, seed=7)
    config = DistillConfig(rounds=1, max_epochs=2, hidden_sizes=(16,), tests_every=4,
                           performance_draws=32)
    cfg = MPCConfig(episode_days=SHORT.episode_days, performance_draws=32)
    assert n_inputs(cfg) == N_INPUTS + len(PERFORMANCE_FEATURE_NAMES)
    obs, _, _, _ = planner_labels(model, cohort, SHORT, 0, mpc_config=cfg, tests_every=4)
    untested, _, _, _ = planner_labels(model, cohort, SHORT, 0, mpc_config=cfg)
    assert obs.shape == (60, n_inputs(cfg)) and np.all(np.isfinite(obs))
    ess_share = obs[:, -1].reshape(10, 6)
    # tests on days 0, 4 and 8: the second narrows the draws from day 4 on, for every athlete
    np.testing.assert_allclose(ess_share[:4], 1.0, rtol=1e-6)
    assert np.all(ess_share[4:] < 1.0)
    np.testing.assert_allclose(untested[:, -1], 1.0, rtol=1e-6)
    assert not np.allclose(obs[24:, -7:-1], untested[24:, -7:-1])  # the weighted summary moved
    run = distill(model, cohort, out_dir=tmp_path, env_config=SHORT, config=config,
                  model_dir=str(MODEL_DIR))
    policy = load_agent(run)
    assert policy.config.performance_draws == 32 and policy.network.n_features == n_inputs(cfg)
    from agents.recommend import plan_for_athlete

    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    tests = tmp_path / "tests.csv"
    tests.write_text("date,result\n2022-09-15,14.2\n2022-10-13,14.9\n2022-11-10,15.1\n")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=2, policy_dir=str(run),
                            tests=str(tests))
    used = [n for n in plan["notes"] if "performance test(s) used" in n]
    assert len(used) == 1 and used[0].startswith("3 of 3 performance test(s) used")
    assert float(used[0].split("an effective ")[1].split(" of")[0]) < 32


def test_the_guard_sees_tonights_hazard_as_the_simulator_draws_it(model):
    """`AthleteBelief.night_hazards` of the session done is the hazard the simulator draws the
    onset from (under the same, typical, hazard parameters) once the belief's 28-day load
    ring holds reported loads only."""
    from physiology_model.dynamics.hazard import daily_hazard, typical_hazard_params
    from simulator.env import _acwr_and_monotony

    config = EnvConfig(episode_days=40, warmup_days=14)
    cohort = generate_cohort(model, 6, seed=3)
    sim = Simulation(cohort, 6, config)
    obs = sim.reset(4)
    planner = DistilledPlanner(model, DiscreteSAC(seed=0, n_features=N_INPUTS),
                               MPCConfig(episode_days=config.episode_days,
                                         personalize_days=()))  # the loads are what matter
    planner.reset(0)
    rng = np.random.default_rng(0)
    compared = 0
    for day in range(config.episode_days - 1):
        mask = sim.agent_mask.copy()
        planner.belief.observe(obs)
        hazards = planner.belief.night_hazards()
        assert hazards.shape == (6, 6) and np.all((hazards >= 0) & (hazards <= 1))
        action = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        recovery, injured = sim.reading["recovery_pct"].copy(), sim.injury_left > 0
        planner.belief.record_executed(action)
        obs, _, _ = sim.step(action)
        acwr, mono = _acwr_and_monotony(sim.load_ring, sim.ring_pos)
        drawn = daily_hazard(acwr, recovery, mono, typical_hazard_params())
        if day >= 29:
            rows = ~injured & (sim.last_executed == action)
            np.testing.assert_allclose(hazards[rows, action[rows]], drawn[rows], rtol=1e-6)
            assert np.all(hazards[injured] == 0.0)
            compared += int(rows.sum())
    assert compared > 40


def test_the_guard_leaves_out_only_sessions_well_above_the_safest_allowed():
    from agents.distill import guarded_mask

    hazards = np.array([[0.010, 0.012, 0.020, 0.030, 0.001, 0.016],
                        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    mask = np.array([[True, True, True, True, False, True],
                     [True, False, True, True, True, True]])
    guarded = guarded_mask(hazards, mask, 0.005)
    # the lowest allowed is 0.010 (0.001 is not allowed): 0.012 stays, 0.016 / 0.020 go
    np.testing.assert_array_equal(guarded[0], [True, True, False, False, False, False])
    np.testing.assert_array_equal(guarded[1], mask[1])  # an injured athlete: all hazards 0
    assert not (guarded & ~mask).any()


def test_a_sac_with_a_hazard_margin_acts_within_it(model, tmp_path):
    """The margin travels in the SAC's settings, survives save and load, and the loaded policy
    never chooses a session above the guard; without it the same network may."""
    from agents.distill import guarded_mask, student_inputs
    from agents.sac import SACConfig

    config = MPCConfig(episode_days=SHORT.episode_days, personalize_days=())
    network = DiscreteSAC(SACConfig(hazard_margin=0.0), seed=0, n_features=N_INPUTS)
    DistilledPlanner(model, network, config).save(tmp_path / "guarded")
    loaded = DistilledPlanner.load(tmp_path / "guarded", model=model)
    assert loaded.network.config.hazard_margin == 0.0
    cohort = generate_cohort(model, 8, seed=5)
    sim = Simulation(cohort, 8, SHORT)
    obs = sim.reset(1)
    loaded.reset(0)
    assert loaded.network.deterministic
    outside = 0
    for _ in range(SHORT.episode_days - 1):
        mask = sim.agent_mask.copy()
        action = loaded.act(obs, mask)
        allowed = guarded_mask(loaded.belief.night_hazards(), mask, 0.0)
        assert allowed[np.arange(8), action].all()
        free = loaded.network.act(student_inputs(obs, loaded.belief), mask)
        outside += int((~allowed[np.arange(8), free]).sum())
        obs, _, _ = sim.step(action)
    assert outside > 0  # the guard changed some choices
    with pytest.raises(ValueError, match="hazard_margin"):
        SACConfig(hazard_margin=1.5)
