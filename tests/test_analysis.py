"""The policy benchmark, the report, sim-to-real replay and the evaluate/cohort CLI."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.benchmark import (
    PolicyRun,
    evaluate_policies,
    gap_record,
    policy_factories,
    share_of_oracle_gain,
    summarize,
)
from analysis.cli import main
from analysis.real import ActualPlanPolicy
from physiology_model.data.load import actual_actions
from physiology_model.data.table import ACTIONS
from physiology_model.dynamics.step import simulate_observations
from simulator.cohort import generate_cohort
from simulator.env import EnvConfig
from simulator.replay import day_groups, describe_replay, hard_day_response, lag_autocorrelation

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"


def _run(name, dp, ret):
    n = len(dp)
    metrics = {"delta_performance": np.asarray(dp, float), "return": np.asarray(ret, float)}
    z = np.zeros((1, n))
    return PolicyRun(name, metrics, z, z, z, np.zeros((2, n)), 0.0)


def test_summary_records_pct_of_oracle_and_paired_p_values():
    runs = {"random": _run("random", [0] * 10, [0] * 10),
            "hrv_guided": _run("hrv_guided", [1, 1, 2, 1, 1, 2, 1, 1, 2, 1], [1] * 10),
            "mpc": _run("mpc", [2, 3, 3, 3, 2, 3, 2, 3, 3, 2], [2] * 10),
            "oracle": _run("oracle", [4] * 10, [4] * 10)}
    recs = summarize(runs)
    mpc = next(r for r in recs if r["policy"] == "mpc" and r["metric"] == "delta_performance")
    assert set(mpc) >= {"policy", "metric", "mean", "std", "n", "p_vs_best_baseline",
                        "pct_of_oracle"}
    assert mpc["best_baseline"] == "hrv_guided"
    assert mpc["pct_of_oracle"] == pytest.approx(100 * 2.6 / 4)
    low, high = mpc["pct_of_oracle_ci95"]
    assert 100 * 2 / 4 <= low < 100 * 2.6 / 4 < high <= 100 * 3 / 4  # within the values' range
    assert mpc["p_vs_best_baseline"] < 0.05
    same = summarize({"random": runs["random"],
                      "seed_rule": _run("seed_rule", [0] * 10, [0] * 10)})
    assert next(r for r in same if r["policy"] == "seed_rule" and r["metric"] == "return"
                )["p_vs_best_baseline"] == 1.0


def test_share_of_oracle_gain_pairs_athletes_and_needs_an_oracle_above_random():
    rng = np.random.default_rng(0)
    level = rng.normal(0, 5, 200)  # athletes differ a lot; each policy adds a fixed gain
    share = share_of_oracle_gain(level + 0.9, level, level + 1.0, n_boot=500)
    # paired resampling: the athlete effect cancels, the share is exactly 90 % every time
    assert share["pct"] == pytest.approx(90) and share["ci95_low"] == pytest.approx(90)
    noisy = share_of_oracle_gain(level + rng.normal(0.9, 1, 200), level, level + 1.0,
                                 n_boot=500)
    assert noisy["ci95_low"] < noisy["pct"] < noisy["ci95_high"]
    assert noisy["ci95_high"] - noisy["ci95_low"] > 20  # SE of the mean 0.07 over a gain of 1
    assert share_of_oracle_gain([1.0, np.nan], [0.0, 0.0], [2.0, 9.0])["pct"] == 50
    assert share_of_oracle_gain([1.0], [2.0], [2.0]) is None  # the oracle does not beat random


def test_gap_record_pairs_a_policy_with_its_reference():
    level = np.random.default_rng(1).normal(0, 5, 100)
    dp = {"random": level, "oracle": level + 2.0, "mpc": level + 1.8,
          "mpc+known": level + 1.9 + 0.1 * np.sin(np.arange(100))}
    record = gap_record(dp, "mpc+known", "mpc", n_boot=200)
    assert record["pct_of_oracle_gain"] == pytest.approx(95, abs=0.5)
    assert record["delta_p_minus_mpc"] == pytest.approx(0.1, abs=0.01)
    assert 0 < record["delta_p_minus_mpc_se"] < 0.01 and record["p_vs_mpc"] < 1e-10
    assert "p_vs_mpc" not in gap_record(dp, "mpc", "mpc")  # no difference with itself
    assert set(gap_record(dp, "oracle")) == {"pct_of_oracle_gain", "pct_of_oracle_gain_ci95"}


def test_the_mpc_plans_to_the_end_of_the_episode_it_is_run_in(model):
    """The twins' episodes are 60 days: a planner whose objective ended at day 90 would still
    be building fitness when ΔP is read."""
    from simulator.env import Simulation

    factory = policy_factories(["mpc"], model=model)["mpc"]
    cohort = generate_cohort(model, 2, seed=3)
    sim = Simulation(cohort, 2, EnvConfig(episode_days=60, warmup_days=14))
    assert factory(sim).config.episode_days == 60
    assert factory(None).config.episode_days == EnvConfig().episode_days


def test_every_policy_meets_the_same_athletes_and_the_report_is_written(model, tmp_path):
    cohort = generate_cohort(model, 10, seed=21)
    factories = policy_factories(["random", "fixed_periodization", "hrv_guided"])
    config = EnvConfig(episode_days=30, warmup_days=14)
    runs, records = evaluate_policies(factories, cohort, config, seed=5)
    again, _ = evaluate_policies({"random": factories["random"]}, cohort, config, seed=5)
    np.testing.assert_array_equal(runs["random"].metrics["return"],
                                  again["random"].metrics["return"])
    for run in runs.values():
        assert run.metrics["executed_violations"].sum() == 0
        assert run.actions.shape == (30, 10)
        np.testing.assert_allclose(run.metrics["athlete"], np.arange(10))
    assert {r["policy"] for r in records} == set(runs)
    from analysis.report import write_report

    write_report(tmp_path / "r.html", runs, records, meta={"command": "test"})
    text = (tmp_path / "r.html").read_text()
    assert text.count("<img") >= 4 and "Seed success criteria" in text
    assert "fixed_periodization" in text


def test_replay_of_a_known_athlete_matches_its_own_statistics(model):
    rng = np.random.default_rng(0)
    p = model.sample_athletes(1, rng)
    days = 200
    load = np.where(rng.random(days) < 0.3, 0.0, rng.gamma(4.0, 0.3, days))
    sim = simulate_observations(p, load, 0.2 * load, rng)
    share = p["slow_hrv"][0]  # the shipped model's noise: slow + fast components
    lag1 = share * p["phi_slow_hrv"][0] + (1 - share) * p["phi_hrv"][0]
    assert lag_autocorrelation(sim["hrv"][0], 1) == pytest.approx(lag1, abs=0.2)
    hard, rest = day_groups(100 * load, np.ones(days, bool))
    assert hard.sum() > 10 and rest.sum() > 10
    assert np.isfinite(hard_day_response(sim["hrv"][0], hard, rest))
    frame = pd.DataFrame({"user_id": "twin-1", "date": pd.date_range("2024-01-01", periods=days),
                          "source": "whoop", "hrv_rmssd_ms": np.exp(sim["hrv"][0]),
                          "rhr_bpm": sim["rhr"][0], "recovery_pct": sim["recovery"][0],
                          "load_trimp": 100 * load, "z4_min": 12 * load, "z5_min": 0.0,
                          "strength_min": 0.0})
    from simulator.replay import replay_athlete

    replay = replay_athlete(model, frame, 10, rng)
    rows = pd.DataFrame(describe_replay(replay))
    # evaluate --real's hard-day response is model check's statistic, on the same days
    measured = rows[(rows.statistic == "hard_day_response") & (rows.target == "hrv")]
    assert measured["measured"].item() == pytest.approx(
        hard_day_response(replay.measured["hrv"], hard, rest))
    means = rows[rows.statistic == "mean"].set_index("target")
    assert abs(means.loc["hrv", "measured"] - means.loc["hrv", "simulated"]) < 0.15
    assert abs(means.loc["rhr", "measured"] - means.loc["rhr", "simulated"]) < 3.0


def test_actual_plan_reads_sessions_and_loads():
    frame = pd.DataFrame({"user_id": "a", "date": pd.date_range("2024-01-01", periods=5),
                          "session": ["hiit", "unknown", None, "rest", "strength"],
                          "load_trimp": [130.0, 90.0, 5.0, 0.0, np.nan]})
    a = actual_actions(frame, 5)
    assert [ACTIONS[i] for i in a] == ["hiit", "z2_aerobic", "rest", "rest", "strength"]
    assert actual_actions(frame, 6) is None
    policy = ActualPlanPolicy(a[None, :])
    policy.reset()
    mask = np.ones((1, 6), bool)
    mask[0, ACTIONS.index("hiit")] = False
    assert ACTIONS[int(policy.act(None, mask)[0])] == "z2_aerobic"  # stepped down


def test_cli_cohort_and_evaluate_end_to_end(tmp_path, capsys):
    cohort = tmp_path / "c.npz"
    assert main(["cohort", "--model", str(MODEL_DIR), "--n", "6", "--seed", "3",
                 "--out", str(cohort)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(MODEL_DIR), "--cohort", str(cohort),
                 "--policies", "random", "seed_rule", "--days", "20", "--out", str(out),
                 "--forecast", ""]) == 0
    records = json.loads((out / "results.json").read_text())
    assert all({"policy", "metric", "mean", "std", "n"} <= set(r) for r in records)
    table = pd.read_csv(out / "athletes.csv")  # the per-athlete values behind each mean
    assert len(table) == 12 and sorted(set(table["athlete"])) == list(range(6))
    for r in records:
        values = table.loc[table["policy"] == r["policy"], r["metric"]]
        assert values.mean() == pytest.approx(r["mean"], rel=1e-9, abs=1e-12), r
    assert (out / "report.html").stat().st_size > 10_000
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    assert main(["evaluate", "--model", str(MODEL_DIR), "--cohort", str(bad),
                 "--policies", "random", "--out", str(tmp_path / "x")]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # train with settings and a time limit, then a settings typo is one clear error
    run = tmp_path / "ppo"
    assert main(["train", "--agent", "ppo", "--cohort", str(cohort), "--steps", "100000",
                 "--n-envs", "6", "--max-minutes", "0", "--out", str(run), "--agent-config",
                 '{"n_steps": 10, "batch_size": 30, "n_epochs": 1, "hidden_sizes": [8]}']) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["agent_config"]["hidden_sizes"] == [8] and meta["report"]["time_limited"]
    assert main(["train", "--agent", "ppo", "--cohort", str(cohort), "--out",
                 str(tmp_path / "typo"), "--agent-config", '{"gama": 0.9}']) == 2
    assert "gama" in capsys.readouterr().err
    assert main(["train", "--agent", "ppo", "--cohort", str(cohort), "--out", str(run)]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    # two runs of one kind keep a row each, named after their directories
    import shutil

    from analysis.benchmark import policy_factories

    shutil.copytree(run, tmp_path / "ppo_b")
    names = policy_factories(["random"], runs=[str(run), str(tmp_path / "ppo_b")])
    assert list(names) == ["random", "ppo", "ppo_b"]
    with pytest.raises(ValueError, match="two policies named 'ppo_b'"):
        policy_factories([], runs=[str(run), str(tmp_path / "ppo_b"), str(tmp_path / "ppo_b")])
    # an argument the library rejects is one line too, and nothing is left behind
    assert main(["train", "--agent", "ppo", "--cohort", str(cohort), "--steps", "0", "--out",
                 str(tmp_path / "zero")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("periodize: error: steps must be") and "Traceback" not in err
    assert not (tmp_path / "zero").exists()
    assert main(["evaluate", "--model", str(MODEL_DIR), "--cohort", str(cohort),
                 "--policies", "bc", "--out", str(tmp_path / "nobc")]) == 2
    assert "bc policy needs --data" in capsys.readouterr().err
    assert not (tmp_path / "nobc").exists()


def test_evaluate_hands_performance_tests_to_the_policies_that_read_them(tmp_path, capsys,
                                                                       model):
    cohort = tmp_path / "c.npz"
    assert main(["cohort", "--model", str(MODEL_DIR), "--n", "3", "--seed", "4",
                 "--out", str(cohort)]) == 0
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(MODEL_DIR), "--cohort", str(cohort), "--days", "20",
            "--forecast", "", "--policies", "random", "mpc_tested"]
    assert main([*args, "--test-session", "hiit", "--out", str(tmp_path / "x")]) == 2
    assert "--test-session needs --tests-every" in capsys.readouterr().err
    assert main([*args, "--tests-every", "-3", "--out", str(tmp_path / "x")]) == 2
    assert "tests need every ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main([*args, "--tests-every", "7", "--test-session", "tempo_threshold",
                 "--out", str(out)]) == 0
    tests = json.loads((out / "config.json").read_text())["performance_tests"]
    assert tests == {"every_days": 7, "cv": 0.015, "session": "tempo_threshold", "seed": 77,
                     "handed_to": ["mpc_tested"]}
    assert "handed to mpc_tested" in (out / "report.html").read_text()
    from analysis.benchmark import policy_factories

    planner = policy_factories(["mpc_tested"], model=model, test_cv=0.027)["mpc_tested"](None)
    assert planner.config.performance_draws == 1024
    assert planner.config.performance_test_cv == 0.027
    records = json.loads((out / "results.json").read_text())
    tempo = {r["policy"]: r["mean"] for r in records if r["metric"] == "share_tempo_threshold"}
    # tests were due on days 0, 7 and 14, each done as tempo on the first morning the rules
    # allow it (an injury can push one past the last day)
    assert tempo["mpc_tested"] >= 2 / 20


def test_distilled_tree_recovers_a_simple_rule():
    from analysis.interpret import distill
    from simulator.observation import FEATURE_INDEX

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(30, 40, 48)).astype(np.float32)
    obs[..., FEATURE_INDEX["recovery_pct"]] = rng.uniform(0, 100, size=(30, 40))
    actions = np.where(obs[..., FEATURE_INDEX["recovery_pct"]] > 70, 4, 0)
    run = PolicyRun("rule", {"delta_performance": np.zeros(40)}, np.zeros((30, 40)),
                    np.zeros((30, 40)), actions, np.zeros((31, 40)), 0.0, {"obs": obs})
    tree = distill(run, depth=2)
    assert tree.fidelity > 0.97 and tree.majority_fidelity < 0.8
    assert "recovery_pct" in tree.rules and "hiit" in tree.rules


def test_sac_diagnostics_are_recorded(model):
    from agents.sac import DiscreteSAC, SACConfig

    cohort = generate_cohort(model, 4, seed=22)
    agent = DiscreteSAC(SACConfig(hidden_sizes=(16,), learning_starts=0), seed=0)
    runs, records = evaluate_policies({"sac": lambda sim: agent}, cohort,
                                      EnvConfig(episode_days=10, warmup_days=7), seed=1)
    ent = runs["sac"].metrics["policy_entropy"]
    assert ent.shape == (4,) and (ent >= 0).all()
    assert {"policy_entropy", "q_gap"} <= {r["metric"] for r in records}


def test_plan_for_a_shipped_athlete():
    from agents.recommend import plan_for_athlete

    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=7, seed=0)
    assert plan["athlete"] == "whoop-u01" and plan["planner"] == "mpc"
    assert len(plan["days"]) == 7
    dates = [d["date"] for d in plan["days"]]
    assert dates == sorted(set(dates))
    for day in plan["days"]:
        assert day["session"] in ACTIONS
        lo, hi = day["recovery_pct_interval"]
        assert 0 <= lo <= day["recovery_pct"] <= hi <= 100
        lo, hi = day["hrv_ms_interval"]
        assert lo <= day["hrv_ms"] <= hi
    assert "recovery" in plan["days"][0]["why"]
    hard = [d["session"] in ("tempo_threshold", "hiit", "strength") for d in plan["days"]]
    assert not any(all(hard[i:i + 4]) for i in range(4))  # never 4 hard days running


def test_a_policy_trained_towards_a_judging_day_sees_athletes_without_events_at_its_horizon(
        tmp_path):
    from agents.recommend import _policy_view, policy_event_horizon
    from physiology_model.errors import DataError
    from simulator.observation import FEATURE_INDEX

    def run_dir(name, env_config):
        d = tmp_path / name
        d.mkdir()
        (d / "run.json").write_text(json.dumps({"env_config": env_config}))
        return d

    assert policy_event_horizon(run_dir("judged", {"episode_days": 90,
                                                   "judge_day_is_event": True})) == 90
    assert policy_event_horizon(run_dir("hidden", {"episode_days": 90,
                                                   "judge_day_is_event": False})) is None
    assert policy_event_horizon(run_dir("older", {"episode_days": 90})) is None
    with pytest.raises(DataError, match="run.json"):
        policy_event_horizon(tmp_path / "missing")
    obs = np.arange(2 * len(FEATURE_INDEX), dtype=np.float32).reshape(2, -1)
    col = FEATURE_INDEX["days_to_event"]
    obs[:, col] = [180.0, 12.0]  # no event (the cap), and a race in 12 days
    seen = _policy_view(obs, 90)
    assert seen[:, col].tolist() == [90.0, 12.0]
    np.testing.assert_array_equal(np.delete(seen, col, axis=1), np.delete(obs, col, axis=1))
    assert _policy_view(obs, None) is obs


def test_plan_towards_an_event_ends_there_and_bad_dates_are_one_error():
    from agents.recommend import plan_for_athlete
    from physiology_model.errors import DataError

    data = str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=7, seed=0, event="2022-11-14")
    assert plan["event"] == {"date": "2022-11-14", "days_away": 4}
    assert len(plan["days"]) == 4 and plan["days"][-1]["date"] == "2022-11-13"
    assert any("up to the event" in note for note in plan["notes"])
    for bad in ("2022-11-10", "not-a-date"):
        with pytest.raises(DataError, match="--event"):
            plan_for_athlete(str(MODEL_DIR), [data], days=7, seed=0, event=bad)


def test_a_plan_lists_what_the_loaders_repaired_in_the_export(tmp_path):
    """Impossible readings are blanked by the loader; the plan says so instead of planning
    silently on the repaired table."""
    from agents.recommend import plan_for_athlete

    source = MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01"
    cycles = pd.read_csv(source / "physiological_cycles.csv")
    cycles.loc[:5, "Resting heart rate (bpm)"] = 900
    cycles.to_csv(tmp_path / "physiological_cycles.csv", index=False)
    plan = plan_for_athlete(str(MODEL_DIR), [str(tmp_path)], days=2, seed=0)
    repaired = [n for n in plan["notes"] if "rhr_bpm" in n]
    assert len(repaired) == 1 and "set to missing" in repaired[0] and repaired[0].endswith("(6)")
    assert str(tmp_path / "physiological_cycles.csv") in repaired[0]


def test_a_plan_learns_the_performance_response_from_the_athletes_tests(tmp_path):
    from agents.recommend import TEST_DRAWS, plan_for_athlete
    from physiology_model.errors import DataError

    data = [str(MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01")]
    tests = tmp_path / "tests.csv"
    tests.write_text("date,result\n2022-08-01,14.0\n2022-09-15,14.2\n2022-10-13,14.9\n"
                     "2022-11-10,15.1\n")
    plan = plan_for_athlete(str(MODEL_DIR), data, days=3, seed=0, tests=str(tests))
    assert plan["planner"] == "mpc" and len(plan["days"]) == 3
    left_out = [n for n in plan["notes"] if "before the data's first day" in n]
    assert left_out == ["1 performance test(s) before the data's first day (2022-08-25) left out"]
    used = [n for n in plan["notes"] if "performance test(s) used" in n]
    assert len(used) == 1 and used[0].startswith("3 of 4 performance test(s) used")
    ess = float(used[0].split("an effective ")[1].split(" of")[0])
    assert 1 <= ess < TEST_DRAWS  # the tests reached the planner's belief
    tests.write_text("date,result\n2022-11-10,15.1\n")
    one = plan_for_athlete(str(MODEL_DIR), data, days=1, seed=0, tests=str(tests))
    assert any("one test alone" in n for n in one["notes"])
    bad = {"date,speed\n2022-11-10,15\n": "missing column",
           "date,result\n2022-11-01,15\n2022-11-01,16\n": "two tests on 2022-11-01",
           "date,result\n2022-11-01,-3\n": "not results > 0",
           "date,result\n2022-11-01,fast\n": "result",
           "date,result\n2022-11-11,15\n": "after the last day",
           "date,result\nyesterday,15\n": "not dates"}
    for text, problem in bad.items():
        tests.write_text(text)
        with pytest.raises(DataError, match=problem) as err:
            plan_for_athlete(str(MODEL_DIR), data, days=1, seed=0, tests=str(tests))
        assert str(tests) in str(err.value)
