"""Plans from the new exports: an SDNN-only athlete, an athlete without HRV, an HRV spike that
must not flip the plan, and the export's own performance tests (loaders/_hrv.py,
loaders/performance_tests.py, agents/recommend.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders._hrv import artefact_mask
from physiology_model.data.table import ACTIONS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "shipped"
REAL = ROOT / "data" / "real"


def _plan(data: Path, **kw):
    from agents.recommend import plan_for_athlete

    return plan_for_athlete(str(MODEL), [str(data)], days=7, seed=0, **kw)


def test_artefact_rule_on_its_own():
    dates = pd.Series(pd.date_range("2024-01-01", periods=30))
    base = 50 + 3 * np.sin(np.arange(30))
    spike = base.copy()
    spike[20] = 255
    mask, pending = artefact_mask(dates, pd.Series(spike))
    assert mask.tolist() == [i == 20 for i in range(30)] and not pending
    # two mornings in a row: a real change, kept
    twice = spike.copy()
    twice[21] = 240
    assert not artefact_mask(dates, pd.Series(twice))[0].any()
    # a collapse that resting HR confirms (+30 %): physiology, kept
    drop = base.copy()
    drop[20] = 14
    rhr = np.full(30, 50.0)
    rhr[20] = 65
    assert artefact_mask(dates, pd.Series(drop))[0][20]
    assert not artefact_mask(dates, pd.Series(drop), pd.Series(rhr))[0].any()
    # the last morning cannot be confirmed yet: treated as an artefact, and said so
    last = base.copy()
    last[-1] = 255
    mask, pending = artefact_mask(dates, pd.Series(last))
    assert mask[-1] and pending
    # fewer than 5 earlier mornings: no baseline, nothing flagged
    assert not artefact_mask(dates[:5], pd.Series([50, 50, 50, 50, 255]))[0].any()


def test_sdnn_athlete_gets_a_plan():
    plan = _plan(REAL / "intervals_icu" / "u02")
    assert plan["athlete"] == "intervals_icu-u02"
    assert len(plan["days"]) == 7 and all(d["session"] in ACTIONS for d in plan["days"])
    assert any("no RMSSD in the export; its SDNN stands in" in n for n in plan["notes"])
    # the predicted HRV channel is on the athlete's own (SDNN) level: mean SDNN 51 ms there
    assert all(35 < d["hrv_ms"] < 75 for d in plan["days"])


def _section11_copy(tmp_path: Path, uid: str) -> tuple[Path, dict]:
    folder = tmp_path / uid
    shutil.copytree(REAL / "intervals_section11" / uid, folder)
    return folder, json.loads((folder / "history.json").read_text())


def test_a_single_hrv_spike_does_not_flip_the_plan(tmp_path):
    folder, data = _section11_copy(tmp_path, "u05")
    plain = _plan(folder)
    days = data["daily_90d"]
    i = len(days) - 2  # yesterday's morning (today is the partial generation day)
    assert days[i]["hrv"] is not None
    days[i]["hrv"] = 255.0
    (folder / "history.json").write_text(json.dumps(data))
    table = load_exports([folder])
    row = table.frame[table.frame["date"] == pd.Timestamp(days[i]["date"])]
    assert row["hrv_rmssd_ms"].isna().all()
    spiked = _plan(folder)
    # The spike is read as a missing morning, not believed: the plan is the one without that
    # reading, and today's session is the one the real reading gave. (Later days may differ
    # from the plain plan: a missing morning leaves the slow noise component less certain.)
    days[i]["hrv"] = None
    (folder / "history.json").write_text(json.dumps(data))
    missing = _plan(folder)
    assert [d["session"] for d in spiked["days"]] == [d["session"] for d in missing["days"]]
    assert spiked["days"][0]["session"] == plain["days"][0]["session"]
    assert any("artefact" in n and "255 ms" in n for n in spiked["notes"])


def test_plan_uses_the_exports_tests_and_says_which(tmp_path):
    plan = _plan(REAL / "intervals_section11" / "u02")
    assert any("performance tests read from the export" in n and "2026-05-29 180" in n
               and "2026-06-09 182" in n for n in plan["notes"])
    assert any(n.startswith("2 of 2 performance test(s) used") for n in plan["notes"])


def test_plan_without_hrv_says_what_is_missing(tmp_path):
    folder, data = _section11_copy(tmp_path, "u09")
    for d in data["daily_90d"]:
        d["hrv"] = None
    (folder / "history.json").write_text(json.dumps(data))
    plan = _plan(folder)
    assert len(plan["days"]) == 7
    assert any("this export has no HRV" in n for n in plan["notes"])


def test_tests_on_an_export_with_missing_days(tmp_path):
    """The observation rows are calendar days; tests are placed on them, not on the export's
    rows (a day missing from the export once made the planner's replay fail)."""
    folder, data = _section11_copy(tmp_path, "u02")
    data["daily_90d"] = [d for d in data["daily_90d"] if d["date"] not in ("2026-06-01",
                                                                         "2026-06-02")]
    (folder / "history.json").write_text(json.dumps(data))
    plan = _plan(folder)
    assert len(plan["days"]) == 7
    assert any(n.startswith("2 of 2 performance test(s) used") for n in plan["notes"])
