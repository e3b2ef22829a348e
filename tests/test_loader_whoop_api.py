"""WHOOP API loader (physiology_model/data/loaders/whoop_api.py) on the shipped data/real/whoop_api.

Expected values are computed here from the raw files with plain pandas, independently of the
loader's own parsing helpers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.whoop_api import LOADER
from physiology_model.data.table import NUMERIC_COLUMNS, NoteLog
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parents[1] / "data" / "real"
DATA = ROOT / "whoop_api"
ZONES = ["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]


@pytest.fixture(scope="module")
def table():
    return load_exports([DATA])


@pytest.fixture(scope="module")
def frame(table) -> pd.DataFrame:
    return table.frame


def user(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["user_id"] == f"whoop_api-{name}"].set_index("date")


def day(frame: pd.DataFrame, name: str, date: str) -> pd.Series:
    return user(frame, name).loc[pd.Timestamp(date)]


def _utc_bounds(ranges: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`['a','b')` strings → (a, b) tz-naive UTC."""
    parts = ranges.str.extract(r"\['([^']+)',(?:'([^']+)')?\)")
    lower = pd.to_datetime(parts[0], utc=True).dt.tz_localize(None)
    upper = pd.to_datetime(parts[1], utc=True).dt.tz_localize(None)
    return lower, upper


def _hours(offsets: pd.Series) -> pd.Series:
    """`-0500` → -5.0 hours."""
    sign = np.where(offsets.str[0] == "-", -1.0, 1.0)
    return sign * (offsets.str[1:3].astype(int) + offsets.str[3:5].astype(int) / 60.0)


def _local_dates(utc: pd.Series, hours: pd.Series | float) -> pd.Series:
    return (utc + pd.to_timedelta(hours, unit="h")).dt.normalize()


# ---------------------------------------------------------------------------------------------
# every user loads; row counts against the raw files
# ---------------------------------------------------------------------------------------------

def test_every_user_loads_with_unique_keys(frame):
    assert sorted(frame["user_id"].unique()) == [
        "whoop_api-a01", "whoop_api-a02", "whoop_api-a03"]
    assert not frame.duplicated(["user_id", "date"]).any()
    assert (frame["source"] == "whoop_api").all()


def test_a01_rows_are_the_local_days_of_cycles_sleeps_and_workouts(frame):
    cycles = pd.read_csv(DATA / "a01" / "cycles.csv", dtype=str)
    sleeps = pd.read_csv(DATA / "a01" / "sleeps.csv", dtype=str)
    workouts = pd.read_csv(DATA / "a01" / "workouts.csv", dtype=str)
    cycle_days = set(pd.to_datetime(cycles["days"].str[2:12]))
    main = sleeps[sleeps["is_nap"] == "False"]
    _, end = _utc_bounds(main["during"])
    wake = set(_local_dates(end, _hours(main["timezone_offset"])).dropna())
    start, _ = _utc_bounds(workouts["during"])
    trained = set(_local_dates(start, _hours(workouts["timezone_offset"])))
    expected = cycle_days | wake | trained
    assert len(expected) == 453
    assert set(user(frame, "a01").index) == expected


def test_a02_rows_are_wake_dates_and_workout_days(frame):
    sleeps = pd.read_csv(DATA / "a02" / "sleeps.csv")
    workouts = pd.read_csv(DATA / "a02" / "workouts2.csv")
    end = pd.to_datetime(sleeps["time_upper_bound"], utc=True, format="ISO8601")
    start = pd.to_datetime(workouts["time_lower_bound"], utc=True, format="ISO8601")
    # Any North American offset (UTC-5 to UTC-8) gives the same dates for this person.
    for hours in (-5, -6, -7, -8):
        wake = set(_local_dates(end.dt.tz_localize(None), hours))
        trained = set(_local_dates(start.dt.tz_localize(None), hours))
        assert set(user(frame, "a02").index) == wake | trained
    assert len(user(frame, "a02")) == sleeps["is_nap"].eq(False).sum() == 382


def test_a03_rows_are_wake_dates_strain_days_and_workout_days(frame):
    summary = pd.read_csv(DATA / "a03" / "daily_summary.csv")
    workouts = pd.read_csv(DATA / "a03" / "workouts_daily.csv")
    measured = summary["hrv_rmssd_ms"].notna() | summary["recovery_score"].notna()
    wake = set(pd.to_datetime(summary.loc[measured, "sleep_end_local"]).dt.normalize())
    strain_days = set(pd.to_datetime(summary.loc[summary["strain"].notna(), "date"]))
    trained = set(pd.to_datetime(workouts["start_local"]).dt.normalize())
    expected = wake | strain_days | trained
    assert set(user(frame, "a03").index) == expected
    assert len(expected) == 376


# ---------------------------------------------------------------------------------------------
# units and specific conversions
# ---------------------------------------------------------------------------------------------

def test_a01_hrv_seconds_become_milliseconds(frame):
    raw = pd.read_csv(DATA / "a01" / "recovery.csv")
    assert raw["hrv_rmssd"].max() < 0.2  # the file really is in seconds
    # recovery of the night ending 2022-11-07 (-0500): hrv_rmssd 0.03706193 s
    row = day(frame, "a01", "2022-11-07")
    assert row["hrv_rmssd_ms"] == pytest.approx(0.03706193 * 1000)
    assert row["rhr_bpm"] == 55 and row["recovery_pct"] == 49
    assert row["skin_temp_c"] == pytest.approx(34.63333)
    assert row["spo2_pct"] == pytest.approx(96.0)
    hrv = user(frame, "a01")["hrv_rmssd_ms"].dropna()
    assert len(hrv) == raw["hrv_rmssd"].notna().sum() == 451
    assert hrv.between(15, 150).all()
    assert hrv.median() == pytest.approx(raw["hrv_rmssd"].median() * 1000)


def test_a01_sleep_durations_ms_to_minutes(frame):
    # sleep 2022-11-06T08:52Z to 14:03Z: 16 662 651 ms asleep of 18 572 614 ms in bed
    row = day(frame, "a01", "2022-11-06")
    assert row["sleep_min"] == pytest.approx(16_662_651 / 60_000)
    assert row["sleep_efficiency_pct"] == pytest.approx(100 * 16_662_651 / 18_572_614)
    assert row["rem_pct"] == pytest.approx(100 * 2_772_302 / 16_662_651)
    assert row["deep_pct"] == pytest.approx(100 * 2_570_146 / 16_662_651)
    assert row["resp_rate_rpm"] == pytest.approx(15.3515625)


def test_a01_naps_do_not_replace_the_main_sleep(frame):
    sleeps = pd.read_csv(DATA / "a01" / "sleeps.csv", dtype=str)
    main = sleeps[sleeps["is_nap"] == "False"]
    _, end = _utc_bounds(main["during"])
    dates = _local_dates(end, _hours(main["timezone_offset"]))
    expected = pd.Series(pd.to_numeric(main["quality_duration"]).to_numpy() / 60_000,
                         index=dates.to_numpy()).dropna().sort_index()
    got = user(frame, "a01")["sleep_min"].dropna().sort_index()
    pd.testing.assert_series_equal(got, expected, check_names=False, check_index_type=False,
                                   check_freq=False)


def test_a01_strain_is_the_scaled_day_strain_and_the_open_cycle_has_none(frame):
    assert day(frame, "a01", "2022-11-06")["strain"] == pytest.approx(11.757729178959483)
    assert np.isnan(day(frame, "a01", "2022-11-07")["strain"])  # cycle still pending
    assert user(frame, "a01")["strain"].dropna().between(4, 21).all()


def test_a01_zone_minutes_of_one_workout(frame):
    # 2022-11-03: one Weightlifting workout, 14:02Z-14:36Z (-0400),
    # zone_durations [611375, 1120909, 336458, 0, 0, 0] ms: zone 0 ignored.
    row = day(frame, "a01", "2022-11-03")
    assert row[ZONES].tolist() == pytest.approx([1_120_909 / 60_000, 336_458 / 60_000, 0, 0, 0])
    assert row["strength_min"] == pytest.approx((34 * 60 + 29) / 60)
    assert row["load_trimp"] == pytest.approx((1_120_909 + 2 * 336_458) / 60_000)
    assert row["load_basis"] == "hr_zones"


def test_a01_workout_dated_by_local_start_not_utc(frame):
    # 2021-09-26T01:55Z (-0400) is 21:55 on 2021-09-25, the same local day as an 11:42 Spin ride.
    row = day(frame, "a01", "2021-09-25")
    assert row["z4_min"] == pytest.approx((70_291 + 538_330) / 60_000)
    assert row["z5_min"] == pytest.approx(45_298 / 60_000)
    assert day(frame, "a01", "2021-09-26")[ZONES].tolist() == [0, 0, 0, 0, 0]


def test_a01_all_zone_minutes_match_an_independent_sum(frame):
    workouts = pd.read_csv(DATA / "a01" / "workouts.csv", dtype=str)
    start, _ = _utc_bounds(workouts["during"])
    dates = _local_dates(start, _hours(workouts["timezone_offset"]))
    ms = workouts["zone_durations"].map(lambda s: [float(x) for x in re.findall(r"[\d.]+", s)])
    zones = pd.DataFrame(ms.tolist(), index=dates.to_numpy()).iloc[:, 1:] / 60_000
    zones.columns = ZONES
    expected = zones.groupby(level=0).sum()
    got = user(frame, "a01").loc[expected.index, ZONES]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_days_without_workouts_inside_the_span_are_zero_outside_nan(frame):
    a01 = user(frame, "a01")
    # workouts run from 2021-08-12 to 2022-11-06; 2022-11-07 is after the last one
    assert np.isnan(a01.loc[pd.Timestamp("2022-11-07"), ZONES]).all()
    inside = a01.loc[:"2022-11-06"]
    assert inside[ZONES + ["strength_min"]].notna().all().all()
    a03 = user(frame, "a03")
    # the first workout is on 2025-07-17: days before it stay missing
    assert a03.loc[:"2025-07-16", ZONES].isna().all().all()
    assert a03.loc["2025-07-18", ZONES].tolist() == [0, 0, 0, 0, 0]


def test_a02_zone_minutes_and_strength(frame):
    # 2020-09-09T20:46Z: Running, time_hr_zone_0..5 = 0, 30800, 381638, 516218, 1949524, 9613 ms
    row = day(frame, "a02", "2020-09-09")
    expected = [30_800, 381_638, 516_218, 1_949_524, 9_613]
    assert row[ZONES].tolist() == pytest.approx([v / 60_000 for v in expected])
    assert row["strength_min"] == 0
    assert user(frame, "a02")[["hrv_rmssd_ms", "rhr_bpm", "strain"]].isna().all().all()
    # Functional Fitness (sport_id 48) is resistance work
    workouts = pd.read_csv(DATA / "a02" / "workouts2.csv")
    assert user(frame, "a02")["strength_min"].gt(0).sum() > 50
    assert (workouts["sport_id"] == 48).sum() > 50


def test_a03_physiology_on_wake_date_and_zone_sums(frame):
    # The sheet's 2025-07-19 row holds the sleep 2025-07-19 23:18 → 2025-07-20 11:12.
    a03 = user(frame, "a03")
    assert pd.Timestamp("2025-07-19") not in a03.index
    assert a03.loc["2025-07-20", "hrv_rmssd_ms"] == 16.0
    assert a03.loc["2025-07-20", "recovery_pct"] == 78.0
    assert a03.loc["2026-07-20", "sleep_min"] == pytest.approx(6.60 * 60)
    # 2025-07-24: Tennis + Swimming + Yoga (started 23:57 local)
    assert a03.loc["2025-07-24", ZONES].tolist() == pytest.approx(
        [12.6 + 13.3 + 0.6, 3.6 + 4.8, 16.2 + 4.6, 36.9 + 0.2, 20.7])
    assert a03.loc["2025-07-21", "strength_min"] == 35.0  # Functional Fitness


def test_a03_backfilled_and_newest_strain_left_missing(frame):
    a03 = user(frame, "a03")
    assert np.isnan(a03.loc["2025-07-21", "strain"])  # 16.3 = the Running workout's strain
    assert a03.loc["2025-09-08", "strain"] == pytest.approx(7.97)
    assert np.isnan(a03.loc["2026-07-24", "strain"])  # newest, still accruing
    assert a03.loc["2026-07-23", "strain"] == pytest.approx(4.70)


def test_values_inside_canonical_ranges(frame):
    for name, col in NUMERIC_COLUMNS.items():
        values = frame[name].dropna()
        assert values.between(col.lo, col.hi).all(), name


def test_repairs_are_noted(table):
    messages = [str(n) for n in table.notes]
    assert any("a01/cycles.csv" in m and "not yet complete" in m for m in messages)
    assert any("a02/sleeps.csv" in m and "UTC-6" in m for m in messages)
    assert any("a03/daily_summary.csv" in m and "back-filled" in m for m in messages)
    assert any("a03/daily_summary.csv" in m and "date of waking" in m for m in messages)


# ---------------------------------------------------------------------------------------------
# format recognition and bad input
# ---------------------------------------------------------------------------------------------

def test_claims_every_shipped_file_and_no_other_format():
    for path in DATA.rglob("*.csv"):
        assert LOADER.claims(path), path
    others = [p for p in ROOT.rglob("*") if p.is_file() and DATA not in p.parents]
    claimed = [p for p in others if LOADER.claims(p)]
    assert claimed == []


def _copy(src: Path, dst: Path, lines: int | None = None) -> None:
    text = src.read_text().splitlines(keepends=True)
    dst.write_text("".join(text[: lines] if lines else text))


def test_recovery_without_sleeps_or_cycles_is_a_clear_error(tmp_path):
    _copy(DATA / "a01" / "recovery.csv", tmp_path / "recovery.csv", 10)
    with pytest.raises(DataError, match="recovery.csv.*local date"):
        LOADER.load([tmp_path / "recovery.csv"], "x", NoteLog())


def test_malformed_zone_list_names_the_file(tmp_path):
    src = DATA / "a01" / "workouts.csv"
    text = src.read_text().replace("[25032, 9613, 404712, 1055499, 30761, 0]",
                                   "[25032, 9613, 404712]", 1)
    (tmp_path / "workouts.csv").write_text(text)
    shutil.copy(DATA / "a01" / "sports.csv", tmp_path / "sports.csv")
    with pytest.raises(DataError, match=r"workouts.csv.*zone_durations.*3 values"):
        load_exports([tmp_path])


def test_unreadable_time_range_names_the_file(tmp_path):
    text = (DATA / "a01" / "cycles.csv").read_text().replace(
        "['2022-11-06T08:52:46.297Z','2022-11-07T01:21:53.277Z')", "yesterday", 1)
    (tmp_path / "cycles.csv").write_text(text)
    with pytest.raises(DataError, match=r"cycles.csv.*during.*yesterday"):
        load_exports([tmp_path])


def test_duplicate_main_sleep_keeps_the_longest_and_notes_it(tmp_path):
    # Two main sleeps ending on one local date and no recovery: the longer one is kept.
    lines = (DATA / "a02" / "sleeps.csv").read_text().splitlines(keepends=True)
    header, first = lines[0], lines[1]
    shorter = first.replace("111605517", "999").replace(",29976486,", ",1000000,")
    (tmp_path / "sleeps.csv").write_text(header + first + shorter)
    log = NoteLog()
    out = LOADER.load([tmp_path / "sleeps.csv"], "dup", log)
    assert len(out) == 1
    assert out["sleep_min"].iloc[0] == pytest.approx(29_976_486 / 60_000)
    assert any(n.kind == "repair" and "main sleeps" in n.message for n in log.notes)
