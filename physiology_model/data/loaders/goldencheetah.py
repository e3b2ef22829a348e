"""GoldenCheetah OpenData → daily rows (source `goldencheetah`).

Two layouts, both one row per activity with GoldenCheetah's per-activity metrics:

- `metadata.csv` (the OpenData sample of several athletes): the `id` column is the athlete's
  UUID, `date` the start time in UTC (`2017/09/12 12:07:13 UTC`), plus `workout_time` (s),
  `time_in_zone_H1..H5` (s), `coggan_tss`, `trimp_points`, `trimp_zonal_points`,
  `session_rpe`, `sport`, `yob`, `gender` and, for athletes who logged morning HRV in
  GoldenCheetah, `Rest_rMSSD` (ms), `Rest_HR` (bpm), `Rest_SDNN` (ms).
- an athlete file `{uuid}.zip` (or the bare `{uuid}.json` inside it): `ATHLETE` (`id`, `yob`,
  `gender`) and `RIDES`, each with `date`, `sport` and a `METRICS` dict of the same metrics, as
  strings or `[value, count]` pairs. The zip is read in memory (`zipfile`), never extracted; an
  unreadable or corrupted zip is a `DataError`.

`user_id = f"goldencheetah-{uuid[:8]}"` (longer prefixes if two athletes of one folder share 8
characters), for both layouts, so one athlete has one id wherever their data come from.

Local day. GoldenCheetah stores start times in UTC and OpenData drops the athlete's location.
Each athlete's UTC offset is inferred as the whole-hour offset (UTC-12..UTC+14) that puts the
fewest activity starts between 00:00 and 04:59 local time (ties: the offset nearest 0); a note
gives it. For the two athletes with HRV this also makes every local day carry one HRV value
(with UTC days, an evening ride of the US-based athlete would carry the previous morning's HRV
on the next day).

Load (DESIGN §4), per activity, summed per day by `_sessions.daily_load_from_sessions`:

- heart-rate zones present → minutes in GoldenCheetah's H1..H5 zones (s / 60) are Edwards
  zones 1-5. GoldenCheetah's default HR zones (0/68/83/94/105 % of LTHR, i.e. about 0/61/75/
  85/95 % of HRmax for LTHR ≈ 90 % HRmax) sit close to Edwards' 50/60/70/80/90 % of HRmax, so
  zone i maps to zone i (extra zones H6+ would be summed into zone 5). This is Edwards'
  method itself. GoldenCheetah's own TRIMPs are not used: `trimp_points` is Banister's
  exponential TRIMP (Morton/Banister with Green's coefficients) and `trimp_zonal_points` weights
  the same zone times with the athlete's own coefficients (defaults 0.9/1.1/1.2/2/5), so
  neither is on the Edwards scale (on the shipped data Edwards ≈ 2.0 × either, median per
  activity); and without heart rate `trimp_zonal_points` falls back to a duration-only guess.
- no zones, a `coggan_tss` (power) → `load.tss_to_trimp` (Edwards / TSS is 2.6-2.9 on the
  activities that have both).
- neither, a session RPE (`session_rpe` = RPE × min) → `load.srpe_to_trimp`.
- none of these (e.g. swims without heart rate): the day's load is unknown (noted).
- `strength_min`: duration of activities whose sport is resistance work
  (`load.is_strength_activity`).

GoldenCheetah is an upload log whose completeness is unknown (an unrecorded session leaves no
trace), so only activity days get rows: days without an activity are missing, not rest.

Physiology. `Rest_rMSSD` → `hrv_rmssd_ms`, `Rest_HR` → `rhr_bpm`. GoldenCheetah attaches the
*latest* HRV measurement to every activity, so a value repeats on the following activities until
the next measurement (one athlete's 38.1 ms is on every activity for 9 days). A day's value is
its first activity's; a day whose (rMSSD, HR, SDNN) equal the previous day's with a value is a
carried-forward copy and becomes NaN (noted). A measurement taken on a day without an activity
is thereby dated to the next activity day: the files carry no measurement date.

Static columns: `sex` from `gender` (M/F); `age` is the expected age on each day from the year
of birth (birthday unknown: mid-year), so it grows over a 12-year log. A year of birth that
gives an age outside 10-100 years (one athlete's `yob` is 2062) is treated as unknown (noted).
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.loaders._sessions import (
    SECONDS_PER_MINUTE,
    SESSION_COLUMNS,
    daily_load_from_sessions,
    map_hr_zones_to_edwards,
)
from physiology_model.data.table import NUMERIC_COLUMNS, NoteLog
from physiology_model.errors import DataError

UUID = re.compile(r"^\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?$",
                  re.IGNORECASE)

METADATA_SIGNATURE = frozenset({"date", "id", "workout_time", "time_in_zone_H1", "coggan_tss",
                                "trimp_zonal_points"})
"""Header columns that identify a GoldenCheetah OpenData metadata.csv."""

UTC_FORMAT = "%Y/%m/%d %H:%M:%S UTC"
ZONE_METRIC = re.compile(r"^time_in_zone_H(\d+)$")
ZONE_SECONDS = re.compile(r"^zone_H(\d+)_s$")
"""Activity-frame column of the seconds in GoldenCheetah HR zone <i>."""

NIGHT_HOURS = np.arange(0, 5)
"""Local hours 00:00-04:59, when almost nobody starts a workout."""
UTC_OFFSETS_H = range(-12, 15)

MAX_JSON_BYTES = 512 * 1024 * 1024
"""An athlete JSON larger than this is refused rather than read into memory."""

SHORT_ID_LENGTH = 8

ACTIVITY_COLUMNS: tuple[str, ...] = (
    "athlete", "start_utc", "sport", "workout_s", "tss", "session_rpe", "rest_rmssd_ms",
    "rest_hr_bpm", "rest_sdnn_ms", "yob", "gender",
)
"""Per-activity columns both readers produce, plus `zone_H<i>_s` zone seconds."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def is_metadata_csv(path: Path) -> bool:
    """Whether `path` is an OpenData metadata.csv (by header)."""
    return path.suffix.lower() == ".csv" and METADATA_SIGNATURE <= set(header_of(path))


def is_athlete_file(path: Path) -> bool:
    """Whether `path` is an OpenData athlete file: `{uuid}.zip`, or a `{uuid}.json` whose start
    names GoldenCheetah's keys. A zip is claimed by name alone, so that a corrupted one is
    reported rather than ignored."""
    suffix = path.suffix.lower()
    if suffix not in (".zip", ".json") or not UUID.match(path.stem):
        return False
    if suffix == ".zip":
        return True
    try:
        with path.open("rb") as fh:
            start = fh.read(512)
    except OSError:
        return False
    return b'"RIDES"' in start or b'"ATHLETE"' in start


def read_metadata_csv(path: Path, log: NoteLog) -> pd.DataFrame:
    """metadata.csv → activity frame (`ACTIVITY_COLUMNS` + zone seconds), one row per activity."""
    raw = read_csv(path, log)
    require_columns(raw, ["date", "id", "workout_time", "time_in_zone_H1"], path)

    def number(column: str) -> pd.Series:
        return to_number(raw, column, path) if column in raw.columns \
            else pd.Series(np.nan, raw.index)

    def text(column: str) -> pd.Series:
        return raw[column] if column in raw.columns else pd.Series(None, raw.index, dtype=object)

    acts = pd.DataFrame({
        "athlete": raw["id"],
        "start_utc": to_datetime(raw, "date", path, fmt=UTC_FORMAT),
        "sport": text("sport"),
        "workout_s": number("workout_time"),
        "tss": number("coggan_tss"),
        "session_rpe": number("session_rpe"),
        "rest_rmssd_ms": number("Rest_rMSSD"),
        "rest_hr_bpm": number("Rest_HR"),
        "rest_sdnn_ms": number("Rest_SDNN"),
        "yob": number("yob"),
        "gender": text("gender"),
    })
    for number_, column in _zone_columns(raw.columns):
        acts[f"zone_H{number_}_s"] = to_number(raw, column, path)
    if acts["athlete"].isna().any():
        raise DataError(path, f"{int(acts['athlete'].isna().sum())} activities have no athlete id")
    if acts["start_utc"].isna().any():
        raise DataError(path, f"{int(acts['start_utc'].isna().sum())} activities have no date")
    acts["athlete"] = acts["athlete"].map(_normalise_uuid)
    return acts


def read_athlete_json_bytes(data: bytes, path: Path) -> pd.DataFrame:
    """The bytes of one athlete JSON → activity frame."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"athlete JSON is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"athlete JSON is not valid JSON (line {exc.lineno}: "
                              f"{exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("RIDES"), list):
        raise DataError(path, "athlete JSON has no RIDES list")
    athlete = doc.get("ATHLETE") if isinstance(doc.get("ATHLETE"), dict) else {}
    athlete_id = str(athlete.get("id") or path.stem)
    if not UUID.match(athlete_id):
        raise DataError(path, f"athlete id {athlete_id!r} is not a GoldenCheetah UUID")
    yob = _metric_number(athlete.get("yob"), path, "ATHLETE", "yob")
    gender = athlete.get("gender")

    rows: list[dict[str, Any]] = []
    for i, ride in enumerate(doc["RIDES"]):
        if not isinstance(ride, dict) or not isinstance(ride.get("date"), str):
            raise DataError(path, f"ride {i + 1} has no date")
        metrics = ride.get("METRICS") or {}
        if not isinstance(metrics, dict):
            raise DataError(path, f"ride {i + 1} ({ride['date']}): METRICS is not an object")
        where = f"ride {i + 1} ({ride['date']})"

        def metric(name: str) -> float:
            return _metric_number(metrics.get(name), path, where, name)

        row: dict[str, Any] = {
            "athlete": athlete_id, "start_utc": ride["date"], "sport": ride.get("sport") or None,
            "workout_s": metric("workout_time"), "tss": metric("coggan_tss"),
            "session_rpe": metric("session_rpe"), "rest_rmssd_ms": metric("Rest_rMSSD"),
            "rest_hr_bpm": metric("Rest_HR"), "rest_sdnn_ms": metric("Rest_SDNN"),
            "yob": yob, "gender": gender,
        }
        for number_, name in _zone_columns(metrics):
            row[f"zone_H{number_}_s"] = metric(name)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(ACTIVITY_COLUMNS))
    acts = pd.DataFrame(rows)
    acts["start_utc"] = to_datetime(acts, "start_utc", path, fmt=UTC_FORMAT)
    acts["athlete"] = acts["athlete"].map(_normalise_uuid)
    return acts


def read_athlete_zip(path: Path) -> pd.DataFrame:
    """`{uuid}.zip` → activity frame, reading its athlete JSON in memory (no extraction)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist()
                       if m.filename.lower().endswith(".json") and not m.is_dir()]
            if not members:
                raise DataError(path, "zip holds no athlete JSON file")
            if len(members) > 1:
                # OpenData zips hold one {uuid}.json (plus activity CSVs); prefer the named one
                named = [m for m in members if UUID.match(Path(m.filename).stem)]
                if len(named) != 1:
                    raise DataError(path, f"zip holds several JSON files "
                                          f"({', '.join(m.filename for m in members[:4])}); "
                                          f"expected one athlete file")
                members = named
            member = members[0]
            if member.file_size > MAX_JSON_BYTES:
                raise DataError(path, f"{member.filename} is {member.file_size} bytes, over the "
                                      f"{MAX_JSON_BYTES} byte limit")
            data = archive.read(member)
    except zipfile.BadZipFile as exc:
        raise DataError(path, f"not a readable zip archive ({exc})") from None
    except (zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise DataError(path, f"zip archive is corrupted ({exc})") from None
    return read_athlete_json_bytes(data, path)


def _zone_columns(names: Iterable[str]) -> list[tuple[int, str]]:
    return sorted((int(m.group(1)), n) for n in names if (m := ZONE_METRIC.match(n)))


def _normalise_uuid(value: str) -> str:
    match = UUID.match(str(value).strip())
    return match.group(1).lower() if match else str(value).strip()


def _metric_number(value: Any, path: Path, where: str, name: str) -> float:
    """A GoldenCheetah metric value → float: a number string (`"nan"` = missing), or a
    `[value, count]` pair (averages carry their sample count); None/absent → NaN."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"{where}: metric {name} is not a number ({value!r})") from None


# ---------------------------------------------------------------------------------------------
# Activities → days
# ---------------------------------------------------------------------------------------------

def infer_utc_offset_hours(start_utc: pd.Series) -> tuple[int, int]:
    """The whole-hour UTC offset that puts the fewest starts at 00:00-04:59 local time.

    Returns (offset_h, starts_at_night). Ties go to the offset nearest 0 (then the western one).
    """
    hours = start_utc.dt.hour.to_numpy()

    def night(offset: int) -> int:
        return int(np.isin((hours + offset) % 24, NIGHT_HOURS).sum())

    best = min(UTC_OFFSETS_H, key=lambda h: (night(h), abs(h), h))
    return best, night(best)


def short_ids(athletes: Iterable[str]) -> dict[str, str]:
    """UUID → the shortest prefix (at least 8 characters) unique among `athletes`."""
    unique = sorted(set(athletes))
    compact = {a: a.replace("-", "") for a in unique}
    length = SHORT_ID_LENGTH
    while len({c[:length] for c in compact.values()}) < len(unique):
        length += 1
    return {a: c[:length] for a, c in compact.items()}


def _sessions(acts: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Activity frame (with `date`) → `_sessions.SESSION_COLUMNS`."""
    zone_numbers = sorted(int(m.group(1)) for c in acts.columns if (m := ZONE_SECONDS.match(c)))
    if zone_numbers:
        # GoldenCheetah omits a zone metric whose time is 0, so zones up to the highest one
        # present (and at least five) are read, absent ones as empty
        count = max(max(zone_numbers), len(ZONE_COLUMNS))
        seconds = np.column_stack([
            acts[f"zone_H{i}_s"].to_numpy(dtype=float) if f"zone_H{i}_s" in acts.columns
            else np.full(len(acts), np.nan) for i in range(1, count + 1)
        ])
        edwards = map_hr_zones_to_edwards(seconds / SECONDS_PER_MINUTE, path)  # s → min
    else:
        edwards = np.full((len(acts), len(ZONE_COLUMNS)), np.nan)
    workout_min = acts["workout_s"].to_numpy(dtype=float) / SECONDS_PER_MINUTE  # s → min
    with np.errstate(invalid="ignore", divide="ignore"):
        # GoldenCheetah's session_rpe is RPE (CR-10) × minutes
        rpe = np.where(workout_min > 0, acts["session_rpe"].to_numpy(dtype=float) / workout_min,
                       np.nan)
    return pd.DataFrame({
        "date": acts["date"].to_numpy(),
        "minutes": workout_min,
        **{z: edwards[:, k] for k, z in enumerate(ZONE_COLUMNS)},
        "tss": acts["tss"].to_numpy(dtype=float),
        "rpe_cr10": rpe,
        "strength": [is_strength_activity(s) for s in acts["sport"]],
    })[list(SESSION_COLUMNS)]


def _physiology(acts: pd.DataFrame, path: str | Path, log: NoteLog, label: str) -> pd.DataFrame:
    """One athlete's activities (with `date`) → per-day `hrv_rmssd_ms`, `rhr_bpm`, with
    carried-forward repeats blanked (see the module docstring)."""
    rest = ["rest_rmssd_ms", "rest_hr_bpm", "rest_sdnn_ms"]
    with_values = acts[acts[rest].notna().any(axis=1)].sort_values("start_utc", kind="stable")
    if with_values.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"),
                             "hrv_rmssd_ms": pd.Series(dtype="float64"),
                             "rhr_bpm": pd.Series(dtype="float64")})
    per_day = with_values.groupby("date", sort=True)
    conflicting = int((per_day[rest].nunique() > 1).any(axis=1).sum())
    if conflicting:
        log.add(path, "repair", f"{label}: days whose activities carry different rest HRV "
                                f"values: the first activity's kept", conflicting)
    day = per_day[rest].first()
    previous = day.shift(1)
    same = (day.fillna(-1.0) == previous.fillna(-1.0)).all(axis=1)
    same.iloc[0] = False
    if same.any():
        log.add(path, "repair", f"{label}: Rest_rMSSD/Rest_HR repeated from the previous "
                                f"measured day (GoldenCheetah attaches the latest HRV "
                                f"measurement to every activity): set to missing", int(same.sum()))
    day = day[~same]
    return pd.DataFrame({"date": day.index, "hrv_rmssd_ms": day["rest_rmssd_ms"].to_numpy(),
                         "rhr_bpm": day["rest_hr_bpm"].to_numpy()})


def _static(dates: pd.Series, yob: float, gender: Any, path: str | Path, log: NoteLog,
            label: str) -> tuple[np.ndarray, Any]:
    """Expected age on each date (years; birthday unknown, so mid-year) and sex."""
    sex = {"M": "male", "F": "female"}.get(str(gender).strip().upper()) if gender else None
    if not np.isfinite(yob) or yob <= 0:
        return np.full(len(dates), np.nan), sex
    born = pd.Timestamp(year=int(yob), month=7, day=2)  # mid-year: birthday unknown
    age = (dates - born).dt.days.to_numpy(dtype=float) / 365.25  # days → years
    age_col = NUMERIC_COLUMNS["age"]
    if np.any((age < age_col.lo) | (age > age_col.hi)):
        log.add(path, "repair", f"{label}: year of birth {int(yob)} gives an age outside "
                                f"{age_col.lo:g}-{age_col.hi:g} years on its dates: age unknown",
                len(dates))
        return np.full(len(dates), np.nan), sex
    return age, sex


def days_from_activities(acts: pd.DataFrame, where: str | Path, log: NoteLog,
                         source: str) -> pd.DataFrame:
    """All athletes' activities → daily rows with `user_id` (see the module docstring)."""
    acts = acts.sort_values(["athlete", "start_utc"], kind="stable")
    repeated = acts.duplicated(["athlete", "start_utc"], keep="first")
    if repeated.any():
        log.add(where, "repair", "activities read twice (same athlete and start time): the "
                                 "first kept", int(repeated.sum()))
        acts = acts[~repeated]
    ids = short_ids(acts["athlete"])
    frames = []
    for athlete, group in acts.groupby("athlete", sort=True):
        user_id = f"{source}-{ids[athlete]}"
        offset, at_night = infer_utc_offset_hours(group["start_utc"])
        log.add(where, "info", f"{user_id}: start times are UTC; local day taken at "
                               f"UTC{offset:+d} h ({at_night} of {len(group)} starts fall at "
                               f"00:00-04:59 local, the fewest of any offset)")
        group = group.assign(date=(group["start_utc"] + pd.Timedelta(hours=offset)).dt.normalize())
        load = daily_load_from_sessions(_sessions(group, where), rest_day_spans=[],
                                        path=where, log=log, label=user_id)
        physiology = _physiology(group, where, log, user_id)
        day = load.merge(physiology, on="date", how="left")
        yob = group["yob"].dropna()
        gender = group["gender"].dropna()
        day["age"], day["sex"] = _static(day["date"], float(yob.iloc[0]) if len(yob) else np.nan,
                                         gender.iloc[0] if len(gender) else None, where, log,
                                         user_id)
        day.insert(0, "user_id", user_id)
        frames.append(day)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["source"] = source
    return out


class GoldenCheetahLoader:
    """GoldenCheetah OpenData: metadata.csv (many athletes) and `{uuid}.zip` athlete files."""

    source = "goldencheetah"

    def claims(self, path: Path) -> bool:
        return is_metadata_csv(path) or is_athlete_file(path)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0] if len(files) == 1 else files[0].parent
        parts = []
        for path in files:
            if path.suffix.lower() == ".zip":
                acts = read_athlete_zip(path)
            elif path.suffix.lower() == ".json":
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise DataError(path, f"cannot be read ({exc.strerror})") from None
                acts = read_athlete_json_bytes(data, path)
            else:
                acts = read_metadata_csv(path, log)
            if acts.empty:
                log.add(path, "info", "no activities")
                continue
            parts.append(acts)
        if not parts:
            return pd.DataFrame()
        return days_from_activities(pd.concat(parts, ignore_index=True), where, log, self.source)


LOADER = GoldenCheetahLoader()
