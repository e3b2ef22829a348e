"""Garmin loader on the shipped exports (data/real/garmin): the CSV pull (u15) and the daily
markdown notes (u02). Counts against the raw files, units, the load conversion, the markdown
parser on real notes and on drifted/corrupted copies."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import day_row

from physiology_model.data.load import TRIMP_PER_TSS
from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.garmin import (
    LOADER,
    edwards_zone_weight,
    parse_markdown_fields,
    read_activity_markdown,
    read_wellness_markdown,
)
from physiology_model.data.table import NUMERIC_COLUMNS, NoteLog
from physiology_model.errors import DataError

GARMIN = Path(__file__).resolve().parents[1] / "data" / "real" / "garmin"
U02 = GARMIN / "u02"
U15 = GARMIN / "u15"
MEASURED = re.compile(r"^- (Last night average|Resting HR|Average stress level|Total steps): \d",
                      re.MULTILINE)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def table():
    return load_exports([GARMIN])


@pytest.fixture(scope="module")
def frame(table) -> pd.DataFrame:
    return table.frame


def test_every_shipped_file_is_claimed():
    files = [p for p in GARMIN.rglob("*") if p.is_file()]
    assert len(files) == 186
    assert all(LOADER.claims(p) for p in files)


def test_keys_users_and_source(frame):
    assert sorted(frame["user_id"].unique()) == ["garmin-u02", "garmin-u15"]
    assert set(frame["source"]) == {"garmin"}
    assert not frame.duplicated(["user_id", "date"]).any()


def test_u15_counts_match_raw_csv(frame):
    u15 = frame[frame["user_id"] == "garmin-u15"]
    daily = _rows(U15 / "garmin_daily.csv")
    acts = _rows(U15 / "garmin_activities.csv")
    assert len(u15) == len({r["date"] for r in daily} | {r["start_time_local"][:10] for r in acts})
    assert u15["rhr_bpm"].notna().sum() == sum(float(r["restingHeartRate"]) > 0 for r in daily)
    assert u15["sleep_min"].notna().sum() == sum(float(r["sleepingSeconds"]) > 0 for r in daily)
    # The daily file covers every day of the activity log: load is known every day.
    assert u15["load_trimp"].notna().all()
    assert u15["hrv_rmssd_ms"].isna().all()  # this pull has no HRV


def test_u02_counts_match_raw_notes(frame):
    u02 = frame[frame["user_id"] == "garmin-u02"]
    notes = {p.name[9:19]: p.read_text(encoding="utf-8") for p in U02.glob("wellness-*.md")}
    assert len(notes) == 123
    measured = {d for d, text in notes.items() if MEASURED.search(text)}
    assert set(u02["date"].dt.strftime("%Y-%m-%d")) == measured  # days with no data: no row
    hrv_days = {d for d, t in notes.items() if re.search(r"Last night average: \d+ ms", t)}
    assert set(u02.loc[u02["hrv_rmssd_ms"].notna(), "date"].dt.strftime("%Y-%m-%d")) == hrv_days
    activity_days = {p.name[9:19] for p in U02.glob("activity-*.md")}
    with_load = u02.loc[u02["load_basis"] == "avg_hr_edwards", "date"].dt.strftime("%Y-%m-%d")
    assert set(with_load) == activity_days


def test_u02_wellness_values_and_units(frame):
    day = day_row(frame, "garmin-u02", "2026-07-18")  # wellness-2026-07-18.md
    assert day["hrv_rmssd_ms"] == 50.0  # "Last night average: 50 ms"
    assert day["rhr_bpm"] == 50.0
    assert day["sleep_min"] == 458.0
    assert day["deep_pct"] == pytest.approx(97 / 458 * 100)
    assert day["rem_pct"] == pytest.approx(78 / 458 * 100)
    assert day["sleep_efficiency_pct"] == pytest.approx(458 / (458 + 15) * 100)
    assert np.isnan(day["recovery_pct"])  # "No training readiness data"
    assert np.isnan(day["load_trimp"])  # after the last activity: not a known rest day


def test_u02_load_from_mean_hr(frame):
    hr_max = max(float(m) for p in U02.glob("activity-*.md")
                 for m in re.findall(r"Max heart rate: ([\d.]+)", p.read_text(encoding="utf-8")))
    assert hr_max == 190.0
    # activity-2026-04-08: 78 min at 158 bpm = 83 % HRmax → zone 4.
    assert day_row(frame, "garmin-u02", "2026-04-08")["load_trimp"] == 78 * 4
    # Two activities on 2026-06-06: 45 min at 159 bpm (zone 4) + 66 min at 134 bpm (zone 3).
    assert day_row(frame, "garmin-u02", "2026-06-06")["load_trimp"] == 45 * 4 + 66 * 3
    # A worn day inside the activity log with no activity is a measured rest day.
    rest = day_row(frame, "garmin-u02", "2026-04-09")
    assert (rest["load_trimp"], rest["strength_min"], rest["load_basis"]) == (
        0.0, 0.0, "no_activity")


def test_u15_values_and_load(frame):
    day = day_row(frame, "garmin-u15", "2024-03-16")
    assert day["rhr_bpm"] == 61.0
    assert day["sleep_min"] == pytest.approx(26580 / 60)  # sleepingSeconds → min
    # HRmax = 198 (highest activity max HR). Running 2386.7 s at 157 bpm (79 %) → zone 3;
    # strength 4097.7 s at 92 bpm (46 %) → below zone 1; two 'other' entries without HR: none.
    assert day["load_trimp"] == pytest.approx(2386.735107421875 / 60 * 3)
    assert day["strength_min"] == pytest.approx(4097.73486328125 / 60)
    # Indoor cycling without HR but with TSS 24.94 → TSS conversion, plus strength by HR.
    day = day_row(frame, "garmin-u15", "2024-06-15")
    assert day["load_trimp"] == pytest.approx(24.93677144368006 * TRIMP_PER_TSS)
    assert day["load_basis"] == "avg_hr_edwards+tss"
    assert day_row(frame, "garmin-u15", "2024-03-18")["load_trimp"] == 0.0


def test_values_inside_physiological_ranges(frame):
    for name in ("hrv_rmssd_ms", "rhr_bpm", "sleep_min", "deep_pct", "load_trimp", "strength_min"):
        col = NUMERIC_COLUMNS[name]
        values = frame[name].dropna()
        assert len(values) > 0
        assert values.between(col.lo, col.hi).all(), name


def test_notes_record_the_repairs(table):
    messages = [n.message for n in table.notes]
    assert any("HRmax" in m and "198" in m for m in messages)
    assert any("neither heart rate nor TSS" in m for m in messages)


def test_markdown_parser_on_real_notes():
    text = (U02 / "wellness-2026-07-18.md").read_text(encoding="utf-8")
    title, fields = parse_markdown_fields(text)
    assert title == "Wellness — 2026-07-18"
    assert fields[("sleep", "deep")] == "97 min"
    assert fields[("sleep", "awake")] == "15 min"
    assert fields[("heart rate variability (hrv)", "7-day average")] == "42 ms"
    assert fields[("resting heart rate", "resting hr")] == "50.0 bpm"
    act = read_activity_markdown(U02 / "activity-2026-04-08-22452551723-Tempe_Running.md",
                                 NoteLog())
    assert act["start"] == pd.Timestamp("2026-04-08 04:34:56")
    assert (act["type"], act["minutes"], act["avg_hr"], act["max_hr"]) == (
        "running", 78.0, 158.0, 172.0)
    empty = read_wellness_markdown(U02 / "wellness-2026-03-18.md", NoteLog())
    assert not empty["worn"] and np.isnan(empty["sleep_min"]) and np.isnan(empty["hrv_rmssd_ms"])


def _note(tmp_path: Path, old: str | None = None, new: str = "",
          name: str = "wellness-2026-07-18.md") -> Path:
    """Copy one u02 note into tmp_path/u02, replacing `old` by `new`."""
    folder = tmp_path / "u02"
    folder.mkdir(exist_ok=True)
    text = (U02 / name).read_text(encoding="utf-8")
    if old is not None:
        assert old in text
        text = text.replace(old, new)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_corrupted_number_is_a_data_error_naming_the_file(tmp_path):
    _note(tmp_path, "Resting HR: 50.0 bpm", "Resting HR: 5O.0 bpm")
    with pytest.raises(DataError, match=r"wellness-2026-07-18\.md: 'resting hr'.*'5O\.0 bpm'"):
        load_exports([tmp_path / "u02"])


def test_unexpected_unit_is_a_data_error(tmp_path):
    _note(tmp_path, "Last night average: 50 ms", "Last night average: 0.05 s")
    with pytest.raises(DataError, match=r"last night average.*expected 'ms'"):
        load_exports([tmp_path / "u02"])


def test_drifted_format_and_missing_section(tmp_path):
    path = _note(tmp_path, "Total sleep: 458 min", "Total sleep: 7h 38m")
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"## Heart Rate Variability \(HRV\)\n(- .*\n)+", "", text)
    text = text.replace("- No training readiness data available for this day.", "- Score: 71")
    text = text.replace("Total steps: 585", "Total steps: 12,585")
    path.write_text(text, encoding="utf-8")
    record = read_wellness_markdown(path, NoteLog())
    assert record["sleep_min"] == 458.0
    assert np.isnan(record["hrv_rmssd_ms"])
    assert record["rhr_bpm"] == 50.0
    assert record["recovery_pct"] == 71.0  # Training Readiness score → recovery_pct


def test_corrupted_activity_names_the_file(tmp_path):
    name = "activity-2026-04-08-22452551723-Tempe_Running.md"
    _note(tmp_path, "Duration: 78 min", "Duration: long", name=name)
    shutil.copy(U02 / "wellness-2026-04-08.md", tmp_path / "u02")
    with pytest.raises(DataError, match=re.escape(name) + r": 'duration'"):
        load_exports([tmp_path / "u02"])


def test_edwards_zone_weight():
    f = np.array([0.3, 0.5, 0.599, 0.6, 0.75, 0.9, 1.05, np.nan])
    np.testing.assert_array_equal(edwards_zone_weight(f), [0, 1, 1, 2, 3, 5, 5, np.nan])
