"""WHOOP data pulled through an API (not the app's "Export data" zip; see `whoop.py` for that).

Three layouts are recognised, each file by its name and header (`_role_of`):

* **v1 tables** (the internal WHOOP API v1, e.g. data/real/whoop_api/a01): `cycles.csv`
  (`during`, `days`, `scaled_strain`, `data_state`, `timezone_offset`), `recovery.csv`
  (`recovery_score`, `resting_heart_rate`, `hrv_rmssd` **in seconds**, `skin_temp_celsius`,
  `spo2`, `sleep_id`, `cycle_id`), `sleeps.csv` (durations in ms, `is_nap`,
  `respiratory_rate`), `workouts.csv` (`zone_durations` = list of ms in zones 0-5, `sport_id`)
  and `sports.csv` (`id`, `name`). `during` holds a half-open UTC range written as a string,
  `['2022-11-06T08:52:46.297Z','2022-11-07T01:21:53.277Z')` (an open upper bound is written
  `['…',)`); `timezone_offset` is the local offset of that record, `-0500`.
* **dump** (a script's flattening of the same API, e.g. a02): `sleeps.csv` with
  `time_lower_bound`/`time_upper_bound` (UTC), `is_nap` and ms durations; a workouts file
  (`workouts2.csv` there) with `time_hr_zone_0..5` in ms and `sport_id`; a headerless
  `sports.csv` of `id, name` lines. There is no recovery/HRV table and no day strain.
* **daily summary** (a spreadsheet built from the API v2, e.g. a03): `daily_summary.csv`
  (`recovery_score`, `resting_hr`, `hrv_rmssd_ms`, `recovery_spo2_%`, `recovery_skin_temp_c`,
  `sleep_eff_%`, `sleep_hours`, `sleep_start_local`/`sleep_end_local`, `respiratory_rate`,
  `strain`, `kilojoule`) and `workouts_daily.csv` (`sport`, `strain`, `energy_kj`,
  `duration_min`, `start_local`, `zone_zero_min` … `zone_five_min`).

Mapping (DESIGN §3): one row per local wake date, `user_id = f"whoop_api-{folder}"`.

* Physiology comes from the main (non-nap) sleep that ended that morning: the local date of the
  sleep's end is the row's date. In v1, recovery/HRV/RHR/skin temperature/SpO2 belong to the
  sleep a recovery references (`sleep_id`; via `cycle_id` → the cycle's day when that sleep is
  not in the folder). `hrv_rmssd` s × 1000 → `hrv_rmssd_ms`; ms durations / 60 000 → minutes;
  `sleep_min` = time asleep (light + deep + REM), `sleep_efficiency_pct` = asleep / in bed
  (computed, since v1's own `in_sleep_efficiency` exceeds 1 on some nights), `rem_pct` and
  `deep_pct` = share of time asleep. Skin temperature is absolute (°C) → `skin_temp_c`.
* `strain`: the WHOOP day strain on its 0-21 scale. In v1 that is `scaled_strain` (not
  `day_strain`, which is the raw 0-0.03 quantity); the cycle's day is the lower bound of its
  `days` range, which is the local date the cycle's sleep ended (checked on every cycle of a01).
  A cycle that is not `complete` is still accruing strain: its strain is left missing. The dump
  layout has no day strain (a workout's `cumulative_strain` counts only workouts so far), so
  `strain` stays missing there.
* Load: minutes in HR zones 1-5 per local day of the workout's start → `z1_min`..`z5_min`;
  `load_trimp` is derived centrally from them. WHOOP's zone 0 (below 50 % HRmax, i.e. below
  Edwards zone 1) is not training load and is ignored. `strength_min` = duration of workouts
  whose sport name `is_strength_activity` (v1/dump: `sport_id` looked up in `sports.csv`, else
  v1's own `name` column; when no sport name is available at all, `strength_min` stays missing).
  Activities WHOOP does not score (no zone data; in a03 meditation, sauna, cold shower, ice bath)
  add no zone minutes.
* Zero days: WHOOP detects workouts automatically while the strap is worn, so a day inside the
  span of a workouts table (first to last workout day) that has a row from the strap (a sleep, a
  recovery or a cycle) and no workout is a measured zero: its zone and strength minutes are 0.
  Days outside that span keep NaN, and no row is made for a day with no record at all.

Timezones: v1 timestamps are UTC with a per-record `timezone_offset`; they are converted to local
time before the date is taken. The dump gives UTC timestamps and no offset: when its timestamps
carry a non-zero offset that offset is used, otherwise one fixed whole-hour offset is inferred
from the sleeps, assuming the average midpoint of the main sleeps (a circular mean of clock
times) falls at 04:00 local time (mid-sleep of the general population clusters around 04:00,
earlier on work days and later on free days: Roenneberg et al. 2007, Sleep Med Rev 11:429).
Daylight saving time is ignored. For a02 this gives UTC-6 (North America), and every offset from
UTC-5 to UTC-8 gives the same dates there (the nights end long after midnight UTC, the evening
workouts start before it). Without sleeps the dump is read as UTC. The daily summary's times are
local already.

Quirks of the daily summary (a03, mirrored from a live Google Sheet):
* its `date` is the sleep's start date on nights that began before midnight in Jul-Aug 2025
  (four nights, each followed by a row without physiology) and the wake date afterwards; the
  physiology is put on the local date of `sleep_end_local`, and `strain` stays on `date`;
* until late Aug 2025 its `strain`/`kilojoule` were back-filled from the workouts (the day's
  largest workout strain and the sum of workout energy, not a day's strain): a day whose strain
  equals its largest workout strain (±0.1) and whose energy is within 5 % of its workouts' sum
  gets no `strain` (repair note);
* the newest day is still in progress when the sheet is mirrored: its `strain` is left missing.

Duplicates, each resolved deterministically and noted (`repair`): several main sleeps ending on
one local date → the one a recovery references, then the longest time asleep, then the latest
end; several cycles on one date → `complete` first, then the longest cycle; the same record id
in two files of one role → the first file (sorted by name) wins.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    read_text,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SOURCE = "whoop_api"

MS_PER_MINUTE = 60_000.0
"""Milliseconds in a minute (WHOOP API durations are in ms)."""
MS_PER_SECOND = 1_000.0
"""Milliseconds in a second (WHOOP API v1 `hrv_rmssd` is in seconds)."""
MINUTES_PER_HOUR = 60.0
PERCENT_PER_FRACTION = 100.0

TYPICAL_MID_SLEEP_LOCAL_H = 4.0
"""Local clock hour of the median main sleep's midpoint, used to infer an unknown UTC offset
(Roenneberg et al. 2007, Sleep Med Rev 11:429)."""

BACKFILL_STRAIN_TOLERANCE = 0.1
"""A summary strain this close to the day's largest workout strain (the sheet rounds to 0.1)…"""
BACKFILL_ENERGY_TOLERANCE = 0.05
"""…and a summary energy within this share of the day's workout energy mark a back-filled day."""

PHYSIOLOGY_COLUMNS: tuple[str, ...] = (
    "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min", "sleep_efficiency_pct", "rem_pct",
    "deep_pct", "resp_rate_rpm", "skin_temp_c", "spo2_pct",
)
RECOVERY_COLUMNS: tuple[str, ...] = (
    "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "skin_temp_c", "spo2_pct",
)
SLEEP_COLUMNS: tuple[str, ...] = (
    "sleep_min", "sleep_efficiency_pct", "rem_pct", "deep_pct", "resp_rate_rpm",
)

# Columns each role's header must contain. Checked in this order; the first match wins.
_V1_CYCLES = ("during", "timezone_offset", "days", "scaled_strain", "data_state")
_V1_RECOVERY = ("during", "sleep_id", "cycle_id", "recovery_score", "resting_heart_rate",
                "hrv_rmssd")
_V1_SLEEPS = ("during", "timezone_offset", "activity_id", "is_nap", "quality_duration",
              "time_in_bed", "light_sleep_duration", "slow_wave_sleep_duration",
              "rem_sleep_duration")
_V1_WORKOUTS = ("during", "timezone_offset", "zone_durations", "sport_id")
_V1_SPORTS = ("id", "name", "category")
_DUMP_SLEEPS = ("sleep_id", "time_lower_bound", "time_upper_bound", "is_nap", "quality_duration",
                "in_bed_duration", "light_sleep_duration", "sws_duration", "rem_sleep_duration")
_DUMP_ZONES = tuple(f"time_hr_zone_{i}" for i in range(1, 6))
_DUMP_WORKOUTS = ("workout_id", "time_lower_bound", "time_upper_bound", "sport_id") + _DUMP_ZONES
_SUMMARY = ("date", "recovery_score", "resting_hr", "hrv_rmssd_ms", "sleep_start_local",
            "sleep_end_local", "sleep_hours", "strain")
_SUMMARY_ZONES = ("zone_one_min", "zone_two_min", "zone_three_min", "zone_four_min",
                  "zone_five_min")
_SUMMARY_WORKOUTS = ("date", "sport", "start_local", "duration_min") + _SUMMARY_ZONES

_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("v1_cycles", _V1_CYCLES),
    ("v1_recovery", _V1_RECOVERY),
    ("v1_sleeps", _V1_SLEEPS),
    ("v1_workouts", _V1_WORKOUTS),
    ("dump_sleeps", _DUMP_SLEEPS),
    ("dump_workouts", _DUMP_WORKOUTS),
    ("summary", _SUMMARY),
    ("summary_workouts", _SUMMARY_WORKOUTS),
)

_INTEGER = re.compile(r"^-?\d+$")
_RANGE = re.compile(r"^[\[(]\s*'?([^',\])]*)'?\s*,\s*'?([^',\])]*)'?\s*[\])]$")
_OFFSET = re.compile(r"^(?:Z|UTC|([+-])(\d{2}):?(\d{2}))$")
_ISO_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _role_of(path: Path) -> str | None:
    """Which table of which layout `path` is, from its name and header; None if not ours."""
    if path.suffix.lower() != ".csv":
        return None
    header = header_of(path)
    columns = set(header)
    for role, required in _ROLES:
        if columns.issuperset(required):
            return role
    if "sport" in path.stem.lower():
        if columns.issuperset(_V1_SPORTS):
            return "v1_sports"
        # The dump's lookup has no header: every line is `id, name`.
        if len(header) == 2 and _INTEGER.match(header[0]) and header[1]:
            return "dump_sports"
    return None


# ---------------------------------------------------------------------------------------------
# small parsers (each raises DataError naming the file)
# ---------------------------------------------------------------------------------------------

def _parse_bool(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """`True`/`False` text (any case) as booleans; anything else is a DataError."""
    text = frame[column].astype("string").str.strip().str.lower()
    values = text.map({"true": True, "false": False, "1": True, "0": False})
    bad = values.isna()
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not true/false "
                              f"(e.g. {first!r})")
    return values.astype(bool)


def _parse_range(frame: pd.DataFrame, column: str, path: Path) -> tuple[pd.Series, pd.Series]:
    """A column of half-open UTC ranges `['lower','upper')` → (lower, upper) as tz-naive UTC.

    An open upper bound (`['lower',)`, a record still in progress) gives NaT.
    """
    parts = frame[column].astype("string").str.strip().str.extract(_RANGE)
    bad = parts[0].isna() | (parts[0] == "")
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not time ranges "
                              f"like ['start','end') (e.g. {first!r})")
    bounds = pd.DataFrame({
        f"{column} (start)": parts[0],
        f"{column} (end)": parts[1].where(parts[1] != "", None),
    })
    lower = to_datetime(bounds, f"{column} (start)", path, utc=True).dt.tz_localize(None)
    upper = to_datetime(bounds, f"{column} (end)", path, utc=True).dt.tz_localize(None)
    return lower, upper


def _parse_day_range(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """The lower bound of a `['YYYY-MM-DD','YYYY-MM-DD')` day range, as a date."""
    parts = frame[column].astype("string").str.strip().str.extract(_RANGE)
    days = pd.DataFrame({f"{column} (first day)": parts[0].where(parts[0] != "", None)})
    values = to_datetime(days, f"{column} (first day)", path, fmt="%Y-%m-%d")
    if values.isna().any():
        first = frame.loc[values.isna(), column].iloc[0]
        raise DataError(path, f"column {column!r}: {int(values.isna().sum())} values are not "
                              f"day ranges like ['2022-11-06','2022-11-07') (e.g. {first!r})")
    return values


def _parse_offset(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """UTC offsets written `-0500`, `+05:30` or `Z` → Timedelta (local = UTC + offset)."""
    text = frame[column].astype("string").str.strip()
    parts = text.str.extract(_OFFSET)
    bad = text.isna() | ~text.str.match(_OFFSET).fillna(False)
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not UTC offsets "
                              f"like -0500 (e.g. {first!r})")
    sign = parts[0].map({"+": 1.0, "-": -1.0}).fillna(0.0)
    minutes = sign * (parts[1].fillna("0").astype(int) * 60 + parts[2].fillna("0").astype(int))
    return pd.to_timedelta(minutes.astype(float), unit="min")


def _ms_to_minutes(ms: pd.Series) -> pd.Series:
    """Milliseconds → minutes."""
    return ms / MS_PER_MINUTE


def _seconds_to_ms(seconds: pd.Series) -> pd.Series:
    """Seconds → milliseconds (WHOOP API v1 reports RMSSD in seconds)."""
    return seconds * MS_PER_SECOND


def _share_pct(part: pd.Series, whole: pd.Series) -> pd.Series:
    """`part / whole` as a percentage; NaN where `whole` is 0 or missing."""
    return part / whole.where(whole > 0) * PERCENT_PER_FRACTION


def _local_date(utc: pd.Series, offset: pd.Series | pd.Timedelta) -> pd.Series:
    """Local calendar date of tz-naive UTC instants shifted by their UTC offset."""
    return (utc + offset).dt.normalize()


# ---------------------------------------------------------------------------------------------
# per-layout readers → event tables
# ---------------------------------------------------------------------------------------------
# nights:   date, end, asleep_min, has_recovery, + any of PHYSIOLOGY_COLUMNS
# strains:  date, strain, complete, hours
# workouts: workout_id, date, z1_min..z5_min (NaN = not scored), duration_min, sport,
#           energy_kj, workout_strain


@dataclass
class _Events:
    """What one folder's files say, before it is turned into daily rows."""

    nights: list[pd.DataFrame] = field(default_factory=list)
    strains: list[pd.DataFrame] = field(default_factory=list)
    workouts: list[pd.DataFrame] = field(default_factory=list)
    sport_names_known: bool = False


def _sleep_metrics(asleep_ms: pd.Series, in_bed_ms: pd.Series, rem_ms: pd.Series,
                   deep_ms: pd.Series, resp_rate: pd.Series) -> pd.DataFrame:
    """Canonical sleep columns from WHOOP's ms durations (asleep = light + deep + REM)."""
    return pd.DataFrame({
        "sleep_min": _ms_to_minutes(asleep_ms),
        "sleep_efficiency_pct": _share_pct(asleep_ms, in_bed_ms),
        "rem_pct": _share_pct(rem_ms, asleep_ms),
        "deep_pct": _share_pct(deep_ms, asleep_ms),
        "resp_rate_rpm": resp_rate,
    })


def _read_v1_sleeps(frame: pd.DataFrame, path: Path, log: NoteLog) -> pd.DataFrame:
    """Every sleep (naps included) with its local wake date and sleep metrics."""
    num = {c: to_number(frame, c, path) for c in (
        "quality_duration", "time_in_bed", "slow_wave_sleep_duration", "rem_sleep_duration")}
    resp = (to_number(frame, "respiratory_rate", path) if "respiratory_rate" in frame.columns
            else pd.Series(np.nan, index=frame.index))
    _, end = _parse_range(frame, "during", path)
    offset = _parse_offset(frame, "timezone_offset", path)
    sleeps = _sleep_metrics(num["quality_duration"], num["time_in_bed"],
                            num["rem_sleep_duration"], num["slow_wave_sleep_duration"], resp)
    sleeps["sleep_id"] = frame["activity_id"].astype("string")
    sleeps["cycle_id"] = (frame["cycle_id"].astype("string") if "cycle_id" in frame.columns
                          else pd.Series(pd.NA, index=frame.index, dtype="string"))
    sleeps["is_nap"] = _parse_bool(frame, "is_nap", path)
    sleeps["end"] = end
    sleeps["date"] = _local_date(end, offset)
    sleeps["asleep_min"] = sleeps["sleep_min"]
    open_ended = sleeps["end"].isna()
    if open_ended.any():
        log.add(path, "info", "sleeps still in progress (no end time) skipped",
                int(open_ended.sum()))
    return sleeps[~open_ended].reset_index(drop=True)


def _read_v1_recovery(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Recovery scores with their sleep/cycle ids; `hrv_rmssd` converted from s to ms."""
    out = pd.DataFrame({
        "sleep_id": frame["sleep_id"].astype("string"),
        "cycle_id": frame["cycle_id"].astype("string"),
        # WHOOP API v1 reports RMSSD in seconds (0.037 = 37 ms).
        "hrv_rmssd_ms": _seconds_to_ms(to_number(frame, "hrv_rmssd", path)),
        "rhr_bpm": to_number(frame, "resting_heart_rate", path),
        "recovery_pct": to_number(frame, "recovery_score", path),
    })
    optional = {"skin_temp_celsius": "skin_temp_c", "spo2": "spo2_pct"}
    for raw, name in optional.items():
        out[name] = to_number(frame, raw, path) if raw in frame.columns else np.nan
    return out


def _read_v1_cycles(frame: pd.DataFrame, path: Path, log: NoteLog) -> pd.DataFrame:
    """Day strain (0-21 `scaled_strain`) per cycle, dated by the cycle's `days` range."""
    start, end = _parse_range(frame, "during", path)
    complete = frame["data_state"].astype("string").str.strip().str.lower() == "complete"
    strain = to_number(frame, "scaled_strain", path)
    pending = ~complete & strain.notna()
    if pending.any():
        log.add(path, "repair", "strain of cycles not yet complete (still accruing) left missing",
                int(pending.sum()))
    return pd.DataFrame({
        "cycle_id": frame["id"].astype("string") if "id" in frame.columns else pd.NA,
        "date": _parse_day_range(frame, "days", path),
        "strain": strain.where(complete),
        "complete": complete.to_numpy(),
        "hours": ((end - start).dt.total_seconds() / 3600.0).to_numpy(),
    })


def _read_v1_sports(frame: pd.DataFrame, path: Path) -> dict[int, str]:
    """sport_id → sport name from the v1 `sports.csv`."""
    ids = to_number(frame, "id", path)
    names = frame["name"].astype("string").str.strip()
    return {int(i): str(n) for i, n in zip(ids, names) if not pd.isna(i) and not pd.isna(n)}


def _read_dump_sports(path: Path, log: NoteLog) -> dict[int, str]:
    """sport_id → sport name from the dump's headerless `id, name` lines."""
    lookup: dict[int, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(read_text(path, log))), start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not _INTEGER.match(row[0].strip()):
            raise DataError(path, f"line {number}: expected 'sport_id, name', found {row!r}")
        lookup[int(row[0].strip())] = row[1].strip()
    return lookup


def _parse_zone_list(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """v1 `zone_durations` (`[z0, ..., z5]` in ms) → z1_min..z5_min (zone 0 is dropped)."""
    rows: list[list[float]] = []
    for number, value in enumerate(frame["zone_durations"], start=1):
        if value is None or pd.isna(value) or str(value).strip() in ("", "[]"):
            rows.append([np.nan] * 5)  # WHOOP gives no zones for activities it does not score
            continue
        cells = str(value).strip().strip("[]").split(",")
        try:
            ms = [float(c) for c in cells]
        except ValueError:
            raise DataError(path, f"column 'zone_durations': data row {number} is not a list "
                                  f"of numbers ({value!r})") from None
        if len(ms) != 6:
            raise DataError(path, f"column 'zone_durations': data row {number} has {len(ms)} "
                                  f"values, expected 6 (ms in zones 0-5): {value!r}")
        rows.append(ms[1:])  # zone 0 (below zone 1) is not training load
    zones_ms = pd.DataFrame(rows, columns=list(ZONE_COLUMNS), index=frame.index)
    return _ms_to_minutes(zones_ms)


def _read_v1_workouts(frame: pd.DataFrame, path: Path, sports: dict[int, str]) -> pd.DataFrame:
    """Workouts dated by the local day of their start, with zone minutes and sport name."""
    start, end = _parse_range(frame, "during", path)
    offset = _parse_offset(frame, "timezone_offset", path)
    sport_id = to_number(frame, "sport_id", path)
    sport = sport_id.map(lambda i: sports.get(int(i)) if not pd.isna(i) else None)
    if "name" in frame.columns:  # some v1 dumps join the sport name in already
        sport = sport.where(sport.notna(), frame["name"])
    out = _parse_zone_list(frame, path)
    out.insert(0, "date", _local_date(start, offset))
    out.insert(0, "workout_id", frame["activity_id"].astype("string")
               if "activity_id" in frame.columns else pd.Series(range(len(frame))).astype("string"))
    out["duration_min"] = (end - start).dt.total_seconds() / 60.0
    out["sport"] = sport.astype("object")
    out["energy_kj"] = np.nan
    out["workout_strain"] = np.nan
    return out


def _split_iso(frame: pd.DataFrame, column: str, path: Path) -> tuple[pd.Series, pd.Series]:
    """ISO timestamps → (tz-naive UTC, the offset written in the string as a Timedelta)."""
    text = frame[column].astype("string").str.strip()
    suffix = text.str.extract(_ISO_SUFFIX)[0].fillna("Z").str.replace(":", "", regex=False)
    offset = _parse_offset(pd.DataFrame({column: suffix}), column, path)
    utc = to_datetime(frame, column, path, utc=True).dt.tz_localize(None)
    return utc, offset


def _infer_offset(start_utc: pd.Series, end_utc: pd.Series) -> pd.Timedelta:
    """Whole-hour UTC offset that puts the mean main-sleep midpoint at 04:00 local time."""
    mid = start_utc + (end_utc - start_utc) / 2
    hours = mid.dt.hour + mid.dt.minute / 60.0
    # A circular mean, so that midpoints on both sides of midnight UTC average correctly.
    angle = hours / 24.0 * 2 * np.pi
    mean_h = (np.degrees(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) / 15.0) % 24.0
    offset_h = (TYPICAL_MID_SLEEP_LOCAL_H - mean_h + 12.0) % 24.0 - 12.0
    return pd.Timedelta(hours=float(np.round(offset_h)))


def _read_dump_sleeps(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.Series, bool]:
    """Dump sleeps with their UTC end; returns (sleeps, offset per row, offset was written)."""
    num = {c: to_number(frame, c, path) for c in (
        "quality_duration", "in_bed_duration", "sws_duration", "rem_sleep_duration")}
    resp = (to_number(frame, "respiratory_rate", path) if "respiratory_rate" in frame.columns
            else pd.Series(np.nan, index=frame.index))
    start, offset = _split_iso(frame, "time_lower_bound", path)
    end, _ = _split_iso(frame, "time_upper_bound", path)
    sleeps = _sleep_metrics(num["quality_duration"], num["in_bed_duration"],
                            num["rem_sleep_duration"], num["sws_duration"], resp)
    sleeps["sleep_id"] = frame["sleep_id"].astype("string")
    sleeps["is_nap"] = _parse_bool(frame, "is_nap", path)
    sleeps["start"] = start
    sleeps["end"] = end
    sleeps["asleep_min"] = sleeps["sleep_min"]
    written = bool((offset != pd.Timedelta(0)).any())
    return sleeps, offset, written


def _read_dump_workouts(frame: pd.DataFrame, path: Path, sports: dict[int, str],
                        offset: pd.Timedelta | None) -> pd.DataFrame:
    """Dump workouts (zones in ms) dated by the local day of their start."""
    start, written = _split_iso(frame, "time_lower_bound", path)
    end, _ = _split_iso(frame, "time_upper_bound", path)
    local_offset = written if bool((written != pd.Timedelta(0)).any()) or offset is None else offset
    zones = pd.DataFrame({z: _ms_to_minutes(to_number(frame, raw, path))
                          for z, raw in zip(ZONE_COLUMNS, _DUMP_ZONES)})
    sport_id = to_number(frame, "sport_id", path)
    zones.insert(0, "date", _local_date(start, local_offset))
    zones.insert(0, "workout_id", frame["workout_id"].astype("string"))
    zones["duration_min"] = (end - start).dt.total_seconds() / 60.0
    zones["sport"] = sport_id.map(lambda i: sports.get(int(i)) if not pd.isna(i) else None)
    zones["energy_kj"] = np.nan
    zones["workout_strain"] = np.nan
    return zones


def _read_summary_workouts(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Summary-layout workouts: zone minutes as given, dated by their local start."""
    zones = pd.DataFrame({z: to_number(frame, raw, path)
                          for z, raw in zip(ZONE_COLUMNS, _SUMMARY_ZONES)})
    start = to_datetime(frame, "start_local", path)
    zones.insert(0, "date", start.dt.normalize())
    ids = (frame["workout_id"].astype("string") if "workout_id" in frame.columns
           else pd.Series(pd.NA, index=frame.index, dtype="string"))
    zones.insert(0, "workout_id", ids)
    zones["duration_min"] = to_number(frame, "duration_min", path)
    zones["sport"] = frame["sport"].astype("object")
    zones["energy_kj"] = (to_number(frame, "energy_kj", path) if "energy_kj" in frame.columns
                          else np.nan)
    zones["workout_strain"] = (to_number(frame, "strain", path) if "strain" in frame.columns
                               else np.nan)
    return zones


def _read_summary(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily summary → (nights dated by the local wake date, strain by the row's `date`)."""
    date = to_datetime(frame, "date", path, fmt="%Y-%m-%d", required=True)
    wake = to_datetime(frame, "sleep_end_local", path).dt.normalize()
    optional = {"recovery_spo2_%": "spo2_pct", "recovery_skin_temp_c": "skin_temp_c",
                "sleep_eff_%": "sleep_efficiency_pct", "respiratory_rate": "resp_rate_rpm"}
    nights = pd.DataFrame({
        # The sheet's `date` is the sleep's start date on some early nights: use the wake date.
        "date": wake.where(wake.notna(), date),
        "end": to_datetime(frame, "sleep_end_local", path),
        "hrv_rmssd_ms": to_number(frame, "hrv_rmssd_ms", path),
        "rhr_bpm": to_number(frame, "resting_hr", path),
        "recovery_pct": to_number(frame, "recovery_score", path),
        # hours → minutes
        "sleep_min": to_number(frame, "sleep_hours", path) * MINUTES_PER_HOUR,
    })
    for raw, name in optional.items():
        nights[name] = to_number(frame, raw, path) if raw in frame.columns else np.nan
    nights["asleep_min"] = nights["sleep_min"]
    nights["has_recovery"] = nights["recovery_pct"].notna()
    strains = pd.DataFrame({
        "date": date,
        "strain": to_number(frame, "strain", path),
        "energy_kj": (to_number(frame, "kilojoule", path) if "kilojoule" in frame.columns
                      else np.nan),
        "complete": True,
        "hours": np.nan,
    })
    return nights, strains


# ---------------------------------------------------------------------------------------------
# combining
# ---------------------------------------------------------------------------------------------

def _keep_one_per_date(frame: pd.DataFrame, order: list[str], ascending: list[bool],
                       where: str | Path, log: NoteLog, what: str, rule: str) -> pd.DataFrame:
    """One row per date: sort by `order` within a date and keep the first (noted as a repair)."""
    ranked = frame.sort_values(["date", *order], ascending=[True, *ascending], kind="stable",
                               na_position="last")
    dup = ranked.duplicated("date", keep="first")
    if dup.any():
        log.add(where, "repair", f"{what} sharing a local date: kept {rule}", int(dup.sum()))
    return ranked[~dup].reset_index(drop=True)


def _drop_repeated_ids(frame: pd.DataFrame, column: str, where: str | Path, log: NoteLog,
                       what: str) -> pd.DataFrame:
    """The same record id twice (two files of one role): keep the first file's row."""
    ids = frame[column]
    dup = ids.notna() & ids.duplicated(keep="first")
    if dup.any():
        log.add(where, "repair", f"{what} with a repeated id dropped (first file kept)",
                int(dup.sum()))
    return frame[~dup].reset_index(drop=True)


def _v1_nights(sleeps: pd.DataFrame, recoveries: pd.DataFrame, cycles: pd.DataFrame,
               where: str | Path, path_recovery: Path | None) -> pd.DataFrame:
    """Nights from v1 tables: recoveries joined to their sleep, plus unscored main sleeps."""
    sleep_cols = ["sleep_id", "date", "end", "asleep_min", *SLEEP_COLUMNS]
    frames = []
    if len(recoveries):
        rec = recoveries.merge(sleeps[sleep_cols], on="sleep_id", how="left")
        if rec["date"].isna().any() and len(cycles):
            by_cycle = cycles.dropna(subset=["cycle_id"]).drop_duplicates("cycle_id")
            day = rec["cycle_id"].map(by_cycle.set_index("cycle_id")["date"])
            rec["date"] = rec["date"].where(rec["date"].notna(), day)
        if rec["date"].isna().any():
            n = int(rec["date"].isna().sum())
            raise DataError(path_recovery or where,
                            f"{n} recoveries reference a sleep_id/cycle_id found in no sleeps or "
                            f"cycles table of this folder, so their local date is unknown "
                            f"(put the export's sleeps.csv and cycles.csv next to it)")
        rec["has_recovery"] = True
        frames.append(rec)
    scored = set(recoveries["sleep_id"].dropna()) if len(recoveries) else set()
    main = sleeps[~sleeps["is_nap"] & ~sleeps["sleep_id"].isin(scored)]
    if len(main):
        frames.append(main[sleep_cols].assign(has_recovery=False))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _daily_workouts(workouts: pd.DataFrame, sport_names_known: bool) -> pd.DataFrame:
    """Zone and strength minutes per local day (unscored workouts add 0 zone minutes)."""
    zones = workouts[list(ZONE_COLUMNS)].fillna(0.0)
    strength = workouts["sport"].map(is_strength_activity).astype(bool)
    per_workout = zones.assign(
        date=workouts["date"],
        strength_min=workouts["duration_min"].where(strength, 0.0).fillna(0.0),
    )
    daily = per_workout.groupby("date", sort=True).sum()
    if not sport_names_known:
        daily["strength_min"] = np.nan
    return daily


def _blank_backfilled_strain(strains: pd.DataFrame, workouts: pd.DataFrame, where: Path,
                             log: NoteLog) -> pd.DataFrame:
    """Summary strain that is only the day's largest workout strain (back-filled) → missing."""
    if not len(workouts) or workouts["workout_strain"].isna().all():
        return strains
    per_day = workouts.groupby("date").agg(max_strain=("workout_strain", "max"),
                                           energy=("energy_kj", "sum"))
    joined = strains.join(per_day, on="date")
    same_strain = (joined["strain"] - joined["max_strain"]).abs() <= BACKFILL_STRAIN_TOLERANCE
    same_energy = ((joined["energy_kj"] - joined["energy"]).abs()
                   <= BACKFILL_ENERGY_TOLERANCE * joined["energy"])
    backfilled = same_strain & same_energy & joined["strain"].notna()
    if backfilled.any():
        first, last = joined.loc[backfilled, "date"].min(), joined.loc[backfilled, "date"].max()
        log.add(where, "repair",
                f"strain equal to the day's largest workout strain with energy equal to the "
                f"workouts' sum (back-filled from workouts, not a day strain; "
                f"{first:%Y-%m-%d} to {last:%Y-%m-%d}) left missing", int(backfilled.sum()))
    out = strains.copy()
    out.loc[backfilled.to_numpy(), "strain"] = np.nan
    return out


def _assemble(events: _Events, user_id: str, where: str | Path, log: NoteLog) -> pd.DataFrame:
    """Event tables → one row per local date."""
    parts: list[pd.DataFrame] = []
    frame_dates: set[pd.Timestamp] = set()

    if events.nights:
        nights = pd.concat(events.nights, ignore_index=True)
        for c in PHYSIOLOGY_COLUMNS:
            if c not in nights.columns:
                nights[c] = np.nan
        nights = nights[nights[list(PHYSIOLOGY_COLUMNS)].notna().any(axis=1)]
        nights = _keep_one_per_date(
            nights, ["has_recovery", "asleep_min", "end"], [False, False, False], where, log,
            "main sleeps", "the one WHOOP scored, then the longest time asleep")
        parts.append(nights.set_index("date")[list(PHYSIOLOGY_COLUMNS)])
        frame_dates |= set(nights["date"])

    if events.strains:
        strains = pd.concat(events.strains, ignore_index=True)
        strains = strains[strains["strain"].notna()]
        strains = _keep_one_per_date(
            strains, ["complete", "hours"], [False, False], where, log,
            "cycles", "the complete one, then the longest")
        parts.append(strains.set_index("date")[["strain"]])
        frame_dates |= set(strains["date"])

    daily_load = None
    if events.workouts:
        workouts = pd.concat(events.workouts, ignore_index=True)
        workouts = _drop_repeated_ids(workouts, "workout_id", where, log, "workouts")
        unscored = workouts[list(ZONE_COLUMNS)].isna().all(axis=1)
        if unscored.any():
            names = ", ".join(sorted({str(s) for s in workouts.loc[unscored, "sport"].dropna()}))
            log.add(where, "info", f"workouts without HR-zone data (not scored by WHOOP: "
                                   f"{names or 'unnamed'}) add no zone minutes",
                    int(unscored.sum()))
        if not events.sport_names_known:
            log.add(where, "info", "no sport names (no sports.csv): strength_min left missing")
        daily_load = _daily_workouts(workouts, events.sport_names_known)
        parts.append(daily_load)

    if not parts:
        return pd.DataFrame(columns=["user_id", "date"])
    days = pd.concat(parts, axis=1, sort=True)
    days.index.name = "date"

    if daily_load is not None:
        # WHOOP detects workouts while worn: a worn day in the workouts' span without one is a 0.
        first, last = daily_load.index.min(), daily_load.index.max()
        in_span = (days.index >= first) & (days.index <= last)
        worn = days.index.isin(list(frame_dates))
        no_workout = ~days.index.isin(daily_load.index)
        zero = in_span & worn & no_workout
        load_cols = [*ZONE_COLUMNS] + (["strength_min"] if events.sport_names_known else [])
        days.loc[zero, load_cols] = 0.0
        if zero.any():
            log.add(where, "info", "worn days without a workout inside the workouts' span "
                                   "given 0 zone minutes", int(zero.sum()))

    days = days.reset_index()
    days.insert(0, "user_id", user_id)
    return days


_Tables = dict[str, list[tuple[Path, pd.DataFrame]]]


def _read_tables(files: list[Path], log: NoteLog) -> _Tables:
    """Each claimed file under its role; the headerless dump sports lookup is read later."""
    tables: _Tables = {}
    for path in sorted(files):
        role = _role_of(path)
        if role is None:
            raise DataError(path, "not a WHOOP API table (header not recognised)")
        if role == "dump_sports":
            frame = pd.DataFrame()
        else:
            frame = read_csv(path, log)
            require_columns(frame, list(dict(_ROLES).get(role, _V1_SPORTS)), path)
        tables.setdefault(role, []).append((path, frame))
    return tables


def _read_sports(tables: _Tables, log: NoteLog) -> dict[int, str]:
    """sport_id → name from every sports lookup in the folder (first file wins on a clash)."""
    sports: dict[int, str] = {}
    for path, frame in tables.get("v1_sports", []):
        sports = {**_read_v1_sports(frame, path), **sports}
    for path, _ in tables.get("dump_sports", []):
        sports = {**_read_dump_sports(path, log), **sports}
    return sports


def _collect_v1(tables: _Tables, sports: dict[int, str], events: _Events, where: str | Path,
                log: NoteLog) -> None:
    """v1 cycles/recovery/sleeps/workouts → events."""
    sleeps = [_read_v1_sleeps(f, p, log) for p, f in tables.get("v1_sleeps", [])]
    recs = [_read_v1_recovery(f, p) for p, f in tables.get("v1_recovery", [])]
    cycles = [_read_v1_cycles(f, p, log) for p, f in tables.get("v1_cycles", [])]
    cycle_t = (_drop_repeated_ids(pd.concat(cycles, ignore_index=True), "cycle_id", where, log,
                                  "cycles") if cycles else pd.DataFrame())
    if len(cycle_t):
        events.strains.append(cycle_t)
    if sleeps or recs:
        sleep_t = (_drop_repeated_ids(pd.concat(sleeps, ignore_index=True), "sleep_id", where,
                                      log, "sleeps") if sleeps
                   else pd.DataFrame(columns=["sleep_id", "date", "end", "asleep_min", "is_nap",
                                              *SLEEP_COLUMNS]))
        rec_t = (_drop_repeated_ids(pd.concat(recs, ignore_index=True), "sleep_id", where, log,
                                    "recoveries") if recs else pd.DataFrame())
        rec_path = tables["v1_recovery"][0][0] if recs else None
        nights = _v1_nights(sleep_t, rec_t, cycle_t, where, rec_path)
        if len(nights):
            events.nights.append(nights)
    workouts = tables.get("v1_workouts", [])
    for path, frame in workouts:
        events.workouts.append(_read_v1_workouts(frame, path, sports))
    if workouts:
        events.sport_names_known = bool(sports) or any("name" in f.columns for _, f in workouts)


def _collect_dump(tables: _Tables, sports: dict[int, str], events: _Events,
                  log: NoteLog) -> None:
    """Flattened dump sleeps/workouts → events, inferring the UTC offset when none is given."""
    offset: pd.Timedelta | None = None
    for path, frame in tables.get("dump_sleeps", []):
        sleeps, written, has_offset = _read_dump_sleeps(frame, path)
        local_offset: pd.Series | pd.Timedelta = written
        if not has_offset:
            main = sleeps[~sleeps["is_nap"]]
            offset = local_offset = _infer_offset(main["start"], main["end"])
            hours = offset.total_seconds() / 3600.0
            log.add(path, "info", f"timestamps are UTC with no offset: local time assumed "
                                  f"UTC{hours:+.0f}:00, inferred from the sleep times")
        sleeps["date"] = _local_date(sleeps["end"], local_offset)
        events.nights.append(sleeps[~sleeps["is_nap"]].assign(has_recovery=False))
    workouts = tables.get("dump_workouts", [])
    if workouts and not tables.get("dump_sleeps"):
        log.add(workouts[0][0], "info", "timestamps are UTC with no offset and there are no "
                                        "sleeps to infer one from: dates are UTC dates")
    for path, frame in workouts:
        events.workouts.append(_read_dump_workouts(frame, path, sports, offset))
    if workouts:
        events.sport_names_known = events.sport_names_known or bool(sports)


def _collect_summary(tables: _Tables, events: _Events, log: NoteLog) -> None:
    """Daily summary sheet and its workouts → events (see the module docstring's quirks)."""
    workouts = [_read_summary_workouts(f, p) for p, f in tables.get("summary_workouts", [])]
    events.workouts.extend(workouts)
    if workouts:
        events.sport_names_known = True
    all_workouts = pd.concat(workouts, ignore_index=True) if workouts else pd.DataFrame()
    for path, frame in tables.get("summary", []):
        nights, strains = _read_summary(frame, path)
        moved = nights["date"] != strains["date"]
        moved &= nights[list(RECOVERY_COLUMNS)].notna().any(axis=1)
        if moved.any():
            log.add(path, "repair", "physiology moved from the sheet's date to the local date "
                                    "of waking (sleep_end_local)", int(moved.sum()))
        strains = _blank_backfilled_strain(strains, all_workouts, path, log)
        newest = strains["date"] == strains["date"].max()
        if strains.loc[newest, "strain"].notna().any():
            log.add(path, "repair", "strain of the newest day (still accruing when the sheet "
                                    "was mirrored) left missing", 1)
            strains.loc[newest, "strain"] = np.nan
        events.nights.append(nights)
        events.strains.append(strains)


class WhoopApiLoader:
    """WHOOP API tables (v1, a flattened dump, or a daily summary sheet) → daily rows."""

    source = SOURCE

    def claims(self, path: Path) -> bool:
        return _role_of(path) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        tables = _read_tables(files, log)
        where: str | Path = files[0] if len(files) == 1 else files[0].parent
        sports = _read_sports(tables, log)
        events = _Events()
        _collect_v1(tables, sports, events, where, log)
        _collect_dump(tables, sports, events, log)
        _collect_summary(tables, events, log)
        return _assemble(events, f"{SOURCE}-{user_hint}", where, log)


LOADER = WhoopApiLoader()
