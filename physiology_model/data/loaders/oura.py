"""Oura ring exports → daily rows (source `oura`).

Three layouts are read, all with one person per folder (`user_id = f"oura-{folder}"`):

1. **Oura API v2 sleep periods** (`/v2/usercollection/sleep`, one row per sleep period, columns
   `bedtime_start`, `bedtime_end`, `type`, `average_hrv`, `lowest_heart_rate`, ..., and
   `readiness` as a dict written with Python's `repr`). Only the main sleep of a day
   (`type == "long_sleep"`; the longest one if there are several) makes the row; naps and short
   `sleep`/`rest` periods are not the night's sleep and are left out (an `info` note counts them).
   The date is Oura's `day` when the file has it, else the local calendar date of `bedtime_end`
   (the wake day, which is what Oura's `day` is for a sleep period).
2. **Oura "trends" CSV** (the app's daily export, `date` plus columns such as `Average HRV`,
   `Lowest Resting Heart Rate`, `Total Sleep Duration`, or the abbreviated names `Avg HRV`,
   `Lo RHR`, `Total Sleep Dur` that some users keep). One row per day.
3. **A daily subset** with `date, score, oxygen_level, deep_sleep, hours, resting_heart_rate,
   efficiency` (written by the sleep-health-explorer project; `score` is the sleep score, not
   readiness, and is not kept). Claimed only when the file name mentions Oura.

Conventions and conversions (units from the Oura API v2 reference):

- `average_hrv` / `Average HRV` is the night's mean RMSSD in ms → `hrv_rmssd_ms` unchanged.
- `rhr_bpm` is Oura's *lowest* heart rate of the night (`lowest_heart_rate`, `Lowest Resting
  Heart Rate`), which is what the Oura app reports as resting heart rate and what its readiness
  contributor uses. (The nightly *average* HR is 5-10 bpm higher; it is not kept.)
- durations are seconds → minutes (÷ 60); `hours` → minutes (× 60).
- `deep_pct`, `rem_pct` = stage duration / total sleep duration × 100.
- readiness `score` (0-100) → `recovery_pct`. It is an analogue, not the same algorithm as
  WHOOP recovery: Oura weights previous-day activity, sleep balance and temperature as well as
  HRV and resting HR. Downstream users can filter by `source`.
- readiness `temperature_deviation` (°C from the personal baseline) → `skin_temp_dev_c`.
- `average_breath` (breaths/min) → `resp_rate_rpm`; SpO2 average (%) → `spo2_pct`.

A day whose every value is empty gives no row (an `info` note counts them).
Two files of one folder may give the same day (one user's `oura.csv` repeats the trends file
with an extra column): such days are merged, the first file in name order winning where both
have a value, and the merge is recorded as a `repair` note.
"""

from __future__ import annotations

import ast
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SECONDS_PER_MINUTE = 60.0
MINUTES_PER_HOUR = 60.0

API_SLEEP_COLUMNS = ("bedtime_start", "bedtime_end", "type", "total_sleep_duration")
"""Columns that identify an Oura API v2 sleep-period file."""

MAIN_SLEEP_TYPE = "long_sleep"
"""Oura API v2 `type` of the main sleep of a day (others: `sleep`, `late_nap`, `rest`,
`deleted`)."""

SUBSET_COLUMNS = ("date", "score", "oxygen_level", "deep_sleep", "hours", "resting_heart_rate",
                  "efficiency")
"""The daily subset layout (layout 3 above)."""

# Trends export: canonical column → accepted header names (Oura's full name first, then the
# abbreviations seen in real files). Durations are in seconds.
TRENDS_ALIASES: dict[str, tuple[str, ...]] = {
    "hrv": ("Average HRV", "Avg HRV"),
    "rhr_lowest": ("Lowest Resting Heart Rate", "Lo RHR"),
    "total_s": ("Total Sleep Duration", "Total Sleep Dur"),
    "deep_s": ("Deep Sleep Duration", "Deep Sleep Dur"),
    "rem_s": ("REM Sleep Duration", "REM Sleep Dur"),
    "efficiency": ("Sleep Efficiency",),
    "readiness": ("Readiness Score",),
    "temp_dev": ("Temperature Deviation (°C)", "Temperature Deviation"),
    "resp": ("Respiratory Rate", "Average Respiratory Rate"),
    "spo2": ("Average Oxygen Saturation", "SpO2 Average"),
}


def _alias(header: list[str], key: str) -> str | None:
    """The header's name for a trends field, or None."""
    return next((name for name in TRENDS_ALIASES[key] if name in header), None)


def _is_api_sleep(header: list[str]) -> bool:
    return all(c in header for c in API_SLEEP_COLUMNS) and (
        "average_hrv" in header or "lowest_heart_rate" in header)


def _is_trends(header: list[str]) -> bool:
    # `date` plus Oura's HRV and total-sleep names: WHOOP, Fitbit and Garmin use other names.
    return "date" in header and _alias(header, "hrv") is not None and (
        _alias(header, "total_s") is not None)


def _is_subset(path: Path, header: list[str]) -> bool:
    return "oura" in path.name.lower() and all(c in header for c in SUBSET_COLUMNS)


def parse_dict_string(text: str, path: Path, row: int) -> dict[str, Any]:
    """A dict stored as text: JSON, or a Python literal (`repr` output, with `None`).

    Parsed with `json.loads` or `ast.literal_eval`, never `eval`. Anything else is a
    `DataError` naming the file and the data row.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError(path, f"data row {row}: cannot read {text[:60]!r} as a dict") from None
    if not isinstance(value, dict):
        raise DataError(path, f"data row {row}: expected a dict, found {type(value).__name__}")
    return value


def _number_or_nan(value: Any, what: str, path: Path, row: int) -> float:
    """A number from a parsed dict; None is NaN, anything non-numeric is a `DataError`."""
    if value is None:
        return np.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"data row {row}: {what} is {value!r}, not a number")
    return float(value)


def local_dates(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """The local calendar date of ISO-8601 timestamps that carry their own UTC offset.

    The wall-clock date is kept as written (a sleep ending 2024-03-11T09:50-04:00 belongs to
    2024-03-11 whatever the offset), which `pd.to_datetime` cannot do for mixed offsets.
    """
    out = []
    for i, raw in enumerate(frame[column]):
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            out.append(pd.NaT)
            continue
        try:
            out.append(pd.Timestamp(datetime.fromisoformat(str(raw)).date()))
        except ValueError:
            raise DataError(path, f"column {column!r}: {raw!r} in data row {i + 1} is not an "
                                  f"ISO date/time") from None
    return pd.Series(out, index=frame.index, dtype="datetime64[ns]")


def _share_pct(part_s: pd.Series, total_s: pd.Series) -> pd.Series:
    """A stage's share of total sleep in %, NaN where the total is missing or zero."""
    return (part_s / total_s.where(total_s > 0)) * 100.0


def read_api_sleep(path: Path, log: NoteLog) -> pd.DataFrame:
    """Oura API v2 sleep periods → one row per day (main sleep only), canonical columns."""
    raw = read_csv(path, log)
    require_columns(raw, list(API_SLEEP_COLUMNS), path)
    if "day" in raw.columns:
        day = to_datetime(raw, "day", path).dt.normalize()
    else:
        day = local_dates(raw, "bedtime_end", path)
    if day.isna().any():
        raise DataError(path, f"{int(day.isna().sum())} sleep periods have no day/bedtime_end")
    kind = raw["type"].astype("string").str.strip().str.lower()
    total_s = to_number(raw, "total_sleep_duration", path)

    def num(col: str) -> pd.Series:
        if col in raw.columns:
            return to_number(raw, col, path)
        return pd.Series(np.nan, index=raw.index)

    frame = pd.DataFrame({
        "date": day,
        "hrv_rmssd_ms": num("average_hrv"),  # ms already
        "rhr_bpm": num("lowest_heart_rate"),  # bpm, lowest of the night
        "sleep_min": total_s / SECONDS_PER_MINUTE,  # s → min
        "sleep_efficiency_pct": num("efficiency"),  # % already
        "deep_pct": _share_pct(num("deep_sleep_duration"), total_s),
        "rem_pct": _share_pct(num("rem_sleep_duration"), total_s),
        "resp_rate_rpm": num("average_breath"),  # breaths/min already
        "recovery_pct": np.nan,
        "skin_temp_dev_c": np.nan,
    })
    if "readiness" in raw.columns:
        for i, text in enumerate(raw["readiness"]):
            if text is None:
                continue
            ready = parse_dict_string(text, path, i + 1)
            frame.iloc[i, frame.columns.get_loc("recovery_pct")] = _number_or_nan(
                ready.get("score"), "readiness score", path, i + 1)  # 0-100 → %
            frame.iloc[i, frame.columns.get_loc("skin_temp_dev_c")] = _number_or_nan(
                ready.get("temperature_deviation"), "temperature_deviation", path, i + 1)  # °C

    main = (kind == MAIN_SLEEP_TYPE).fillna(False).to_numpy()
    if (~main).any():
        counts = kind[~main].fillna("(none)").value_counts().to_dict()
        log.add(path, "info", f"sleep periods that are not the main sleep (type "
                              f"{MAIN_SLEEP_TYPE!r}) left out: {counts}", int((~main).sum()))
    frame = frame[main].assign(_total=total_s[main])
    # Two main sleeps on one wake day (a split night): keep the longer; ties by file order.
    frame = frame.sort_values(["date", "_total"], ascending=[True, False], kind="stable")
    dup = frame.duplicated("date")
    if dup.any():
        log.add(path, "repair", "several main sleeps end on one day: the longest is kept",
                int(dup.sum()))
    return frame[~dup].drop(columns="_total").reset_index(drop=True)


def read_trends(path: Path, log: NoteLog) -> pd.DataFrame:
    """An Oura trends export (full or abbreviated column names) → daily rows."""
    raw = read_csv(path, log)
    header = list(raw.columns)

    def num(key: str) -> pd.Series:
        name = _alias(header, key)
        return to_number(raw, name, path) if name else pd.Series(np.nan, index=raw.index)

    total_s = num("total_s")
    return pd.DataFrame({
        "date": to_datetime(raw, "date", path).dt.normalize(),
        "hrv_rmssd_ms": num("hrv"),  # ms already
        "rhr_bpm": num("rhr_lowest"),  # bpm, lowest of the night
        "sleep_min": total_s / SECONDS_PER_MINUTE,  # s → min
        "deep_pct": _share_pct(num("deep_s"), total_s),
        "rem_pct": _share_pct(num("rem_s"), total_s),
        "sleep_efficiency_pct": num("efficiency"),  # % already
        "recovery_pct": num("readiness"),  # readiness score 0-100 → %
        "skin_temp_dev_c": num("temp_dev"),  # °C already
        "resp_rate_rpm": num("resp"),  # breaths/min already
        "spo2_pct": num("spo2"),  # % already
    })


def read_subset(path: Path, log: NoteLog) -> pd.DataFrame:
    """The `date, score, oxygen_level, deep_sleep, hours, ...` daily subset → daily rows."""
    raw = read_csv(path, log)
    require_columns(raw, list(SUBSET_COLUMNS), path)
    return pd.DataFrame({
        "date": to_datetime(raw, "date", path).dt.normalize(),
        "spo2_pct": to_number(raw, "oxygen_level", path),  # % already
        "deep_pct": to_number(raw, "deep_sleep", path),  # % of sleep already
        "sleep_min": to_number(raw, "hours", path) * MINUTES_PER_HOUR,  # h → min
        "rhr_bpm": to_number(raw, "resting_heart_rate", path),  # bpm
        "sleep_efficiency_pct": to_number(raw, "efficiency", path),  # % already
    })


def merge_days(frames: list[pd.DataFrame], where: Path, log: NoteLog) -> pd.DataFrame:
    """Concatenate per-file daily frames; a day in several files is merged, the earlier frame
    winning per column where both have a value (recorded as a `repair` note)."""
    frame = pd.concat(frames, ignore_index=True)
    dup = frame.duplicated("date")
    if not dup.any():
        return frame
    n_days = int(frame.loc[dup, "date"].nunique())
    merged = frame.groupby("date", sort=True, as_index=False).first()
    # Count the values the merge had to choose between, so disagreement is visible.
    conflicts = 0
    for column in frame.columns.drop("date"):
        spread = frame.groupby("date")[column].nunique(dropna=True)
        conflicts += int((spread > 1).sum())
    log.add(where, "repair", f"{n_days} days appear in more than one file; merged, the first "
                             f"file in name order wins ({conflicts} differing values)", n_days)
    return merged


class OuraLoader:
    """Oura API v2 sleep periods, Oura trends exports and the daily subset (see module doc)."""

    source = "oura"

    def claims(self, path: Path) -> bool:
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            return False
        header = header_of(path)
        return _is_api_sleep(header) or _is_trends(header) or _is_subset(path, header)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        frames = []
        for path in sorted(files, key=lambda p: p.name):
            header = header_of(path)
            if _is_api_sleep(header):
                frames.append(read_api_sleep(path, log))
            elif _is_trends(header):
                frames.append(read_trends(path, log))
            else:
                frames.append(read_subset(path, log))
        where = files[0].parent if len(files) > 1 else files[0]
        frame = merge_days(frames, where, log)
        empty = frame.drop(columns="date").isna().all(axis=1)
        if empty.any():
            log.add(where, "info", "days with no value at all give no row", int(empty.sum()))
            frame = frame[~empty].reset_index(drop=True)
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame


LOADER = OuraLoader()
