"""`periodize tune`: an Optuna study whose trials are run directories, killed mid-way and
resumed from its storage; best.json is what `periodize train --agent-config` takes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
sqlalchemy = pytest.importorskip("sqlalchemy")

from analysis.cli import main
from analysis.tune import TuneSpec, tune
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "shipped"
# two 90-day episodes of 8 lanes per trial, each checkpoint evaluated on 30 days
ARGS = ["--agent", "sac", "--steps", "1440", "--n-envs", "8", "--val-days", "30",
        "--evaluations", "2", "--heartbeat", "1"]


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("cohorts")
    model = WorldModel.load(MODEL)
    generate_cohort(model, 16, seed=1).save(root / "train.npz")
    generate_cohort(model, 8, seed=2).save(root / "val.npz")
    return str(root / "train.npz"), str(root / "val.npz")


def _trials(out: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    return optuna.load_study(study_name="periodize", storage=storage).get_trials()


def test_a_killed_study_resumes_where_it_stopped(cohorts, tmp_path):
    train, val = cohorts
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "analysis.cli", "tune", *ARGS, "--cohort",
                             train, "--val-cohort", val, "--trials", "50", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        done = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if (out / "study.db").exists():
                try:
                    done = [t for t in _trials(out) if t.state.name == "COMPLETE"]
                except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # the study is being made
                    done = []
                if done:
                    break
        assert done, "no trial finished before the deadline"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = {t.number: (t.state.name, t.value) for t in _trials(out)}
    time.sleep(2.5)  # > the grace period of two 1-s heartbeats
    target = len(done) + 1
    summary = tune(TuneSpec("sac", train, val, str(out), target, steps=1440, n_envs=8,
                            val_days=30, evaluations=2, heartbeat_s=1), progress=False)
    after = {t.number: (t.state.name, t.value) for t in _trials(out)}
    for number, (state, value) in killed.items():
        if state == "COMPLETE":  # what finished before the kill is kept as it was
            assert after[number] == (state, value)
        if state == "RUNNING":  # the killed trial is failed (and its settings retried)
            assert after[number][0] == "FAIL"
    assert summary["finished"] == target
    new = [n for n in after if n not in killed]
    assert new and min(new) > max(killed)
    best = summary["best"]
    assert Path(best["run_dir"], "run.json").is_file()
    assert json.loads((out / "best.json").read_text()) == best["agent_config"]
    # the best settings train as they are
    run = tmp_path / "retrained"
    assert main(["train", "--agent", "sac", "--cohort", train, "--steps", "720", "--n-envs", "8",
                 "--agent-config", str(out / "best.json"), "--out", str(run)]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["agent_config"]["learning_rate"] == best["agent_config"]["learning_rate"]
    assert record["env_config"]["reward"]["kind"] == best["agent_config"]["reward"]["kind"]
    # tuned from scratch, retrained from scratch: not with the default recipe's student
    assert record["agent_config"]["warm_start"] is None and not (run / "student").exists()


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    # the window between Optuna's ask and the first heartbeat: a RUNNING trial with no
    # heartbeat row, which Optuna's own stale check never fails
    from analysis.tune import _storage, fail_trials_without_heartbeat

    spec = TuneSpec("sac", "unused.npz", "unused.npz", str(tmp_path), 3, heartbeat_s=1)
    storage, _ = _storage(spec)
    study = optuna.create_study(storage=storage, study_name="periodize")
    orphan = study.ask()
    orphan.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    live = study.ask()
    storage.record_heartbeat(live._trial_id)
    assert fail_trials_without_heartbeat(study, optuna, 2.0) == []  # too young to judge
    time.sleep(2.5)
    storage.record_heartbeat(live._trial_id)
    assert fail_trials_without_heartbeat(study, optuna, 2.0) == [orphan.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[orphan.number] == "FAIL" and states[live.number] == "RUNNING"
    (retried,) = [t for t in study.get_trials() if t.number > live.number]
    assert retried.state.name == "WAITING"
    assert retried.params == orphan.params


def test_every_suggested_reward_is_one_the_env_takes():
    # the multi-horizon weights must come ordered (γ > β > α ≥ 0); drawn independently, five
    # in six such trials failed before training
    from analysis.tune import suggest
    from simulator.rewards import RewardConfig

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(300):
        for agent in ("sac", "ppo"):
            reward = suggest(study.ask(), agent)["reward"]
            RewardConfig(**reward)  # raises on weights the env refuses
            kinds.add(reward["kind"])
    assert kinds == {"potential", "multi_horizon"}


def test_two_workers_share_one_study(cohorts, tmp_path):
    train, val = cohorts
    out = tmp_path / "two"
    assert main(["tune", *ARGS, "--cohort", train, "--val-cohort", val, "--trials", "3",
                 "--workers", "2", "--out", str(out)]) == 0
    study = json.loads((out / "study.json").read_text())
    assert study["finished"] == 3
    assert {t["state"] for t in study["trials"]} <= {"COMPLETE", "PRUNED"}
    for t in study["trials"]:
        assert set(t["intermediate"]) <= {"1", "2"}
        assert Path(t["run_dir"]).name == f"trial_{t['number']:04d}"


def test_the_objective_hands_monthly_tests_to_a_policy_that_reads_them(cohorts, tmp_path):
    """The tested SAC (the default) is validated as it is judged: tested monthly, the test
    as that day's session; a policy that reads no tests plays as without."""
    from analysis.tune import VALIDATION_TESTS, _delta_p

    class Reader:
        config = type("Config", (), {"performance_draws": 1})()

        def __init__(self):
            self.days, self.executed = [], 0

        def reset(self, seed):
            pass

        def observe_performance(self, results):
            self.days.append(results)

        def record_executed(self, executed):
            self.executed += 1

        def act(self, obs, mask):
            return np.zeros(len(obs), dtype=int)  # rest, unless the test is the session

    from simulator.cohort import Cohort

    spec = TuneSpec(agent="sac", cohort=cohorts[0], val_cohort=cohorts[1], trials=1,
                    out=str(tmp_path), val_days=30)
    reader, cohort = Reader(), Cohort.load(cohorts[1])
    _delta_p(reader, cohort, spec)
    assert VALIDATION_TESTS.every == 28 and reader.days and reader.executed
    tested = np.isfinite(np.stack(reader.days)).sum(axis=0)
    assert (tested >= 1).all()  # every athlete tested in its first 30 days

