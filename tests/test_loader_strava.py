"""The Strava bulk-export loader: the full layout (real, repeated column names), the short
layout, and bad files (another locale's dates, another tool's header, a row cut short)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.garmin import edwards_zone_weight
from physiology_model.errors import DataError

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "strava" / "u01"
SHORT = ["Activity ID", "Activity Date", "Activity Name", "Activity Type",
         "Activity Description", "Elapsed Time", "Distance", "Relative Effort", "Commute",
         "Activity Gear", "Filename"]


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    with (REAL / "activities.csv").open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def table():
    return load_exports([REAL])


def test_full_layout_by_position(table, rows):
    header = rows[0]
    assert header.count("Max Heart Rate") == 2 and header.count("Distance") == 2
    assert len(rows) - 1 == 242
    f = table.frame.set_index("date")
    assert table.users == ["strava-u01"]
    avg = header.index("Average Heart Rate")
    with_hr = [r for r in rows[1:] if r[avg]]
    assert len(with_hr) == 234
    # 2024-06-06 17:17:52 UTC: the second run that day; both runs' loads add up
    day = [r for r in rows[1:] if r[1].startswith("Jun 6, 2024")]
    hr_max = max(float(r[header.index("Max Heart Rate")]) for r in rows[1:]
                 if r[header.index("Max Heart Rate")])
    expected = sum(float(r[header.index("Moving Time")]) / 60
                   * float(edwards_zone_weight(np.array(float(r[avg]) / hr_max)))
                   for r in day)
    assert f.loc["2024-06-06", "load_trimp"] == pytest.approx(expected)
    assert (f["load_basis"] == "no_activity").sum() > 200  # rest days inside the log
    assert f["hrv_rmssd_ms"].isna().all() and f["rhr_bpm"].isna().all()


def _write(path: Path, header: list[str], body: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(body)
    return path


def test_short_layout_marks_days_without_load(tmp_path):
    path = _write(tmp_path / "s" / "activities.csv", SHORT, [
        ["1", "Jun 4, 2019, 6:13:47 AM", "Run", "Run", "", "1800", "5.0", "40", "false", "", ""],
        ["2", "Jun 6, 2019, 6:13:47 PM", "Ride", "Ride", "", "3600", "30", "", "false", "", ""]])
    table = load_exports([path])
    f = table.frame.set_index("date")
    assert list(f.index) == list(pd.date_range("2019-06-04", "2019-06-06"))
    assert f.loc["2019-06-05", "load_trimp"] == 0
    assert pd.isna(f.loc["2019-06-04", "load_trimp"])
    assert any("short Strava layout" in n.message for n in table.notes)


def test_other_locale_dates_are_one_clear_error(tmp_path):
    path = _write(tmp_path / "l" / "activities.csv", SHORT, [
        ["1", "4 juin 2024, 06:13:47", "Course", "Run", "", "1800", "5,0", "", "false", "", ""]])
    with pytest.raises(DataError, match=r"activities.csv: 'Activity Date' '4 juin 2024, "
                                        r"06:13:47' in data row 1 .*language set to English"):
        load_exports([path])


def test_a_row_with_missing_fields_is_an_error(tmp_path):
    path = _write(tmp_path / "m" / "activities.csv", SHORT, [
        ["1", "Jun 4, 2024, 6:13:47 AM", "Run", "Run", "", "1800"],
        ["2", "Jun 5, 2024, 6:13:47 AM", "Run", "Run", "", "1800", "5", "", "false", "", ""]])
    with pytest.raises(DataError, match=r"activities.csv: data row 1 has 6 fields but the "
                                        r"header has 11"):
        load_exports([path])


def test_imperial_distance_does_not_matter(tmp_path):
    # an imperial export writes Distance in miles; load uses time and heart rate only
    header = SHORT[:6] + ["Distance", "Max Heart Rate", "Moving Time", "Average Heart Rate"]
    body = [["1", "Jun 4, 2024, 6:13:47 AM", "Run", "Run", "", "1800", "3.1", "180", "1800",
             "150"]]
    km = load_exports([_write(tmp_path / "km" / "activities.csv", header, body)]).frame
    body[0][6] = "5.0"
    mi = load_exports([_write(tmp_path / "mi" / "activities.csv", header, body)]).frame
    assert km["load_trimp"].tolist() == mi["load_trimp"].tolist() == [30 * 4]
