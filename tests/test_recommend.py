"""`periodize recommend`: every athlete's plan in one parquet, bad exports listed, same bytes
on a rerun with any number of workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.recommend import plan_for_athlete
from analysis.batch_recommend import COLUMNS, RecommendSpec, recommend, write_recommendations
from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "models" / "shipped")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """Two good WHOOP exports and two bad ones (unreadable dates; too few mornings)."""
    root = tmp_path_factory.mktemp("exports")
    for user in ("u01", "u07"):
        shutil.copytree(ROOT / "data" / "real" / "whoop" / user, root / user)
    (root / "broken").mkdir()
    (root / "broken" / "daily.csv").write_text("date,hrv_rmssd_ms\n2024-13-45,abc\n")
    (root / "short").mkdir()
    (root / "short" / "daily.csv").write_text(
        "date,hrv_rmssd_ms,rhr_bpm\n2024-01-01,60,50\n2024-01-02,62,51\n")
    return root


@pytest.fixture(scope="module")
def recs(exports, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recs") / "recs.parquet"
    assert main(["recommend", "--model", MODEL, "--data", str(exports), "--out", str(out)]) == 0
    return out


def test_one_row_per_athlete_and_day_and_bad_exports_listed(recs):
    frame = pd.read_parquet(recs)
    assert list(frame.columns) == list(COLUMNS)
    ok = frame[frame["status"] == "ok"]
    assert sorted(ok["athlete"].unique()) == ["whoop-u01", "whoop-u07"]
    assert (ok.groupby("athlete")["day_index"].apply(list) == [list(range(7))] * 2).all()
    assert (ok["today"] == (ok["day_index"] == 0)).all()
    assert ((ok["recovery_pct_p10"] <= ok["recovery_pct"])
            & (ok["recovery_pct"] <= ok["recovery_pct_p90"])).all()
    errors = frame[frame["status"] == "error"].set_index("export")["error"]
    assert set(errors.index) == {"broken", "short"}
    assert "daily.csv" in errors["broken"] and "not dates" in errors["broken"]
    assert "days of HRV or RHR" in errors["short"]


def test_rows_are_the_plan_of_periodize_plan(recs):
    frame = pd.read_parquet(recs)
    mine = frame[frame["athlete"] == "whoop-u07"].sort_values("day_index")
    plan = plan_for_athlete(MODEL, [str(ROOT / "data" / "real" / "whoop" / "u07")])
    assert list(mine["session"]) == [d["session"] for d in plan["days"]]
    np.testing.assert_allclose(mine["recovery_pct"], [d["recovery_pct"] for d in plan["days"]])
    np.testing.assert_allclose(mine[["recovery_pct_p10", "recovery_pct_p90"]].to_numpy(),
                               [d["recovery_pct_interval"] for d in plan["days"]])
    assert mine["reason"].iloc[0] == plan["days"][0].get("reason")


def test_rerun_with_two_workers_writes_the_same_bytes(exports, recs, tmp_path):
    spec = RecommendSpec(MODEL)
    rows = recommend(spec, exports, workers=2, exports_per_task=1, progress=False)
    again = tmp_path / "again.parquet"
    write_recommendations(rows, again, spec)
    assert again.read_bytes() == recs.read_bytes()


def test_bad_model_is_one_error_and_no_file(exports, tmp_path, capsys):
    out = tmp_path / "recs.parquet"
    code = main(["recommend", "--model", str(tmp_path / "nope"), "--data", str(exports),
                 "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "nope" in capsys.readouterr().err


# -- batches: each athlete's plan is the one it gets alone ------------------------------------


@pytest.fixture(scope="module")
def model():
    from physiology_model.model.world_model import WorldModel

    return WorldModel.load(MODEL)


@pytest.fixture(scope="module")
def synthetic(model, tmp_path_factory) -> Path:
    """Three synthetic athletes with 12 mornings each (one batch: the same history length),
    written as `benchmarks/recommend_throughput.py` writes them."""
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.recommend_throughput import write_synthetic_exports

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_exports(model, 3, 12, 5, root)
    return root


def _requests(root: Path):
    from agents.recommend import PlanRequest
    from physiology_model.data.loaders import load_exports

    out = []
    for folder in sorted(root.iterdir()):
        frame = load_exports([folder]).frame
        out.append(PlanRequest(frame.sort_values("date").reset_index(drop=True), []))
    return out


def _tiny_distilled(model):
    from agents.distill import N_INPUTS, DistilledPlanner
    from agents.mpc import MPCConfig
    from agents.sac import DiscreteSAC

    return DistilledPlanner(model, DiscreteSAC(seed=0, n_features=N_INPUTS), MPCConfig())


@pytest.mark.parametrize("planner", ["mpc", "distilled"])
def test_a_batch_plans_each_athlete_as_it_is_planned_alone(model, synthetic, planner):
    import json

    from agents.recommend import _group_key, _prepare, plan_batch

    policy = None if planner == "mpc" else _tiny_distilled(model)
    requests = _requests(synthetic)
    # the three athletes really are planned together
    assert len({_group_key(_prepare(r, None), i, policy) for i, r in enumerate(requests)}) == 1
    together = plan_batch(model, requests, policy=policy, seed=3)
    for request, batched in zip(requests, together):
        alone = plan_batch(model, [request], policy=policy, seed=3)[0]
        assert json.dumps(batched.plan) == json.dumps(alone.plan)
    # the order of the batch does not matter either
    backwards = plan_batch(model, requests[::-1], policy=policy, seed=3)[::-1]
    assert [json.dumps(p.plan) for p in backwards] == [json.dumps(p.plan) for p in together]


def test_the_roll_out_mornings_are_predicts_bit_for_bit(model, synthetic):
    # the distilled roll-out's batched, incremental forecast against `WorldModel.predict` on
    # the growing rows, one athlete at a time, from copies of the same streams
    import copy

    from agents.recommend import (
        ROLLOUT_SAMPLES,
        _MedianMornings,
        _next_morning,
        _planned,
        _posterior,
        _prepare,
    )
    from physiology_model.data.load import SessionLoads, action_loads
    from simulator.env import executed_loads, session_class

    athletes = [_prepare(r, None) for r in _requests(synthetic)]
    rngs = [np.random.default_rng(i) for i in range(len(athletes))]
    params = [_posterior(model, a, r) for a, r in zip(athletes, rngs)]
    mine, theirs = [copy.deepcopy(r) for r in rngs], [copy.deepcopy(r) for r in rngs]
    rows = [a.history.copy() for a in athletes]
    mornings = _MedianMornings(model, rows, params, 4)
    assert len(mornings.groups) == 1  # the three are stacked
    # nominal sessions, then a continuous policy's own (duration, intensity): 55 min tempo,
    # 25 min HIIT, 70 min Z2
    asked = np.array([[55.0, 78.0], [25.0, 90.0], [70.0, 65.0]])
    days = [(a, action_loads(np.array(a))) for a in ([0, 3, 5], [5, 5, 1])]
    days.append((session_class(asked), executed_loads(session_class(asked), asked)))
    assert not np.allclose(days[-1][1].trimp, action_loads(days[-1][0]).trimp)
    for actions, loads in days:
        got = mornings.after(loads, rows, mine)
        for i in range(len(actions)):
            one = _planned(SessionLoads(*(x[i:i + 1] for x in loads)))
            pred = model.predict(rows[i], one, n_samples=ROLLOUT_SAMPLES, rng=theirs[i],
                                 params=params[i])
            assert got[i] == {k: float(np.median(v[:, 0])) for k, v in pred.samples.items()}
        rows = [_next_morning(r, a, loads, i, m)
                for i, (r, a, m) in enumerate(zip(rows, actions, got))]
        assert rows[0]["load_trimp"].iloc[-2] == loads.trimp[0]
    # and each stream is left where `predict` leaves it
    assert [r.random() for r in mine] == [r.random() for r in theirs]


@pytest.mark.parametrize("planner", ["mpc", "distilled"])
def test_each_athlete_is_personalised_once(model, synthetic, planner, monkeypatch):
    """The athlete's posterior is computed once per plan and reused by the planner's replay,
    the roll-out, the plan's intervals and the plan without the rules (issue 22), and the
    plan is the one it gets alone (the reuse keeps each athlete's own streams)."""
    import json

    from agents.recommend import _prepare, plan_batch
    from physiology_model.model.world_model import WorldModel

    policy = None if planner == "mpc" else _tiny_distilled(model)
    requests = _requests(synthetic)
    low = requests[0].history
    low.loc[low.index[-2:], "recovery_pct"] = 5.0  # the recovery floor fires today
    assert _prepare(requests[0], None).reasons  # so its plan without the rules is made too
    alone = [plan_batch(model, [r], policy=policy, seed=3)[0] for r in requests]
    calls = []
    personalize = WorldModel.personalize

    def counted(self, history, *args, **kwargs):
        calls.append(history)
        return personalize(self, history, *args, **kwargs)

    monkeypatch.setattr(WorldModel, "personalize", counted)
    together = plan_batch(model, requests, policy=policy, seed=3)
    assert len(calls) == len(requests)
    assert [json.dumps(p.plan) for p in together] == [json.dumps(p.plan) for p in alone]


def test_a_rough_personalisation_is_a_note_of_its_athlete_not_a_warning(model, synthetic,
                                                                       monkeypatch):
    """A batch whose personalisations are rough (`RoughPosteriorWarning`) says so once in each
    such athlete's notes, and nothing reaches the warnings of the caller."""
    import warnings

    from agents.recommend import ROUGH_POSTERIOR_NOTE, plan_batch
    from physiology_model.model.world_model import RoughPosteriorWarning, WorldModel

    requests = _requests(synthetic)
    rough_uid = str(requests[0].history["user_id"].iloc[0])
    real = WorldModel.athlete_params

    def rough_for_one(self, history, rng):
        if str(history["user_id"].iloc[0]) == rough_uid:
            warnings.warn("personalisation weights are degenerate", RoughPosteriorWarning)
        return real(self, history, rng)

    monkeypatch.setattr(WorldModel, "athlete_params", rough_for_one)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plans = plan_batch(model, requests, seed=3)
    assert not [w for w in caught if issubclass(w.category, RoughPosteriorWarning)]
    notes = [p.plan["notes"] for p in plans]
    assert notes[0].count(ROUGH_POSTERIOR_NOTE) == 1
    assert all(ROUGH_POSTERIOR_NOTE not in n for n in notes[1:])


def test_one_athlete_failing_inside_a_batch_is_its_error_row(synthetic, monkeypatch):
    import agents.recommend as rec

    spec = RecommendSpec(MODEL, seed=1)
    whole = recommend(spec, synthetic, exports_per_task=3, progress=False)
    details = rec._details

    def failing(athlete, *args, **kwargs):
        if athlete.uid.endswith("000001"):
            raise RuntimeError("boom")
        return details(athlete, *args, **kwargs)

    monkeypatch.setattr(rec, "_details", failing)
    rows = recommend(spec, synthetic, exports_per_task=3, progress=False)
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 1 and "RuntimeError: boom" in errors[0]["error"]
    assert errors[0]["athlete"].endswith("000001")
    assert [r for r in rows if r["status"] == "ok"] == [
        r for r in whole if not r["athlete"].endswith("000001")]


def test_task_size_does_not_change_the_rows(synthetic):
    spec = RecommendSpec(MODEL, seed=2)
    one_batch = recommend(spec, synthetic, exports_per_task=3, progress=False)
    alone = recommend(spec, synthetic, exports_per_task=1, progress=False)
    assert one_batch == alone and {r["status"] for r in alone} == {"ok"}


def test_a_continuous_policy_s_rows_carry_the_session_it_asked_for(exports, tmp_path):
    # duration and intensity where the continuous SAC's session was executed as asked, its own
    # load in load_trimp; null where the rules replaced it, and for the MPC
    from physiology_model.data.load import continuous_loads

    out = tmp_path / "recs.parquet"
    policy = str(ROOT / "models" / "agents" / "sac-continuous")
    assert main(["recommend", "--model", MODEL, "--data", str(exports / "u01"),
                 "--policy", policy, "--out", str(out)]) == 0
    ok = pd.read_parquet(out).query("status == 'ok'")
    asked = ok.dropna(subset=["duration_min"])
    assert len(asked) > 0 and asked["intensity_pct_hrmax"].notna().all()
    own = continuous_loads(asked["duration_min"].to_numpy(),
                           asked["intensity_pct_hrmax"].to_numpy()).trimp
    assert np.allclose(asked["load_trimp"], own, rtol=0.01, atol=0.5)


def test_the_mpc_rows_have_no_continuous_session(recs):
    frame = pd.read_parquet(recs)
    assert frame["duration_min"].isna().all() and frame["intensity_pct_hrmax"].isna().all()
