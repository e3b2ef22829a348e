"""intervals.icu wellness and activities CSVs → daily rows (source `intervals_icu`,
`user_id = f"intervals_icu-{folder}"`), one person per folder.

Two layouts of each file are read:

1. **The native CSV download** (Settings → Download wellness / activities): `wellness.csv` with
   `date, weight, restingHR, hrv, hrvSDNN, readiness, ..., sleepSecs, ...` and the athlete's own
   custom fields (`Ride_eftp`, ...); `activities.csv` with `id, start_date_local, name, type,
   moving_time, ..., icu_training_load, icu_eftp, hr_z1_secs..hr_z7_secs, ...`. Newest row
   first, UTF-8 with a BOM (both handled by `_io.read_csv`).
2. **An API dump** (`/api/v1/athlete/{id}/wellness` and `/activities` JSON written to CSV by
   pandas): the wellness date is in `id`, and list columns are Python-repr strings
   (`icu_hr_zone_times = "[1553, 920, 0, 0, 0]"`, parsed with `ast.literal_eval`, never `eval`).
   The activities file can have any name (one user's is `actividades.csv`); the header decides.

Wellness (the date is the day the values were recorded, i.e. the morning after the night):

- `hrv` is the night's **RMSSD** (ms) → `hrv_rmssd_ms`; `hrvSDNN` is **SDNN** (ms) →
  `hrv_sdnn_ms`. They are different statistics and never fill each other's column; how an
  athlete with SDNN only enters the world model is `_hrv.sdnn_stand_in`.
- `restingHR` (bpm) → `rhr_bpm`; `sleepSecs` (s) → `sleep_min`; `spO2` (%) → `spo2_pct`;
  `respiration` (breaths/min) → `resp_rate_rpm`; `readiness` (0-100, the device's readiness,
  e.g. Oura/WHOOP synced into intervals.icu) → `recovery_pct`, unless no value in the file
  exceeds 10: then it is a 0-10 score (u01's 6.0-9.5 are HRV4Training-style recovery points)
  that is not a percentage, and it is left out (an `info` note).
- `ctl`/`atl` are intervals.icu's own fitness/fatigue, computed on every day including days with
  no data: they are not measurements and are not kept (an all-empty day gives no row).

Activities → load (DESIGN §4, through `_sessions.daily_load_from_sessions`):

- minutes = `moving_time` (s) / 60; heart-rate zones: `hr_z1_secs`.. (native) or the
  `icu_hr_zone_times` list (API), seconds → minutes, the athlete's intervals.icu zones (5 to 7
  of them, LTHR-based by default) mapped onto Edwards zones by `map_hr_zones_to_edwards`;
- `icu_training_load` is intervals.icu's training load, a TSS (power, or HR/pace where there is
  no power) → `load.tss_to_trimp` when an activity has no HR zones;
- strength: a `type` such as `WeightTraining` (`load.is_strength_activity`).
- Dates must be ISO (`2026-03-05`, as intervals.icu writes them): a file re-saved by a
  spreadsheet in another locale (`05.03.2026`) is refused, since day and month cannot be told
  apart; a semicolon-delimited file with decimal commas is read as such (`_io.read_csv`).
- Rest days: an intervals.icu activity list is the athlete's synced record, but a 15-year
  download has long gaps (a season without a device). Days with no activity are rest days
  (load 0) inside each stretch of the log whose activities are at most `REST_GAP_DAYS` apart;
  a longer gap is unknown load, not rest.

Performance tests (`performance_tests`, used by `periodize plan` when no `--tests` is given):
an activity is a test when intervals.icu marks it a race (`race` true) or its name says it is
one (`TEST_NAME`: "FTP test", "ramp test", "test", "TT", "time trial", "race"); its result is
the activity's eFTP (`icu_eftp`, W), the FTP its best efforts imply. Ordinary rides also carry
an eFTP, and the wellness `Ride_eftp` custom field carries a daily one, but those are estimates
from submaximal work that decay between hard efforts: they are not tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._activities import rest_spans
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_local_date,
    to_number,
)
from physiology_model.data.loaders._sessions import (
    SECONDS_PER_MINUTE,
    SESSION_COLUMNS,
    daily_load_from_sessions,
    map_hr_zones_to_edwards,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

WELLNESS_SIGNATURE = ("restingHR", "hrvSDNN", "sleepSecs")
"""Columns every intervals.icu wellness file has (native and API)."""
ACTIVITY_SIGNATURE = ("start_date_local", "type", "icu_training_load")
"""Columns every intervals.icu activities file has (native and API)."""

READINESS_0_10_MAX = 10.0
"""A `readiness` column whose values never exceed this is a 0-10 score, not a percentage."""

REST_GAP_DAYS = 14
"""Longest gap between two activities inside which the days without one are rest days."""

TEST_NAME = re.compile(r"\b(?:ftp\s*test|ramp\s*test|test|tt|time\s*trial|race)\b", re.IGNORECASE)
"""An activity name that says the activity was a test or a race (module doc)."""

WELLNESS_VALUES: dict[str, tuple[str, float]] = {
    # canonical column: (intervals.icu column, factor to the canonical unit)
    "hrv_rmssd_ms": ("hrv", 1.0),  # RMSSD, ms
    "hrv_sdnn_ms": ("hrvSDNN", 1.0),  # SDNN, ms
    "rhr_bpm": ("restingHR", 1.0),
    "sleep_min": ("sleepSecs", 1.0 / SECONDS_PER_MINUTE),  # s → min
    "spo2_pct": ("spO2", 1.0),
    "resp_rate_rpm": ("respiration", 1.0),
    "recovery_pct": ("readiness", 1.0),
}


def kind_of(path: Path) -> str | None:
    """'wellness', 'activities' or None, from the header."""
    if path.suffix.lower() != ".csv":
        return None
    header = header_of(path)
    if all(c in header for c in WELLNESS_SIGNATURE) and ("date" in header or "id" in header):
        return "wellness"
    if all(c in header for c in ACTIVITY_SIGNATURE) and ("moving_time" in header):
        return "activities"
    return None


_ISO_DAY = r"^\d{4}-\d{2}-\d{2}"


def require_iso(raw: pd.DataFrame, column: str, path: Path) -> None:
    """intervals.icu writes ISO dates; anything else (`05.03.2026`, `3/5/2026`) is a file re-saved
    in another locale, whose day/month order cannot be told: one `DataError`."""
    text = raw[column].astype("string")
    bad = text.notna() & ~text.str.match(_ISO_DAY).fillna(False)
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(path, f"column {column!r}: {raw[column].iloc[first]!r} in data row "
                              f"{first + 1} is not an ISO date (YYYY-MM-DD) as intervals.icu "
                              f"writes it; was the file re-saved in another locale?")


def read_wellness(path: Path, log: NoteLog) -> pd.DataFrame:
    """A wellness file (native or API) → daily rows in canonical columns."""
    raw = read_csv(path, log)
    date_col = "date" if "date" in raw.columns else "id"
    require_columns(raw, [date_col, *WELLNESS_SIGNATURE], path)
    require_iso(raw, date_col, path)
    frame = pd.DataFrame({"date": to_local_date(raw, date_col, path, log)})
    for name, (column, factor) in WELLNESS_VALUES.items():
        if column in raw.columns:
            frame[name] = to_number(raw, column, path) * factor
    if "recovery_pct" in frame and frame["recovery_pct"].notna().any() and (
            frame["recovery_pct"].max() <= READINESS_0_10_MAX):
        log.add(path, "info", "readiness is on a 0-10 scale (e.g. HRV4Training recovery points), "
                              "not a 0-100 recovery score: not used",
                int(frame["recovery_pct"].notna().sum()))
        frame["recovery_pct"] = np.nan
    zero_rhr = frame["rhr_bpm"] == 0
    if zero_rhr.any():
        log.add(path, "repair", "restingHR = 0 read as not measured", int(zero_rhr.sum()))
        frame.loc[zero_rhr, "rhr_bpm"] = np.nan
    if "hrv_rmssd_ms" in frame and "hrv_sdnn_ms" in frame:
        only_sdnn = int((frame["hrv_rmssd_ms"].isna() & frame["hrv_sdnn_ms"].notna()).sum())
        if only_sdnn:
            log.add(path, "info", "days with SDNN (hrvSDNN) but no RMSSD (hrv): kept as "
                                  "hrv_sdnn_ms, not as RMSSD", only_sdnn)
    return frame


def _zone_list(text: object, path: Path, row: int) -> list[float] | None:
    """An API `icu_hr_zone_times` cell (`"[1553, 920, 0, 0, 0]"`) → seconds per zone."""
    if text is None:
        return None
    try:
        value = ast.literal_eval(str(text))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataError(path, f"data row {row}: icu_hr_zone_times {str(text)[:40]!r} is not a "
                              f"list of seconds") from None
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise DataError(path, f"data row {row}: icu_hr_zone_times {str(text)[:40]!r} is not a "
                              f"list of seconds")
    return [float(v) for v in value]


def _zone_seconds(raw: pd.DataFrame, path: Path) -> np.ndarray:
    """(n, k) seconds in the athlete's HR zones; rows with no HR zone data are all NaN."""
    native = [c for c in (f"hr_z{i}_secs" for i in range(1, 11)) if c in raw.columns]
    if native:
        z = np.column_stack([to_number(raw, c, path).to_numpy() for c in native])
        used = np.flatnonzero(np.any(np.isfinite(z) & (z > 0), axis=0))
        k = max(int(used.max()) + 1 if used.size else 0, 5)
        return z[:, :k]
    if "icu_hr_zone_times" in raw.columns:
        lists = [_zone_list(t, path, i + 1) for i, t in enumerate(raw["icu_hr_zone_times"])]
        k = max([len(z) for z in lists if z] + [5])
        out = np.full((len(raw), k), np.nan)
        for i, z in enumerate(lists):
            if z:
                out[i, :len(z)] = z
        return out
    return np.full((len(raw), 5), np.nan)


def read_activities(path: Path, log: NoteLog) -> pd.DataFrame:
    """An activities file (native or API) → sessions (`_sessions.SESSION_COLUMNS`), plus
    `name`, `race` and `eftp` for `performance_tests`."""
    raw = read_csv(path, log)
    require_columns(raw, [*ACTIVITY_SIGNATURE, "moving_time"], path)
    require_iso(raw, "start_date_local", path)
    start = to_local_date(raw, "start_date_local", path, log)
    seconds = _zone_seconds(raw, path)
    no_hr = np.all(~np.isfinite(seconds) | (seconds == 0), axis=1)
    seconds[no_hr] = np.nan  # all zones 0: the activity had no heart rate, not zero minutes
    zones = map_hr_zones_to_edwards(seconds / SECONDS_PER_MINUTE, path)
    tss = to_number(raw, "icu_training_load", path)
    sessions = pd.DataFrame({
        "date": start,
        "minutes": to_number(raw, "moving_time", path) / SECONDS_PER_MINUTE,  # s → min
        **{z: zones[:, i] for i, z in enumerate(ZONE_COLUMNS)},
        "tss": tss,
        "rpe_cr10": np.nan,
        "strength": [is_strength_activity(t) for t in raw["type"]],
    })[list(SESSION_COLUMNS)]
    sessions["name"] = raw["name"] if "name" in raw.columns else None
    race = raw["race"].astype("string").str.lower() if "race" in raw.columns else None
    sessions["race"] = (race == "true").fillna(False).to_numpy() if race is not None else False
    sessions["eftp"] = (to_number(raw, "icu_eftp", path) if "icu_eftp" in raw.columns
                        else np.nan)
    return sessions.sort_values("date", kind="stable").reset_index(drop=True)


def performance_tests_from_sessions(sessions: pd.DataFrame) -> pd.Series:
    """The tests among the activities (module doc): eFTP (W) by day, the best of a day."""
    names = sessions["name"].astype("string").fillna("")
    is_test = (sessions["race"].astype(bool) | names.str.contains(TEST_NAME)).to_numpy()
    found = sessions.loc[is_test & sessions["eftp"].gt(0).to_numpy(), ["date", "eftp"]]
    return found.groupby("date")["eftp"].max().sort_index()


class IntervalsIcuLoader:
    """intervals.icu wellness + activities, native CSV download or API dump (module doc)."""

    source = "intervals_icu"

    def claims(self, path: Path) -> bool:
        return kind_of(path) is not None

    def _read(self, files: list[Path], log: NoteLog) -> tuple[list, list]:
        wellness, activities = [], []
        for path in sorted(files, key=lambda p: p.name):
            if kind_of(path) == "wellness":
                wellness.append(read_wellness(path, log))
            else:
                activities.append((path, read_activities(path, log)))
        return wellness, activities

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0].parent if len(files) > 1 else files[0]
        wellness, activities = self._read(files, log)
        daily = (pd.concat(wellness, ignore_index=True) if wellness
                 else pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")}))
        dup = daily.duplicated("date")
        if dup.any():
            log.add(where, "repair", "wellness days listed twice: the first kept", int(dup.sum()))
            daily = daily[~dup]
        values = daily.drop(columns="date")
        empty = values.isna().all(axis=1)
        if empty.any():
            log.add(where, "info", "wellness days with no measured value (intervals.icu lists "
                                   "every day) give no row", int(empty.sum()))
            daily = daily[~empty]
        frame = daily
        if activities:
            sessions = pd.concat([s for _, s in activities], ignore_index=True)
            spans = rest_spans(sessions["date"], REST_GAP_DAYS)
            load = daily_load_from_sessions(sessions[list(SESSION_COLUMNS)],
                                            rest_day_spans=spans, path=where, log=log)
            if len(spans) > 1:
                log.add(where, "info", f"the activity log has {len(spans) - 1} gaps of more than "
                                       f"{REST_GAP_DAYS} days: load there is unknown, not rest",
                        len(spans) - 1)
            frame = daily.merge(load, on="date", how="outer", sort=True)
        frame = frame.reset_index(drop=True)
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame

    def performance_tests(self, files: list[Path], user_hint: str,
                          log: NoteLog) -> dict[str, pd.Series]:
        """{user_id: test results (eFTP, W) by day} from the folder's activity files."""
        _, activities = self._read([f for f in files if kind_of(f) == "activities"], log)
        if not activities:
            return {}
        sessions = pd.concat([s for _, s in activities], ignore_index=True)
        tests = performance_tests_from_sessions(sessions)
        return {f"{self.source}-{user_hint}": tests} if len(tests) else {}


LOADER = IntervalsIcuLoader()
