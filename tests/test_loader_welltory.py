"""Welltory loader on the shipped open data (data/real/welltory/all): one row per user-day,
counts against the raw files, the choice of the day's spot measurement, units, static columns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import day_row

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.welltory import LOADER, age_band_midpoint
from physiology_model.errors import DataError

WELLTORY = Path(__file__).resolve().parents[1] / "data" / "real" / "welltory" / "all"


def _rows(name: str) -> list[dict[str, str]]:
    with (WELLTORY / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def table():
    return load_exports([WELLTORY])


@pytest.fixture(scope="module")
def frame(table) -> pd.DataFrame:
    return table.frame


def test_claims_the_four_daily_files_only():
    claimed = sorted(p.name for p in WELLTORY.iterdir() if LOADER.claims(p))
    assert claimed == ["hrv_measurements.csv", "participants.csv", "sleep.csv", "wearables.csv"]


def test_counts_match_raw_files(frame, table):
    hrv = _rows("hrv_measurements.csv")
    hrv_days = {(r["user_code"], r["measurement_datetime"][:10]) for r in hrv}
    assert len(hrv_days) == 1876
    wear_days = {(r["user_code"], r["day"]) for r in _rows("wearables.csv")
                 if r["resting_pulse"] or r["average_spo2_value"]}
    sleep_days = {(r["user_code"], r["day"]) for r in _rows("sleep.csv") if r["sleep_duration"]}
    keys = hrv_days | wear_days | sleep_days
    assert len(frame) == len(keys)
    assert frame["user_id"].nunique() == len({u for u, _ in keys}) == 185
    # One HRV value per user-day; one raw value (310.8 ms) is outside the range and blanked.
    # and isolated implausible readings are set to missing by the artefact rule (loaders/_hrv.py)
    flagged = sum(n.count for n in table.notes if "artefact" in n.message)
    assert flagged < 30
    assert frame["hrv_rmssd_ms"].notna().sum() + flagged == len(hrv_days) - 1
    wear = _rows("wearables.csv")
    assert frame["rhr_bpm"].notna().sum() == sum(bool(r["resting_pulse"]) for r in wear)
    assert not frame.duplicated(["user_id", "date"]).any()
    assert set(frame["source"]) == {"welltory"}


def test_user_ids_are_prefixed_codes(frame):
    codes = {r["user_code"] for r in _rows("participants.csv")}
    assert set(frame["user_id"]) <= {f"welltory-{c}" for c in codes}


def test_the_days_morning_measurement_is_kept(frame, table):
    # 1b9321b648 on 2020-04-19: 01:45 'night' 84.2 ms, 08:47 'morning' 54.3 ms, two in the day.
    day = day_row(frame, "welltory-1b9321b648", "2020-04-19")
    assert day["hrv_rmssd_ms"] == pytest.approx(54.254)
    assert day["rhr_bpm"] == 91.0  # wearables.csv resting_pulse, not the spot bpm (86)
    assert any(n.kind == "repair" and n.count == 3245 - 1876 for n in table.notes)


def test_wearable_units_and_static_columns(frame):
    day = day_row(frame, "welltory-5d200bd1c6", "2020-04-09")
    assert day["rhr_bpm"] == 57.0  # resting_pulse
    assert day["spo2_pct"] == pytest.approx(96.0)  # 0.96 fraction → %
    first = day_row(frame, "welltory-007b8190cf", "2020-04-21")
    assert first["hrv_rmssd_ms"] == pytest.approx(54.174)
    assert np.isnan(first["rhr_bpm"])  # no wearable that day; the spot bpm (75) is not resting
    assert (first["sex"], first["age"]) == ("male", 29.5)  # "m", "25-34"
    assert frame["sex"].notna().all() and frame["age"].notna().all()


def test_sleep_duplicates_keep_the_longest_and_units(frame):
    sleep = _rows("sleep.csv")
    raw = [r for r in sleep if r["user_code"] == "0d297d2410" and r["day"] == "2020-01-01"]
    assert len(raw) == 1
    assert day_row(frame, "welltory-0d297d2410", "2020-01-01")["sleep_min"] == pytest.approx(
        float(raw[0]["sleep_duration"]) / 60)
    assert frame["sleep_min"].notna().sum() == len({(r["user_code"], r["day"]) for r in sleep})


def test_age_band_midpoint(tmp_path):
    assert age_band_midpoint("35-44", tmp_path) == 39.5
    assert age_band_midpoint("65+", tmp_path) == 70.0
    assert np.isnan(age_band_midpoint(None, tmp_path))
    with pytest.raises(DataError, match="age_range 'thirty'"):
        age_band_midpoint("thirty", tmp_path)


def test_text_in_rmssd_names_the_file(tmp_path):
    text = (WELLTORY / "hrv_measurements.csv").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    lines[1] = lines[1].replace('"54.174"', '"fifty"', 1)
    assert "fifty" in lines[1]
    (tmp_path / "hrv_measurements.csv").write_text("".join(lines[:50]), encoding="utf-8")
    with pytest.raises(DataError, match=r"hrv_measurements\.csv: column 'rmssd'"):
        load_exports([tmp_path])
