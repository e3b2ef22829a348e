"""The shipped agents (models/agents, issue 20): finished run directories of weights and JSON
settings that `periodize evaluate --runs` and `periodize plan --policy` accept, and that play
by the rules; each reads the monthly tests it is handed (the SAC warm-started from the tested
student shipped beside it, the student, and SB3's continuous SAC trained on tested athletes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.policy import reads_performance_tests
from analysis.benchmark import PerformanceTesting, policy_factories, run_policy
from analysis.cli import main
from physiology_model.data.table import ACTIONS
from physiology_model.model.world_model import WorldModel
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "shipped"
AGENTS = ROOT / "models" / "agents"
SHIPPED = [("sac", "sac", "sac", True),
           ("sac-continuous", "sac-continuous", "sac-continuous", True),
           ("mpc-distilled-tested", "mpc-distilled", "mpc-distilled", True)]
"""(directory, agent recorded in run.json, policy name, reads performance tests)."""


@pytest.fixture(scope="module")
def model():
    return WorldModel.load(MODEL)


@pytest.mark.parametrize("directory, agent, name, reads_tests", SHIPPED)
def test_a_shipped_agent_is_a_finished_run_of_weights_and_json(directory, agent, name,
                                                               reads_tests):
    run = AGENTS / directory
    files = [p for p in run.rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".pt", ".json"}  # nothing to unpickle
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["agent"] == agent
    # what it was trained from, named inside this checkout, not on the machine, in its record
    # and in its checkpoint's settings (which name the shipped world model `shipped`)
    for settings in run.rglob("*.json"):
        text = settings.read_text()
        assert "/work/" not in text and str(ROOT) not in text, settings
    model_dir = meta.get("model_dir") or meta["cohort"]["meta"]["model_dir"]
    assert model_dir == "models/shipped"
    warm = meta["agent_config"].get("warm_start")
    assert warm is None or (ROOT / warm / "run.json").is_file()  # its student is shipped


@pytest.mark.parametrize("directory, agent, name, reads_tests", SHIPPED)
def test_a_shipped_agent_loads_from_any_working_directory(directory, agent, name, reads_tests,
                                                         tmp_path, monkeypatch):
    from agents.training import load_agent

    monkeypatch.chdir(tmp_path)  # its world model is found by name, not by a path from here
    assert reads_performance_tests(load_agent(AGENTS / directory)) == reads_tests


@pytest.mark.parametrize("directory, agent, name, reads_tests", SHIPPED)
def test_a_shipped_agent_plays_by_the_rules(model, directory, agent, name, reads_tests):
    (policy_name, factory), = policy_factories([], model=model,
                                               runs=[str(AGENTS / directory)]).items()
    assert policy_name == name and reads_performance_tests(factory(None)) == reads_tests
    tests = PerformanceTesting(28, session=ACTIONS.index("tempo_threshold"))
    played = run_policy(policy_name, factory, generate_cohort(model, 8, seed=7),
                        EnvConfig(episode_days=35), seed=3, tests=tests)
    assert played.metrics["executed_violations"].sum() == 0
    assert ("tested" in played.extra) == reads_tests
    if reads_tests:  # each athlete tested on its first allowed morning from day 0 on
        assert (played.extra["tested"].sum(axis=0) >= 1).all()
    assert len(np.unique(played.actions)) > 1  # it chooses, it does not repeat one session


@pytest.mark.parametrize("directory", [d for d, *_ in SHIPPED])
def test_periodize_plan_takes_a_shipped_agent(directory, capsys):
    code = main(["plan", "--model", str(MODEL), "--data", str(ROOT / "data/real/whoop/u01"),
                 "--policy", str(AGENTS / directory)])
    out = capsys.readouterr().out
    assert code == 0 and f"planner: policy {AGENTS / directory}" in out
    assert sum(line.startswith("  2022-11-") for line in out.splitlines()) == 7


def test_a_continuous_agent_plans_the_sessions_it_asked_for():
    # the roll-out and the plan's predictions follow the load of the (duration, intensity)
    # the continuous SAC asked for, as the simulator loads it, not its class's nominal load
    from agents.recommend import plan_for_athlete, session_text
    from physiology_model.data.load import action_loads, continuous_loads

    plan = plan_for_athlete(str(MODEL), [str(ROOT / "data/real/whoop/u01")],
                            policy_dir=str(AGENTS / "sac-continuous"))
    asked = [d for d in plan["days"] if "duration_min" in d]
    assert asked, "the shipped continuous SAC asked for no session it was given"
    for d in asked:
        own = continuous_loads(d["duration_min"], d["intensity_pct_hrmax"]).trimp
        assert d["load_trimp"] == pytest.approx(float(own), rel=0.01, abs=0.5)
        assert f"{d['duration_min']:.0f} min at" in session_text(d)
    nominal = action_loads(np.array([ACTIONS.index(d["session"]) for d in asked])).trimp
    assert not np.allclose([d["load_trimp"] for d in asked], nominal)


def test_shipping_names_the_shipped_student_and_leaves_logs_behind(tmp_path, monkeypatch):
    # full_evaluation --ship: a warm-started SAC's record names its student; shipped together,
    # the record names the shipped copy, relative to the checkout, never the build folder
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks import full_evaluation

    monkeypatch.setattr(full_evaluation, "ROOT", tmp_path)
    build, ship = tmp_path / "build" / "runs", tmp_path / "models" / "agents"
    student, sac = build / "mpc-distilled-tested", build / "sac-warm"
    for run in (student, sac):
        (run / "model").mkdir(parents=True)
        (run / "model" / "weights.pt").write_bytes(b"w")
        (run / "tb").mkdir()
    (student / "run.json").write_text(json.dumps({"agent": "mpc-distilled"}))
    (sac / "run.json").write_text(json.dumps({"agent": "sac", "cohort": str(build / "c.npz"),
                                              "agent_config": {"warm_start": str(student)}}))
    ship.mkdir(parents=True)
    full_evaluation._ship({"sac-warm": sac, "mpc-distilled-tested": student}, ship)
    record = json.loads((ship / "sac" / "run.json").read_text())
    assert record["agent_config"]["warm_start"] == "models/agents/mpc-distilled-tested"
    assert record["cohort"] == "build/runs/c.npz"
    assert (ship / "mpc-distilled-tested" / "model" / "weights.pt").is_file()
    assert not (ship / "sac" / "tb").exists() and not list(ship.glob(".*"))
