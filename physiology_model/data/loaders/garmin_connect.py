"""Garmin Connect API CSVs → daily rows (source `garmin_connect`,
`user_id = f"garmin_connect-{folder}"`), one person per folder.

A sync script calling the `garminconnect` Python API writes one flattened CSV per endpoint
(nested values become `parent_child` columns, lists and dicts JSON or Python-repr strings,
column order is the API's dict order and differs between repositories, so columns are found by
name). Files, recognised by their header:

- `hrv.csv` (`hrvSummary_lastNightAvg`): Garmin's overnight mean **RMSSD** (ms) →
  `hrv_rmssd_ms`, dated `hrvSummary_calendarDate` (the wake day). The 5-minute readings
  (`hrvReadings`) are not needed.
- `resting_heart_rate.csv` (`allMetrics_metricsMap_WELLNESS_RESTING_HEART_RATE`): a JSON list
  `[{"value": 52.0, "calendarDate": "2026-02-16"}]` per row → `rhr_bpm`.
- `sleep_score.csv` (`overall`, `deepPercentage`, `remPercentage`): Python-repr dicts
  (`{'value': 21, ...}`, parsed with `ast.literal_eval`) → `deep_pct`, `rem_pct`. The sleep
  score (`overall`) is not a recovery score and is not kept.
- `daily_summaries.csv` (`userDailySummaryId`, `restingHeartRate`, `sleepingSeconds`):
  `sleepingSeconds` / 60 → `sleep_min` (0 = not recorded), and `restingHeartRate` where
  resting_heart_rate.csv has no value (a `repair`-free fallback: the same Garmin number).
- `strava_activities.csv` (Strava API activities the same script pulls: `start_date_local`,
  `moving_time_s`, `average_heartrate`, `max_heartrate`, `type`): load from the mean heart rate
  (`_activities.activity_days`). Strava's API writes the local time with a `Z`; the date is
  taken as written. A day the watch was worn (HRV or resting HR) inside the activity log's span
  with no activity is a rest day.
- `stress.csv`, `body_composition.csv`: stress, body battery and weight have no canonical
  column; the files are recognised and skipped with an `info` note (not "ignored" as unknown).

Zero is Garmin's "no value" for heart rate and sleep: it becomes NaN. Dates must be ISO, as the
API writes them (a file re-saved in another locale is an error naming it).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.loaders._activities import activity_days, rest_spans
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_local_date,
    to_number,
)
from physiology_model.data.loaders.intervals_icu import require_iso
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SECONDS_PER_MINUTE = 60.0
REST_GAP_DAYS = 14
RHR_METRIC = "allMetrics_metricsMap_WELLNESS_RESTING_HEART_RATE"

SIGNATURES: dict[str, tuple[str, ...]] = {
    "hrv": ("hrvSummary_lastNightAvg", "hrvSummary_calendarDate"),
    "rhr": (RHR_METRIC,),
    "sleep_score": ("overall", "deepPercentage", "remPercentage", "date"),
    "daily": ("userDailySummaryId", "restingHeartRate", "sleepingSeconds", "date"),
    "strava": ("start_date_local", "moving_time_s", "average_heartrate", "max_heartrate",
               "type"),
    "stress": ("avgStressLevel", "stressValuesArray", "calendarDate"),
    "body": ("bmi", "weight", "bodyFat", "calendarDate"),
}


def kind_of(path: Path) -> str | None:
    if path.suffix.lower() != ".csv":
        return None
    header = header_of(path)
    return next((k for k, sig in SIGNATURES.items() if all(c in header for c in sig)), None)


def _literal(text: object, path: Path, column: str, row: int) -> object:
    """A JSON or Python-repr cell → value (never `eval`); None for an empty cell."""
    if text is None:
        return None
    try:
        return json.loads(str(text))
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(str(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError(path, f"column {column!r}, data row {row}: cannot read "
                                  f"{str(text)[:50]!r} as JSON or a Python literal") from None


def _value_of(cell: object, path: Path, column: str, row: int) -> float:
    """`{'value': 21, ...}` → 21.0; missing → NaN."""
    parsed = _literal(cell, path, column, row)
    if parsed is None:
        return np.nan
    if not isinstance(parsed, dict):
        raise DataError(path, f"column {column!r}, data row {row}: expected a dict with a "
                              f"'value', found {str(cell)[:50]!r}")
    v = parsed.get("value")
    if v is None:
        return np.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DataError(path, f"column {column!r}, data row {row}: value {v!r} is not a number")
    return float(v)


def read_hrv(path: Path, log: NoteLog) -> pd.DataFrame:
    raw = read_csv(path, log)
    require_iso(raw, "hrvSummary_calendarDate", path)
    hrv = to_number(raw, "hrvSummary_lastNightAvg", path)
    return pd.DataFrame({"date": to_local_date(raw, "hrvSummary_calendarDate", path, log),
                         "hrv_rmssd_ms": hrv.where(hrv > 0)})  # ms, RMSSD


def read_rhr(path: Path, log: NoteLog) -> pd.DataFrame:
    raw = read_csv(path, log)
    rows = []
    for i, cell in enumerate(raw[RHR_METRIC]):
        parsed = _literal(cell, path, RHR_METRIC, i + 1) or []
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise DataError(path, f"column {RHR_METRIC!r}, data row {i + 1}: expected a list")
        for item in parsed:
            if not isinstance(item, dict) or "calendarDate" not in item:
                raise DataError(path, f"column {RHR_METRIC!r}, data row {i + 1}: an entry has "
                                      f"no calendarDate")
            v = item.get("value")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise DataError(path, f"column {RHR_METRIC!r}, data row {i + 1}: value {v!r} "
                                      f"is not a number")
            rows.append({"date": item["calendarDate"],
                         "rhr_bpm": float(v) if v else np.nan})  # 0 = no value
    frame = pd.DataFrame(rows, columns=["date", "rhr_bpm"])
    require_iso(frame, "date", path)
    frame["date"] = to_local_date(frame, "date", path, log)
    return frame


def read_sleep_score(path: Path, log: NoteLog) -> pd.DataFrame:
    raw = read_csv(path, log)
    require_iso(raw, "date", path)
    out = {"date": to_local_date(raw, "date", path, log)}
    for col, name in (("deepPercentage", "deep_pct"), ("remPercentage", "rem_pct")):
        out[name] = [_value_of(c, path, col, i + 1) for i, c in enumerate(raw[col])]
    return pd.DataFrame(out)


def read_daily(path: Path, log: NoteLog) -> pd.DataFrame:
    raw = read_csv(path, log)
    require_iso(raw, "date", path)
    rhr = to_number(raw, "restingHeartRate", path)
    sleep_s = to_number(raw, "sleepingSeconds", path)
    return pd.DataFrame({"date": to_local_date(raw, "date", path, log),
                         "_rhr_daily": rhr.where(rhr > 0),
                         "sleep_min": sleep_s.where(sleep_s > 0) / SECONDS_PER_MINUTE})


def read_strava_api(path: Path, log: NoteLog) -> pd.DataFrame:
    """Strava API activities → the `_activities` frame (local start as written)."""
    raw = read_csv(path, log)
    require_columns(raw, list(SIGNATURES["strava"]), path)
    start = pd.to_datetime(raw["start_date_local"].astype("string")
                           .str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "", regex=True),
                           errors="coerce", format="mixed")
    bad = raw["start_date_local"].notna() & start.isna()
    if bad.any() or start.isna().any():
        first = int((bad | start.isna()).to_numpy().nonzero()[0][0])
        raise DataError(path, f"column 'start_date_local': {raw['start_date_local'].iloc[first]!r}"
                              f" in data row {first + 1} is not a date/time")
    avg, mx = to_number(raw, "average_heartrate", path), to_number(raw, "max_heartrate", path)
    return pd.DataFrame({
        "start": start,
        "type": raw["type"],
        "minutes": to_number(raw, "moving_time_s", path) / SECONDS_PER_MINUTE,  # s → min
        "avg_hr": avg.where(avg > 0),
        "max_hr": mx.where(mx > 0),
        "tss": np.nan,
    })


def merge_daily(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Outer-merge per-file daily frames on `date`; the first non-missing value wins."""
    if not frames:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
    merged = pd.concat(frames, ignore_index=True)
    return merged.groupby("date", sort=True, as_index=False).first()


class GarminConnectLoader:
    """Garmin Connect API CSV pulls (module doc)."""

    source = "garmin_connect"

    def claims(self, path: Path) -> bool:
        return kind_of(path) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0].parent if len(files) > 1 else files[0]
        readers = {"hrv": read_hrv, "rhr": read_rhr, "sleep_score": read_sleep_score,
                   "daily": read_daily}
        daily, acts = [], []
        for path in sorted(files, key=lambda p: p.name):
            kind = kind_of(path)
            if kind in readers:
                daily.append(readers[kind](path, log))
            elif kind == "strava":
                acts.append(read_strava_api(path, log))
            else:
                log.add(path, "info", f"Garmin Connect {kind} file: no canonical column, "
                                      f"not used")
        frame = merge_daily(daily)
        if "_rhr_daily" in frame.columns:
            if "rhr_bpm" not in frame.columns:
                frame["rhr_bpm"] = np.nan
            frame["rhr_bpm"] = frame["rhr_bpm"].fillna(frame.pop("_rhr_daily"))
        if acts:
            activities = pd.concat(acts, ignore_index=True)
            worn = frame.loc[frame.drop(columns="date").notna().any(axis=1), "date"]
            load = activity_days(activities, where, log,
                                 rest_spans=rest_spans(activities["start"], REST_GAP_DAYS),
                                 rest_days_only=pd.DatetimeIndex(worn))
            frame = frame.merge(load, on="date", how="outer", sort=True)
        frame = frame.reset_index(drop=True)
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame


LOADER = GarminConnectLoader()
