"""The intervals.icu loader: native CSV download (u01) and API dump (u02), RMSSD kept apart from
SDNN, tests found among the activities, and bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import _registry, load_exports
from physiology_model.data.loaders.intervals_icu import LOADER, read_activities
from physiology_model.data.loaders.performance_tests import export_performance_tests
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "intervals_icu"


@pytest.fixture(scope="module")
def table():
    return load_exports([REAL])


@pytest.fixture(scope="module")
def raw_wellness() -> pd.DataFrame:
    return pd.read_csv(REAL / "u01" / "wellness.csv", encoding="utf-8-sig")


def user(table, uid: str) -> pd.DataFrame:
    return table.frame[table.frame["user_id"] == uid].set_index("date")


def test_both_layouts_are_claimed_by_this_loader():
    loaders = _registry()
    for name in ("u01/wellness.csv", "u01/activities.csv", "u02/wellness.csv",
                 "u02/actividades.csv"):
        first = next(ld for ld in loaders if ld.claims(REAL / name))
        assert first.source == "intervals_icu", name


def test_rmssd_and_sdnn_stay_in_their_own_columns(table, raw_wellness):
    u01 = user(table, "intervals_icu-u01")
    raw = raw_wellness.assign(date=pd.to_datetime(raw_wellness["date"])).set_index("date")
    assert int(raw["hrv"].notna().sum()) == 430
    assert int(raw["hrvSDNN"].notna().sum()) == 1057
    flagged = sum(n.count for n in table.notes if "intervals_icu-u01: isolated" in n.message)
    assert u01["hrv_rmssd_ms"].notna().sum() + flagged == 430
    assert u01["hrv_sdnn_ms"].notna().sum() == 1057
    # a day with SDNN and no RMSSD never gets an RMSSD
    sdnn_only = raw.index[raw["hrv"].isna() & raw["hrvSDNN"].notna()]
    assert len(sdnn_only) > 600
    assert u01.loc[u01.index.intersection(sdnn_only), "hrv_rmssd_ms"].isna().all()
    day = pd.Timestamp("2026-03-04")
    assert u01.loc[day, "hrv_rmssd_ms"] == pytest.approx(50.428978)
    assert u01.loc[day, "hrv_sdnn_ms"] == pytest.approx(76.01637)
    assert u01.loc[day, "rhr_bpm"] == 52
    assert u01.loc[day, "sleep_min"] == pytest.approx(26724 / 60)
    assert set(u01["source"]) == {"intervals_icu"}


def test_sdnn_tracks_rmssd_day_to_day(raw_wellness):
    """The evidence quoted in loaders/_hrv.py: day-to-day changes of ln SDNN and ln RMSSD."""
    w = raw_wellness[["date", "hrv", "hrvSDNN"]].dropna()
    w = w.assign(date=pd.to_datetime(w["date"])).set_index("date").sort_index().asfreq("D")
    d = np.log(w).diff().dropna()
    r = float(np.corrcoef(d["hrv"], d["hrvSDNN"])[0, 1])
    assert len(d) == 391
    assert r == pytest.approx(0.70, abs=0.01)
    assert float((w["hrvSDNN"] / w["hrv"]).median()) == pytest.approx(1.59, abs=0.01)


def test_sdnn_only_athlete_enters_under_its_own_source(table):
    u02 = user(table, "intervals_icu-u02")
    assert u02["hrv_sdnn_ms"].notna().sum() == 60
    # no RMSSD at all: SDNN stands in, under a source of its own, and a note says so
    assert (u02["hrv_rmssd_ms"].dropna() == u02["hrv_sdnn_ms"].dropna()).all()
    assert set(u02["source"]) == {"intervals_icu_sdnn"}
    assert any(n.kind == "repair" and "intervals_icu-u02: no RMSSD" in n.message
               for n in table.notes)


def test_load_from_zones_or_training_load(table):
    u02 = user(table, "intervals_icu-u02")
    acts = pd.read_csv(REAL / "u02" / "actividades.csv")
    assert len(acts) == 49
    # 2025-12-07: one ride, zones [4817, 4267, 1986, 388, 0] s → Edwards TRIMP
    z = np.array([4817, 4267, 1986, 388, 0]) / 60
    assert u02.loc["2025-12-07", "load_trimp"] == pytest.approx(float(z @ [1, 2, 3, 4, 5]))
    assert u02.loc["2025-12-07", "load_basis"] == "hr_zones"
    u01 = user(table, "intervals_icu-u01")
    assert u01["load_trimp"].notna().sum() > 2000
    assert (u01["load_basis"] == "no_activity").sum() > 500
    assert u01["strength_min"].gt(0).sum() > 50  # WeightTraining


def test_tests_are_named_tests_and_races_with_their_eftp():
    found = export_performance_tests([REAL])
    tests, where = found["intervals_icu-u01"]
    assert where.endswith("u01")
    assert tests[pd.Timestamp("2026-01-30")] == 275  # "FTP Test"
    assert tests[pd.Timestamp("2025-12-30")] == 276  # "Ramp test"
    assert tests[pd.Timestamp("2024-11-14")] == 260  # "Winter Hex TT"
    assert pd.Timestamp("2026-02-28") not in tests.index  # "3x10m 82% FTP": a workout
    assert pd.Timestamp("2023-09-22") not in tests.index  # "Tune Up Ramps": a workout
    assert "intervals_icu-u02" not in found


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


WELL = ["date", "restingHR", "hrv", "hrvSDNN", "sleepSecs"]


def test_other_locale_dates_are_one_clear_error(tmp_path):
    path = _write(tmp_path / "a" / "wellness.csv", WELL,
                  [["05.03.2026", "52", "50", "70", "26000"]])
    with pytest.raises(DataError, match=r"wellness.csv: column 'date': '05.03.2026'.*ISO"):
        load_exports([path])


def test_semicolon_decimal_comma_file_is_read(tmp_path):
    path = tmp_path / "b" / "wellness.csv"
    path.parent.mkdir()
    path.write_text("date;restingHR;hrv;hrvSDNN;sleepSecs\n2026-03-04;52;50,4;76,0;26724\n"
                    "2026-03-05;53;48,1;70,2;25000\n", encoding="utf-8")
    frame = load_exports([path]).frame
    assert frame["hrv_rmssd_ms"].tolist() == pytest.approx([50.4, 48.1])


def test_not_a_number_names_the_file_and_column(tmp_path):
    path = _write(tmp_path / "c" / "wellness.csv", WELL,
                  [["2026-03-04", "52", "fifty", "70", "26000"]])
    with pytest.raises(DataError, match=r"wellness.csv: column 'hrv'.*'fifty'"):
        load_exports([path])


def test_bad_zone_list_in_api_dump(tmp_path):
    header = ["id", "start_date_local", "type", "icu_training_load", "moving_time",
              "icu_hr_zone_times"]
    path = _write(tmp_path / "d" / "acts.csv", header,
                  [["i1", "2025-12-07T06:40:40", "Ride", "169", "11452", "[1, 2, __import__]"]])
    with pytest.raises(DataError, match=r"acts.csv: data row 1: icu_hr_zone_times"):
        read_activities(path, NoteLog())


def test_another_tools_header_is_not_taken_for_intervals(tmp_path):
    path = _write(tmp_path / "e" / "wellness.csv", ["Date", "Weight", "HRV", "Resting HR"],
                  [["2026-03-04", "70", "50", "52"]])
    assert not LOADER.claims(path)
    with pytest.raises(DataError, match=r"wellness.csv: no recognised export format"):
        load_exports([path])
