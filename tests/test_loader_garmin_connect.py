"""The Garmin Connect API CSV loader: real shipped files (RHR, sleep, daily summaries), the HRV
file and Strava API activities (shared copy when present, else a small written one), bad cells."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from physiology_model.data.loaders import _registry, load_exports
from physiology_model.errors import DataError

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "garmin_connect_csv" / "u01"
SHARED = Path("/work/shared/data/real/garmin_connect_csv/u01")


@pytest.fixture(scope="module")
def table():
    return load_exports([REAL])


def test_claimed_before_the_garmin_loader():
    first = next(ld for ld in _registry() if ld.claims(REAL / "daily_summaries.csv"))
    assert first.source == "garmin_connect"


def test_rhr_from_the_json_metric_and_sleep(table):
    f = table.frame.set_index("date")
    assert table.users == ["garmin_connect-u01"]
    raw = pd.read_csv(REAL / "resting_heart_rate.csv")
    cell = json.loads(raw.loc[0, "allMetrics_metricsMap_WELLNESS_RESTING_HEART_RATE"])[0]
    assert f.loc[cell["calendarDate"], "rhr_bpm"] == cell["value"] == 52.0
    assert f["rhr_bpm"].count() == 91
    daily = pd.read_csv(REAL / "daily_summaries.csv").set_index("date")
    assert f.loc["2026-02-17", "sleep_min"] == pytest.approx(daily.loc["2026-02-17",
                                                                       "sleepingSeconds"] / 60)
    score = pd.read_csv(REAL / "sleep_score.csv").set_index("date")
    assert f.loc["2026-02-16", "deep_pct"] == 21  # "{'value': 21, ...}"
    assert "{'value': 21" in score.loc["2026-02-16", "deepPercentage"]
    assert f["hrv_rmssd_ms"].isna().all()  # hrv.csv is not shipped (860 KB)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_hrv_and_strava_activities(tmp_path):
    folder = tmp_path / "u01"
    shutil.copytree(REAL, folder)
    if (SHARED / "hrv.csv").exists():
        shutil.copy(SHARED / "hrv.csv", folder)
        n_hrv = 91
    else:
        _write(folder / "hrv.csv", ["hrvSummary_calendarDate", "hrvSummary_lastNightAvg"],
               [[f"2026-02-{d:02d}", 90 + d] for d in range(16, 29)])
        n_hrv = 13
    _write(folder / "strava_activities.csv",
           ["start_date_local", "moving_time_s", "average_heartrate", "max_heartrate", "type"],
           [["2026-02-18T07:00:00Z", 3600, 150, 190, "Run"],
            ["2026-02-20T07:00:00Z", 1800, "", "", "Ride"]])
    f = load_exports([folder]).frame.set_index("date")
    assert f["hrv_rmssd_ms"].count() == n_hrv
    if n_hrv == 91:
        assert f["hrv_rmssd_ms"].mean() == pytest.approx(98, abs=1)
    # 150 / 190 = 79 % HRmax: Edwards zone 3, 60 min → 180
    assert f.loc["2026-02-18", "load_trimp"] == pytest.approx(180)
    assert f.loc["2026-02-19", "load_trimp"] == 0  # worn, no activity: rest
    assert pd.isna(f.loc["2026-02-20", "load_trimp"])  # a ride without heart rate


def test_bad_json_cell_names_the_file(tmp_path):
    path = _write(tmp_path / "resting_heart_rate.csv",
                  ["date", "allMetrics_metricsMap_WELLNESS_RESTING_HEART_RATE"],
                  [["2026-02-16", '[{"value": 52.0, "calendarDate": "2026-02-16"']])
    with pytest.raises(DataError, match=r"resting_heart_rate.csv: column 'allMetrics_.*data row 1"):
        load_exports([path])


def test_sleep_score_dict_without_a_number(tmp_path):
    path = _write(tmp_path / "sleep_score.csv",
                  ["date", "overall", "deepPercentage", "remPercentage"],
                  [["2026-02-16", "{'value': 61}", "{'value': 'high'}", "{'value': 20}"]])
    with pytest.raises(DataError, match=r"sleep_score.csv: column 'deepPercentage', data row 1: "
                                        r"value 'high' is not a number"):
        load_exports([path])


def test_locale_dates_are_an_error(tmp_path):
    path = _write(tmp_path / "daily_summaries.csv",
                  ["date", "userDailySummaryId", "restingHeartRate", "sleepingSeconds"],
                  [["16.02.2026", "1", "52", "27000"]])
    with pytest.raises(DataError, match=r"daily_summaries.csv: column 'date': '16.02.2026'.*ISO"):
        load_exports([path])
