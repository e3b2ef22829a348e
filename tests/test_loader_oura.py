"""Oura loader on the shipped exports (data/real/oura): counts against the raw files, units,
main-sleep selection, safe parsing of the readiness dict string, and errors naming the file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import day_row

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.oura import LOADER, parse_dict_string
from physiology_model.data.table import NUMERIC_COLUMNS
from physiology_model.errors import DataError

OURA = Path(__file__).resolve().parents[1] / "data" / "real" / "oura"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def table():
    return load_exports([OURA])


@pytest.fixture(scope="module")
def frame(table) -> pd.DataFrame:
    return table.frame


def test_every_shipped_data_file_is_claimed_and_only_those():
    claimed = sorted(p.relative_to(OURA).as_posix() for p in OURA.rglob("*.csv")
                     if LOADER.claims(p))
    assert claimed == ["u02/oura.csv", "u03/oura.csv", "u03/oura_2022-07-11_2022-07-31_trends.csv",
                       "u04/oura_data.csv"]


def test_users_and_source(frame):
    assert sorted(frame["user_id"].unique()) == ["oura-u02", "oura-u03", "oura-u04"]
    assert set(frame["source"]) == {"oura"}
    assert not frame.duplicated(["user_id", "date"]).any()


def test_row_counts_match_raw_files(frame):
    counts = frame.groupby("user_id").size().to_dict()
    # u02: one row per wake day with a main (long_sleep) period; naps make no row.
    api = _rows(OURA / "u02" / "oura.csv")
    main = {r["bedtime_end"][:10] for r in api if r["type"] == "long_sleep"}
    assert counts["oura-u02"] == len(main)
    # u03: the two files cover the same days; merged, not doubled.
    days = {r["date"] for f in ("oura.csv", "oura_2022-07-11_2022-07-31_trends.csv")
            for r in _rows(OURA / "u03" / f)}
    assert counts["oura-u03"] == len(days) == 20
    # u04: days with at least one value (one line is a date with empty fields).
    sub = _rows(OURA / "u04" / "oura_data.csv")
    assert counts["oura-u04"] == len({r["date"] for r in sub
                                      if any(v for k, v in r.items() if k != "date" and v)})


def test_api_sleep_values_and_units(frame):
    first = day_row(frame, "oura-u02", "2024-01-14")  # raw: bedtime_end 2024-01-14T11:19:02-05:00
    assert first["hrv_rmssd_ms"] == 61.0  # average_hrv, ms
    assert first["rhr_bpm"] == 49.0  # lowest_heart_rate
    assert first["sleep_min"] == pytest.approx(14850 / 60)  # total_sleep_duration s → min
    assert first["deep_pct"] == pytest.approx(3540 / 14850 * 100)
    assert first["rem_pct"] == pytest.approx(3030 / 14850 * 100)
    assert first["resp_rate_rpm"] == 12.125
    assert first["recovery_pct"] == 57.0  # readiness dict 'score'
    assert first["skin_temp_dev_c"] == pytest.approx(-0.34)  # readiness 'temperature_deviation'
    # After the switch to daylight saving time (offset -04:00) the wake day is still local.
    assert day_row(frame, "oura-u02", "2024-03-11")["hrv_rmssd_ms"] == 54.0


def test_naps_are_not_the_night(frame, table):
    u02 = frame[frame["user_id"] == "oura-u02"]
    # 2024-01-24 has only an afternoon nap (type 'sleep'): no row for it.
    assert pd.Timestamp("2024-01-24") not in set(u02["date"])
    # 2024-02-28 has a main sleep and an afternoon nap: the main sleep's values.
    assert day_row(frame, "oura-u02", "2024-02-28")["sleep_min"] == pytest.approx(26910 / 60)
    assert any(n.kind == "info" and n.count == 3 and "long_sleep" in n.message for n in table.notes)


def test_trends_and_subset_values(frame):
    day = day_row(frame, "oura-u03", "2022-07-15")
    assert day["hrv_rmssd_ms"] == 18.0  # Avg HRV
    assert day["rhr_bpm"] == 49.0  # Lo RHR, not Avg RHR (57.18)
    assert day["sleep_min"] == pytest.approx(26310 / 60)
    assert day["deep_pct"] == pytest.approx(1950 / 26310 * 100)
    day = day_row(frame, "oura-u04", "2024-08-29")
    assert day["sleep_min"] == pytest.approx(8.233 * 60)  # hours → min
    assert (day["spo2_pct"], day["deep_pct"], day["rhr_bpm"], day["sleep_efficiency_pct"]) == (
        97.0, 21.0, 49.0, 94.0)
    assert np.isnan(day["hrv_rmssd_ms"]) and np.isnan(day["recovery_pct"])


def test_values_inside_physiological_ranges(frame):
    for name in ("hrv_rmssd_ms", "rhr_bpm", "sleep_min", "recovery_pct", "deep_pct", "spo2_pct"):
        col = NUMERIC_COLUMNS[name]
        values = frame[name].dropna()
        assert len(values) > 0
        assert values.between(col.lo, col.hi).all(), name
    assert frame["sleep_min"].dropna().between(180, 700).all()  # nights, not naps


def test_dict_string_is_parsed_safely(tmp_path):
    where = tmp_path / "x.csv"
    assert parse_dict_string("{'score': 57, 'x': None}", where, 1) == {"score": 57, "x": None}
    assert parse_dict_string('{"score": 57, "x": null}', where, 1) == {"score": 57, "x": None}
    with pytest.raises(DataError, match="x.csv: data row 3"):
        parse_dict_string("__import__('os').getcwd()", where, 3)
    with pytest.raises(DataError, match="expected a dict"):
        parse_dict_string("[1, 2]", where, 1)


def _corrupt_copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "u02"
    folder.mkdir()
    text = (OURA / "u02" / "oura.csv").read_text(encoding="utf-8")
    assert old in text
    (folder / "oura.csv").write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder


def test_broken_readiness_dict_names_the_file(tmp_path):
    folder = _corrupt_copy(tmp_path, "'score': 57,", "'score': 57,,")
    with pytest.raises(DataError, match=r"u02[/\\]oura\.csv: data row 1: cannot read"):
        load_exports([folder])


def test_text_in_a_number_column_names_the_file(tmp_path):
    folder = _corrupt_copy(tmp_path, "12.125,55.75,61.0,", "12.125,55.75,sixty,")
    with pytest.raises(DataError, match=r"oura\.csv: column 'average_hrv'"):
        load_exports([folder])


def test_trends_copy_alone_loads_the_same_days(tmp_path):
    shutil.copy(OURA / "u03" / "oura_2022-07-11_2022-07-31_trends.csv", tmp_path / "t.csv")
    frame = load_exports([tmp_path]).frame
    assert len(frame) == 20 and frame["hrv_rmssd_ms"].notna().all()
