"""Warm start of the masked discrete SAC from a distilled student (agents/sac_warm.py): the
warm-started SAC acts exactly as the student before it learns, a student that does not fit is
one clear error naming its directory, the normaliser stays the student's, the critics can
learn alone first, and the behaviour-cloning weight decays as configured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.distill import DistillConfig, DistilledPlanner, distill, n_inputs
from agents.mpc import MPCConfig
from agents.sac import DiscreteSAC, SACConfig
from agents.sac_tested import TestedTrainingEnv
from agents.sac_warm import load_student, student_directory, warm_start
from agents.training import load_agent, load_checkpoint, train
from simulator.cohort import generate_cohort
from simulator.env import BatchedPeriodizationEnv, EnvConfig, Simulation

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"
SHORT = EnvConfig(episode_days=10, warmup_days=14)
DRAWS = 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cohort(model):
    return generate_cohort(model, 6, seed=7)


@pytest.fixture(scope="module")
def student_run(model, cohort, tmp_path_factory):
    """A tiny student distilled with a test every 4 days."""
    config = DistillConfig(rounds=1, max_epochs=2, hidden_sizes=(16,), tests_every=4,
                           performance_draws=DRAWS)
    return distill(model, cohort, out_dir=tmp_path_factory.mktemp("student"), env_config=SHORT,
                   config=config, model_dir=str(MODEL_DIR))


def _warm_config(run: Path, **overrides) -> SACConfig:
    values = {"hidden_sizes": (16,), "warm_start": str(run), "tests_every": 4,
              "test_draws": DRAWS, "batch_size": 16, "buffer_size": 500, "n_step": 3,
              **overrides}
    return SACConfig(**values)


def test_a_warm_started_sac_acts_as_the_student_before_it_learns(model, cohort,
                                                                   student_run, tmp_path):
    student = load_student(student_run, model=model)
    agent = DiscreteSAC(_warm_config(student_run), n_features=student.network.n_features)
    warm_start(agent, student.network, student_run)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(64, agent.n_features)).astype(np.float32) * 3
    mask = rng.random((64, 6)) < 0.7
    mask[:, 0] = True
    np.testing.assert_allclose(agent.action_probabilities(inputs, mask),
                               student.network.action_probabilities(inputs, mask), rtol=1e-6)
    # a whole run whose learning never starts saves a policy that plays exactly as the student
    config = _warm_config(student_run, learning_starts=10_000)
    run = train("sac", cohort, 6 * SHORT.episode_days, seed=0, device="cpu",
                out_dir=tmp_path, n_envs=6, env_config=SHORT, agent_config=config,
                progress=False)
    policy = load_agent(run, model=model)
    assert isinstance(policy, DistilledPlanner) and policy.name == "sac"
    assert policy.config.performance_draws == DRAWS
    again = load_student(student_run, model=model)
    sim = Simulation(cohort, 6, SHORT)
    obs = sim.reset(1)
    policy.reset(3)
    again.reset(3)
    for day in range(SHORT.episode_days):
        if day % 4 == 0:
            results = sim.performance_test(0.015, np.random.default_rng(day))
            policy.observe_performance(results)
            again.observe_performance(results)
        mask = sim.agent_mask.copy()
        action = policy.act(obs, mask)
        np.testing.assert_array_equal(action, again.act(obs, mask))
        obs, _, _ = sim.step(action)


def test_a_warm_start_that_does_not_fit_is_one_error_naming_the_run(model, cohort,
                                                                     student_run, tmp_path):
    wider = _warm_config(student_run, hidden_sizes=(32,))
    with pytest.raises(ValueError, match=rf"warm_start {student_run}: the student's actor"):
        train("sac", cohort, 60, seed=0, device="cpu", out_dir=tmp_path, run_name="a",
              n_envs=6, env_config=SHORT, agent_config=wider, progress=False)
    untested = _warm_config(student_run, tests_every=0)
    with pytest.raises(ValueError, match=rf"warm_start {student_run}: .*set tests_every > 0"):
        train("sac", cohort, 60, seed=0, device="cpu", out_dir=tmp_path, run_name="b",
              n_envs=6, env_config=SHORT, agent_config=untested, progress=False)
    with pytest.raises(ValueError, match=rf"warm_start {tmp_path}: not a distilled student"):
        student_directory(tmp_path)
    student = load_student(student_run, model=model)
    other = DiscreteSAC(SACConfig(hidden_sizes=(16,)), n_features=48)
    with pytest.raises(ValueError, match="inputs, actions, hidden sizes"):
        warm_start(other, student.network, student_run)


def test_warm_training_keeps_the_students_normaliser_and_the_critics_learn_first(
        model, cohort, student_run, tmp_path):
    student = load_student(student_run, model=model)
    config = _warm_config(student_run, learning_starts=60, actor_delay=10_000,
                          replay_ratio=0.5)
    run = train("sac", cohort, 6 * SHORT.episode_days * 2, seed=0, device="cpu",
                out_dir=tmp_path, n_envs=6, env_config=SHORT, agent_config=config,
                progress=False, checkpoint_every=60)
    policy = load_agent(run, model=model)
    net = policy.network
    assert net.gradient_steps > 0  # the critics learned
    for name in ("mean", "var", "count"):
        torch.testing.assert_close(getattr(net.normalizer, name),
                                   getattr(student.network.normalizer, name))
    # the actor waited: it is still the student's, and so is the acting average
    for key, value in student.network.actor.state_dict().items():
        torch.testing.assert_close(net.actor.state_dict()[key], value)
        torch.testing.assert_close(net.actor_average.state_dict()[key], value)
    assert any(p.is_dir() for p in (run / "checkpoints").iterdir())
    ckpt = min((run / "checkpoints").iterdir())
    assert isinstance(load_checkpoint("sac", ckpt, model=model), DistilledPlanner)


def test_the_behaviour_cloning_weight_decays_as_configured(model, student_run) -> None:
    student = load_student(student_run, model=model)
    config = _warm_config(student_run, learning_starts=100, actor_delay=200, bc_weight=2.0,
                          bc_decay=1_000)
    agent = DiscreteSAC(config, n_features=student.network.n_features)
    assert agent.bc_weight() == 0.0  # no student yet
    warm_start(agent, student.network, student_run)
    for seen, weight in ((0, 2.0), (300, 2.0), (800, 1.0), (1_050, 0.5), (1_300, 0.0),
                         (5_000, 0.0)):
        agent.transitions_seen = seen
        assert agent.bc_weight() == pytest.approx(weight)
    steady = DiscreteSAC(_warm_config(student_run, bc_weight=0.5),
                         n_features=student.network.n_features)
    warm_start(steady, student.network, student_run)
    steady.transitions_seen = 10**6
    assert steady.bc_weight() == 0.5  # bc_decay 0: it never falls


def test_the_behaviour_cloning_term_holds_the_actor_to_the_student(model, student_run) -> None:
    """With critics that know nothing, actor steps move the actor off the student's choices;
    a large cloning weight keeps it on them."""
    from agents.sac import Batch

    student = load_student(student_run, model=model)
    n = student.network.n_features
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(256, n, generator=gen) * 2
    mask = torch.rand(256, 6, generator=gen) < 0.7
    mask[:, 0] = True
    batch = Batch(obs, torch.zeros(256, dtype=torch.int64), torch.randn(256, generator=gen),
                  obs.roll(1, 0), torch.ones(256), mask, mask.roll(1, 0))
    with torch.no_grad():
        target = student.network.action_probabilities(obs.numpy(), mask.numpy()).argmax(-1)
    agreement = {}
    for weight in (0.0, 50.0):
        cfg = _warm_config(student_run, learning_starts=0, bc_weight=weight,
                           learning_rate=3e-3, actor_polyak=0.0)
        agent = DiscreteSAC(cfg, n_features=n, seed=1)
        warm_start(agent, student.network, student_run)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for _ in range(100):
                metrics = agent.update(batch)
        assert float(metrics["bc_weight"]) == weight
        chosen = agent.action_probabilities(obs.numpy(), mask.numpy()).argmax(-1)
        agreement[weight] = float(np.mean(chosen == target))
    assert agreement[50.0] >= 0.95 and agreement[50.0] > agreement[0.0]


def test_the_training_env_gives_an_untested_students_whole_belief(model, cohort) -> None:
    belief = MPCConfig(episode_days=SHORT.episode_days)
    env = TestedTrainingEnv(BatchedPeriodizationEnv(cohort, 6, SHORT, seed=1), model, None,
                            belief_config=belief, all_features=True)
    obs = env.reset()
    assert obs.shape == (6, n_inputs(belief))
    for _ in range(SHORT.episode_days):
        mask = env.action_masks()
        obs, _, dones, infos = env.step(mask.argmax(1))
    assert dones.all() and env.tested_mornings == 0
    assert infos[0]["terminal_observation"].shape == (n_inputs(belief),)
    assert np.isfinite(obs).all()


def test_periodize_train_sac_takes_the_warm_start_in_its_agent_config(model, cohort,
                                                                        student_run, tmp_path,
                                                                        capsys) -> None:
    import json

    from analysis.cli import main

    path = tmp_path / "c.npz"
    cohort.save(path)
    settings = {"warm_start": str(student_run), "tests_every": 4, "test_draws": DRAWS,
                "hidden_sizes": [16], "batch_size": 16, "buffer_size": 500,
                "learning_starts": 30, "n_step": 3}
    args = ["train", "--agent", "sac", "--cohort", str(path), "--steps", "60",
            "--n-envs", "6", "--agent-config", json.dumps(settings)]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["agent_config"]["warm_start"] == str(student_run)
    assert isinstance(load_agent(tmp_path / "run", model=model), DistilledPlanner)
    capsys.readouterr()
    settings["hidden_sizes"] = [8]
    wrong = ["train", "--agent", "sac", "--cohort", str(path), "--steps", "60", "--n-envs",
             "6", "--agent-config", json.dumps(settings), "--out", str(tmp_path / "wrong")]
    assert main(wrong) == 2
    assert f"warm_start {student_run}" in capsys.readouterr().err


def test_the_recipe_distils_its_student_then_starts_the_sac_from_it(model, cohort, tmp_path):
    import json

    from agents.training import WARM_SAC, student_config, train_warm_sac

    # the default recipe's student is the shipped one's: tested monthly, 1,024 responses
    assert student_config(SACConfig(**WARM_SAC)) == DistillConfig(tests_every=28,
                                                                 performance_draws=1024)
    assert student_config(SACConfig(tests_every=0)).performance_draws == 0
    sac = _warm_config(None, warm_start=None, bc_weight=1.0, learning_starts=30,
                       hazard_margin=0.004)
    student = student_config(sac, rounds=1, max_epochs=2)
    assert (student.tests_every, student.performance_draws, student.hidden_sizes) == (
        4, DRAWS, (16,))
    # no model given: the cohort's (the shipped one), named in the student's checkpoint
    run = train_warm_sac(cohort, 60, out_dir=tmp_path,
                         run_name="recipe", sac_config=sac, student=student,
                         student_athletes=4, env_config=SHORT, device="cpu", n_envs=6,
                         progress=False)
    record = json.loads((run / "run.json").read_text())
    assert record["agent_config"]["warm_start"] == str(run / "student")
    assert record["agent_config"]["bc_weight"] == 1.0 and record["cohort"]["n"] == 6
    distilled = json.loads((run / "student" / "run.json").read_text())
    assert distilled["cohort"]["n"] == 4  # the cohort's first four athletes
    # the shipped model by its name, which resolves wherever the package is installed
    belief = json.loads((run / "student" / "model" / "belief.json").read_text())
    assert distilled["model_dir"] == belief["model_dir"] == "shipped"
    policy = load_agent(run)
    assert isinstance(policy, DistilledPlanner)
    # the injury guard is the SAC's setting, in its checkpoint; the student has none
    assert policy.network.config.hazard_margin == record["agent_config"]["hazard_margin"] \
        == 0.004
    assert load_agent(run / "student").network.config.hazard_margin is None
    with pytest.raises(ValueError, match="remove only its run.json"):
        train_warm_sac(cohort, 60, model=model, out_dir=tmp_path, run_name="recipe")
    # a run stopped after its student: the rerun reuses the student, not a changed one
    (run / "run.json").unlink()
    distilled_at = (run / "student" / "run.json").stat().st_mtime_ns
    again = {"model": model, "model_dir": str(MODEL_DIR), "out_dir": tmp_path,
             "run_name": "recipe", "sac_config": sac, "student_athletes": 4,
             "env_config": SHORT, "device": "cpu", "n_envs": 6, "progress": False}
    train_warm_sac(cohort, 60, student=student, **again)
    assert (run / "student" / "run.json").stat().st_mtime_ns == distilled_at
    (run / "run.json").unlink()
    with pytest.raises(ValueError, match="already holds"):  # other student settings
        train_warm_sac(cohort, 60, student=student_config(sac, rounds=1, max_epochs=3), **again)


def test_periodize_train_sac_defaults_to_the_recipe(cohort, tmp_path, monkeypatch,
                                                   capsys) -> None:
    import json

    from agents import training
    from analysis.cli import main

    calls = {}

    def recorder(name):
        def record(*args, **kw):
            calls[name] = kw
            return tmp_path
        return record

    monkeypatch.setattr(training, "train_warm_sac", recorder("recipe"))
    monkeypatch.setattr(training, "train", recorder("train"))
    path = tmp_path / "c.npz"
    cohort.save(path)
    base = ["train", "--agent", "sac", "--cohort", str(path), "--steps", "60"]
    assert main([*base, "--student-athletes", "3", "--agent-config",
                 '{"student": {"rounds": 1}, "learning_rate": 0.001}',
                 "--out", str(tmp_path / "a")]) == 0
    kw = calls.pop("recipe")
    assert kw["student_athletes"] == 3 and kw["student"].rounds == 1
    assert kw["student"].performance_draws == kw["sac_config"].test_draws == 1024
    assert (kw["sac_config"].bc_weight, kw["sac_config"].learning_rate) == (1.0, 0.001)
    assert kw["sac_config"].hazard_margin == training.WARM_SAC["hazard_margin"] == 0.005
    assert kw["model"] is None and "train" not in calls
    # a warm_start of its own, or none (null), is an ordinary SAC run, with no student
    assert main([*base, "--agent-config", '{"warm_start": null}', "--out",
                 str(tmp_path / "b")]) == 0
    cold = calls.pop("train")["agent_config"]
    assert cold.warm_start is None and cold.hazard_margin is None and not calls
    capsys.readouterr()
    assert main([*base, "--agent-config", json.dumps({"warm_start": None, "student": {}}),
                 "--out", str(tmp_path / "c")]) == 2
    assert "'student' and --student-athletes" in capsys.readouterr().err
    assert main([*base, "--agent-config", '{"student": {"rounds": 0}}', "--out",
                 str(tmp_path / "d")]) == 2
    assert "rounds" in capsys.readouterr().err
