"""The Section 11 (intervals.icu sync) JSON loader: 28 athletes' 90 days, the FTP log as tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.load import TRIMP_PER_TSS
from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.performance_tests import export_performance_tests
from physiology_model.data.loaders.section11 import read_ftp_history
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "intervals_section11"


@pytest.fixture(scope="module")
def table():
    return load_exports([REAL])


def _daily(uid: str) -> list[dict]:
    return json.loads((REAL / uid / "history.json").read_text())["daily_90d"]


def test_every_athlete_with_hrv_rhr_and_load(table):
    f = table.frame
    assert f["user_id"].nunique() == 28
    assert set(f["source"]) == {"section11"}
    per = f.groupby("user_id").agg(hrv=("hrv_rmssd_ms", "count"), rhr=("rhr_bpm", "count"),
                                   load=("load_trimp", "count"))
    assert per["hrv"].min() >= 60 and per["load"].min() >= 88
    # resting HR on ≥ 60 days, except where carried-forward values were blanked
    # (tests/test_stuck_readings.py): u17 loses 37 days, u25 84
    assert set(per.index[per["rhr"] < 60]) == {"section11-u17", "section11-u25"}
    assert per.loc["section11-u17", "rhr"] >= 50
    assert int(per["hrv"].sum()) == 2410
    assert not f.duplicated(["user_id", "date"]).any()


def test_values_and_units_match_the_json(table):
    days = {d["date"]: d for d in _daily("u02")}
    u02 = table.frame[table.frame["user_id"] == "section11-u02"].set_index("date")
    d = days["2026-05-18"]
    row = u02.loc["2026-05-18"]
    assert row["hrv_rmssd_ms"] == d["hrv"] == 43.0
    assert row["rhr_bpm"] == d["rhr"]
    assert row["sleep_min"] == pytest.approx(d["sleep_hours"] * 60)
    assert row["load_trimp"] == pytest.approx(d["total_tss"] * TRIMP_PER_TSS)
    assert row["load_basis"] == "tss"
    rest = [k for k, v in days.items() if v["total_tss"] == 0 and v["activity_count"] == 0]
    assert u02.loc[rest[0], "load_trimp"] == 0 and u02.loc[rest[0], "load_basis"] == "no_activity"


def test_the_generation_day_has_no_load(table):
    for uid in ("u02", "u10"):
        last = _daily(uid)[-1]["date"]
        row = table.frame[(table.frame["user_id"] == f"section11-{uid}")
                          & (table.frame["date"] == pd.Timestamp(last))]
        assert np.isnan(row["load_trimp"].iloc[0])
    assert sum("the last daily_90d day" in n.message for n in table.notes) >= 27


def test_latest_json_adds_its_days(table):
    u01 = table.frame[table.frame["user_id"] == "section11-u01"].set_index("date")
    assert u01.index.max() == pd.Timestamp("2026-08-22")
    assert u01.loc["2026-08-16", "hrv_rmssd_ms"] == 27.0
    assert u01.loc["2026-08-16", "rhr_bpm"] == 58
    assert u01.loc["2026-08-21", "load_trimp"] > 0  # a 53-TSS ride that day


def test_ftp_log_rule():
    found = export_performance_tests([REAL])
    assert len(found) == 28
    assert found["section11-u02"][0].to_dict() == {pd.Timestamp("2026-05-29"): 180.0,
                                                   pd.Timestamp("2026-06-09"): 182.0}
    assert list(found["section11-u17"][0]) == [90.0, 112.0, 129.0, 134.0]
    # u19: indoor 2, outdoor 3 entries: outdoor is used, a same-day pair counts once
    u19 = found["section11-u19"][0]
    assert list(u19) == [200.0, 210.0, 215.0]


def test_ftp_log_prefers_the_environment_with_more_entries(tmp_path):
    path = tmp_path / "ftp_history.json"
    path.write_text(json.dumps({"indoor": {"2026-01-01": 200, "2026-02-01": 210},
                                "outdoor": {"2026-01-01": 205}}))
    assert list(read_ftp_history(path, NoteLog())) == [200.0, 210.0]


def _copy(tmp_path: Path, uid: str = "u05") -> Path:
    folder = tmp_path / uid
    shutil.copytree(REAL / uid, folder)
    return folder


def test_truncated_json_is_one_clear_error(tmp_path):
    folder = _copy(tmp_path)
    text = (folder / "history.json").read_text()
    (folder / "history.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"history.json: not valid JSON \(line \d+"):
        load_exports([folder])


def test_locale_date_and_text_values_are_errors(tmp_path):
    folder = _copy(tmp_path)
    data = json.loads((folder / "history.json").read_text())
    data["daily_90d"][3]["date"] = "18.05.2026"
    (folder / "history.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"history.json: daily_90d\[3\]: '18.05.2026' is not an "
                                        r"ISO date"):
        load_exports([folder])
    data["daily_90d"][3]["date"] = "2026-05-18"
    data["daily_90d"][4]["hrv"] = "45 ms"
    (folder / "history.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"daily_90d\[4\].hrv is '45 ms', not a number"):
        load_exports([folder])


def test_daily_list_missing_is_an_error(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "history.json").write_text(json.dumps({"sync_version": "3.1", "daily_90d": {}}))
    with pytest.raises(DataError, match=r"history.json: no `daily_90d` list"):
        load_exports([folder])
