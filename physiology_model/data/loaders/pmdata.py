"""PMData participant folders (Fitbit + PMSys + demographics) → daily rows.

PMData (Thambawita et al. 2020, "PMData: a sports logging dataset", ACM MMSys; Simula, Norway)
followed 16 recreational athletes from November 2019 to March 2020 with a Fitbit Versa 2 and the
PMSys reporting app. **Licence: CC BY-NC 4.0 (the dataset authors' `license.txt`): the data may
not be used commercially, and anything derived from them carries that restriction.**

One folder per participant (`p01`..`p16`), `user_id = f"pmdata-{folder}"`. Demographics come from
`participant-overview.xlsx`, read from the participant's folder, its parent or a sibling `all/`
folder (where the dataset keeps it). Files and what is taken from them:

* `resting_heart_rate.json` (Fitbit daily resting HR, dated by calendar day) → `rhr_bpm`. A value
  of 0 (with `date` null and `error` 0) means Fitbit had no reading: set missing.
* `sleep_score.csv` → `rhr_bpm` only on days where `resting_heart_rate.json` has none. Its
  `resting_heart_rate` on the sleep ending on day D is Fitbit's daily resting HR of day D − 1
  (on the 1,511 days where both exist, 98 % agree to within 1 bpm with that shift, 57 % without),
  so it fills day D − 1. `timestamp` is the sleep's end in local wall-clock time despite its `Z`
  (it equals `endTime` in `sleep.json`). The sleep scores themselves have no canonical column.
* `sleep.json` (Fitbit sleep logs) → `sleep_min` (`minutesAsleep`), `sleep_efficiency_pct`
  (Fitbit's `efficiency`; 0 with time asleep is impossible, seen on the night clocks went forward,
  and is set missing), `rem_pct` and `deep_pct` (stage minutes / minutes asleep × 100, for logs of
  type `stages`; `classic` logs have no stages). The main sleep (`mainSleep`) of each
  `dateOfSleep` (the wake day) is used; naps are not. The export repeats some logs at month
  boundaries: repeated `logId`s are dropped. Two different main sleeps on one day keep the
  longest.
* `wellness.csv` (PMSys, morning questionnaire) → `readiness_self` (`readiness`, already 0-10).
  A report whose every answer is 0 (an empty submission) is ignored. Several reports in one
  local day keep the earliest, the one nearest waking.
* `injury.csv` (PMSys) → `injury`: 1 on a day whose report lists an injury (`{'right_knee':
  'minor'}`), 0 on a day reported injury-free (`{}`), missing on days without a report. Several
  reports in one day: 1 if any lists an injury.
* `srpe.csv` (PMSys session reports: end time, activity names, CR-10 RPE, minutes) → the day's
  training load. Session RPE (Foster et al. 2001, J Strength Cond Res 15:109) is RPE × minutes;
  `load_trimp` is the day's sum of `load.srpe_to_trimp` (minutes × the Edwards zone weight of the
  RPE), `load_basis='srpe'`. A session belongs to the local day on which it started (end time −
  duration). `strength_min`: the minutes of sessions naming `strength`, split evenly over the
  session's activities when it names several (e.g. `['individual', 'strength', 'running']`, 60
  min → 30 min strength; `individual`/`team` are not activities). Reports with no activity,
  RPE or duration are ignored.
* `time_in_heart_rate_zones.json` (Fitbit whole-day minutes in the %-HRmax default zones) →
  `z1_min..z5_min` via `_fitbit.TRAINING_ZONE_SHARES` (see `_fitbit` for the mapping and the
  evidence for it): cardio and peak only, whole-day fat-burn minutes are everyday activity and
  are not counted; days with under 10 h of heart-rate data get none. Custom zones are ignored.
* `exercise.json`, `reporting.csv` and the `*_minutes.json` activity files are recognised and not
  used (nothing in them has a canonical column that the files above do not give better).
* `participant-overview.xlsx` → `age` (years) and `sex`.

Load: one basis per day. The sRPE log is the athlete's own training record and weighs strength
work that heart rate misses, while Fitbit zone minutes cover the whole day, everyday activity
included. So sRPE is the basis wherever the log speaks:

1. a day with logged sessions: their sRPE-based TRIMP (`load_basis='srpe'`);
2. a day without a logged session between the participant's first and last logged session:
   the log is taken as complete there, so `load_trimp = 0` and `strength_min = 0`
   (`load_basis='no_activity'`, `_sessions.REST_DAY_BASIS`, as for the other training logs).
   Evidence: within the logs' spans in the shipped data, 73 % of logged days (506 of 693) but
   only 6 % of unlogged days (58 of 900) with a worn watch reach 20 min in Fitbit's cardio + peak
   zones (>= 70 % HRmax). A session missing from the log thus shows as rest; giving those few
   days whole-day zone TRIMP instead would mix in everyday activity (a median of about 80 and up
   to 690 fat-burn minutes a day);
3. outside that span the log says nothing: `load_trimp` is left empty and is derived centrally
   from the zone minutes where the watch was worn (`'hr_zones'`: whole-day minutes, a different
   scale from session sRPE). `load_basis` tells the two apart.

Local time: PMSys timestamps are UTC (`Z`) and are converted to `PMSYS_TIMEZONE`, where the
participants lived; Fitbit files are already in local time.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity, srpe_to_trimp
from physiology_model.data.loaders._fitbit import (
    MIN_HR_COVERAGE_MIN,
    TRAINING_ZONE_SHARES,
    fitbit_zones_to_edwards,
    hr_coverage_too_short,
)
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    read_json,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.loaders._sessions import REST_DAY_BASIS
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

PMSYS_TIMEZONE = "Europe/Oslo"
"""Local time zone of the PMData participants (Simula, Oslo)."""

OVERVIEW_NAME = "participant-overview.xlsx"

# Header signatures of the CSV files (exact column lists of the released files).
CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "srpe.csv": ("end_date_time", "activity_names", "perceived_exertion", "duration_min"),
    "wellness.csv": ("effective_time_frame", "fatigue", "mood", "readiness", "sleep_duration_h",
                     "sleep_quality", "soreness", "soreness_area", "stress"),
    "injury.csv": ("effective_time_frame", "injuries"),
    "sleep_score.csv": ("timestamp", "sleep_log_entry_id", "overall_score", "composition_score",
                        "revitalization_score", "duration_score", "deep_sleep_in_minutes",
                        "resting_heart_rate", "restlessness"),
    "reporting.csv": ("date", "timestamp", "meals", "weight", "glasses_of_fluid",
                      "alcohol_consumed"),
}

# Text that the first record of each Fitbit JSON file contains (the files are one line each).
JSON_SIGNATURES: dict[str, tuple[str, ...]] = {
    "resting_heart_rate.json": ('"dateTime"', '"value"', '"error"'),
    "time_in_heart_rate_zones.json": ('"dateTime"', '"valuesInZones"'),
    "sleep.json": ('"logId"', '"dateOfSleep"', '"minutesAsleep"'),
    "exercise.json": ('"logId"', '"activityName"'),
    "lightly_active_minutes.json": ('"dateTime"', '"value"'),
    "moderately_active_minutes.json": ('"dateTime"', '"value"'),
    "very_active_minutes.json": ('"dateTime"', '"value"'),
    "sedentary_minutes.json": ('"dateTime"', '"value"'),
}

UNUSED_FILES = {"exercise.json", "reporting.csv", "lightly_active_minutes.json",
                "moderately_active_minutes.json", "very_active_minutes.json",
                "sedentary_minutes.json"}

WELLNESS_ANSWERS = ("fatigue", "mood", "readiness", "sleep_duration_h", "sleep_quality",
                    "soreness", "stress")

SESSION_CONTEXT = {"individual", "team"}
"""PMSys activity tags that say who trained, not what was trained."""


# ---------------------------------------------------------------------------------------------
# small helpers


def to_local_date(stamps: pd.Series) -> pd.Series:
    """UTC timestamps → the local (`PMSYS_TIMEZONE`) calendar day, as tz-naive midnight."""
    return stamps.dt.tz_convert(PMSYS_TIMEZONE).dt.tz_localize(None).dt.normalize()


def records_of(path: Path, log: NoteLog, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """A Fitbit JSON file as a list of records, each a dict with the `required` keys."""
    data = read_json(path, log)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of daily records, found {type(data).__name__}")
    for i, record in enumerate(data):
        if not isinstance(record, dict) or any(k not in record for k in required):
            raise DataError(path, f"record {i + 1} is not an object with keys {list(required)}")
    return data


def parse_day(values: pd.Series, path: Path, what: str) -> pd.Series:
    """`YYYY-MM-DD[ HH:MM:SS]` strings → tz-naive midnight dates; unreadable → DataError."""
    frame = pd.DataFrame({what: values})
    return to_datetime(frame, what, path).dt.normalize()


def parse_literal(text: str | None, path: Path, column: str,
                  kinds: tuple[type, ...]) -> list[Any] | dict[Any, Any]:
    """A Python-literal cell (`"['individual', 'running']"`, `"{'left_knee': 'minor'}"`).

    An empty cell is an empty collection; anything that is not a literal of one of `kinds` is a
    `DataError`.
    """
    if text is None:
        return kinds[0]()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise DataError(path, f"column {column!r}: expected a {expected} literal, "
                              f"found {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# one reader per file; each returns a frame indexed by date


def read_resting_hr(path: Path, log: NoteLog) -> pd.DataFrame:
    """`resting_heart_rate.json` → `rhr_bpm` (bpm) per day; 0 = no reading → missing."""
    records = records_of(path, log, ("dateTime", "value"))
    values = []
    for i, r in enumerate(records):
        inner = r["value"]
        if not isinstance(inner, dict) or "value" not in inner:
            raise DataError(path, f"record {i + 1}: 'value' has no resting heart rate")
        values.append(inner["value"])
    frame = pd.DataFrame({"date": [r["dateTime"] for r in records], "rhr_bpm": values},
                         dtype=object)
    frame["date"] = parse_day(frame["date"], path, "dateTime")
    frame["rhr_bpm"] = to_number(frame, "rhr_bpm", path)
    zero = frame["rhr_bpm"] == 0
    if zero.any():
        log.add(path, "repair", "resting heart rate 0 (Fitbit: no reading) set to missing",
                int(zero.sum()))
        frame.loc[zero, "rhr_bpm"] = np.nan
    return keep_last_per_day(frame, path, log, "resting heart rate")


def read_sleep_score_rhr(path: Path, log: NoteLog) -> pd.DataFrame:
    """`sleep_score.csv` → Fitbit's daily resting HR (bpm) of the day before each scored sleep
    ended (column `rhr_from_score`; see the module docstring for the one-day shift)."""
    raw = read_csv(path, log)
    require_columns(raw, ["timestamp", "resting_heart_rate"], path)
    # The trailing Z is not UTC: the wall-clock time equals sleep.json's local endTime.
    frame = pd.DataFrame({"timestamp": raw["timestamp"].str.replace(r"Z$", "", regex=True)})
    frame["end"] = to_datetime(frame, "timestamp", path)
    frame["rhr_from_score"] = to_number(raw, "resting_heart_rate", path)
    frame.loc[frame["rhr_from_score"] == 0, "rhr_from_score"] = np.nan
    frame["date"] = frame["end"].dt.normalize() - pd.Timedelta(days=1)
    # Several scored sleeps end on one day: the one ending last carries the value.
    frame = frame.sort_values("end", kind="stable")
    return frame.drop_duplicates("date", keep="last").set_index("date")[["rhr_from_score"]]


def read_sleep(path: Path, log: NoteLog) -> pd.DataFrame:
    """`sleep.json` → main-sleep minutes, efficiency and stage shares per wake day."""
    records = records_of(path, log, ("logId", "dateOfSleep", "endTime", "minutesAsleep",
                                     "efficiency", "type", "mainSleep"))
    rows = []
    for r in records:
        summary = (r.get("levels") or {}).get("summary") or {}
        stage = {s: (summary.get(s) or {}).get("minutes") for s in ("rem", "deep")}
        rows.append({"logId": r["logId"], "date": r["dateOfSleep"], "end": r["endTime"],
                     "asleep": r["minutesAsleep"], "efficiency": r["efficiency"],
                     "type": r["type"], "main": r["mainSleep"],
                     "rem": stage["rem"], "deep": stage["deep"]})
    frame = pd.DataFrame(rows, dtype=object)
    if frame.empty:
        return pd.DataFrame(columns=["sleep_min"], index=pd.DatetimeIndex([], name="date"))
    repeated = frame.duplicated("logId")
    if repeated.any():
        log.add(path, "repair", "sleep logs repeated in the export (same logId) dropped",
                int(repeated.sum()))
        frame = frame[~repeated]
    frame = frame[frame["main"].astype(bool)].copy()
    frame["date"] = parse_day(frame["date"], path, "dateOfSleep")
    frame["end"] = to_datetime(frame, "end", path)
    for c in ("asleep", "efficiency", "rem", "deep"):
        frame[c] = to_number(frame, c, path)

    frame = frame.sort_values(["date", "asleep", "end"], ascending=[True, False, False],
                              kind="stable")
    several = frame.duplicated("date")
    if several.any():
        log.add(path, "repair", "days with two main sleeps: kept the longest", int(several.sum()))
        frame = frame[~several]

    impossible = (frame["efficiency"] == 0) & (frame["asleep"] > 0)
    if impossible.any():
        log.add(path, "repair", "sleep efficiency 0 with time asleep (Fitbit error) set to "
                                "missing", int(impossible.sum()))
        frame.loc[impossible, "efficiency"] = np.nan
    staged = (frame["type"] == "stages") & (frame["asleep"] > 0)
    out = pd.DataFrame(index=frame["date"])
    out["sleep_min"] = frame["asleep"].to_numpy()
    out["sleep_efficiency_pct"] = frame["efficiency"].to_numpy()
    # stage minutes / minutes asleep → % of time asleep
    out["rem_pct"] = np.where(staged, 100.0 * frame["rem"] / frame["asleep"], np.nan)
    out["deep_pct"] = np.where(staged, 100.0 * frame["deep"] / frame["asleep"], np.nan)
    return out


def read_zones(path: Path, log: NoteLog) -> pd.DataFrame:
    """`time_in_heart_rate_zones.json` → Edwards `z1_min..z5_min` (minutes) per day."""
    records = records_of(path, log, ("dateTime", "value"))
    keys = ("BELOW_DEFAULT_ZONE_1", "IN_DEFAULT_ZONE_1", "IN_DEFAULT_ZONE_2", "IN_DEFAULT_ZONE_3")
    rows = []
    for i, r in enumerate(records):
        zones = r["value"].get("valuesInZones") if isinstance(r["value"], dict) else None
        if not isinstance(zones, dict):
            raise DataError(path, f"record {i + 1}: no 'valuesInZones'")
        # A zone absent from a day's record is unknown for that day, not zero.
        rows.append({"date": r["dateTime"], **{k: zones.get(k) for k in keys}})
    frame = pd.DataFrame(rows, columns=["date", *keys], dtype=object)
    frame["date"] = parse_day(frame["date"], path, "dateTime")
    below, fat_burn, cardio, peak = (to_number(frame, k, path) for k in keys)
    out = fitbit_zones_to_edwards(fat_burn, cardio, peak, TRAINING_ZONE_SHARES)
    short = hr_coverage_too_short(below, fat_burn, cardio, peak)
    if short.any():
        log.add(path, "repair", f"zone minutes of days with under {MIN_HR_COVERAGE_MIN:g} min "
                                f"of heart-rate data (watch not worn) set to missing",
                int(short.sum()))
        out.loc[short] = np.nan
    out["date"] = frame["date"]
    return keep_last_per_day(out, path, log, "zone minutes")


def read_wellness(path: Path, log: NoteLog) -> pd.DataFrame:
    """`wellness.csv` → `readiness_self` (0-10) per local day."""
    raw = read_csv(path, log)
    require_columns(raw, ["effective_time_frame", *WELLNESS_ANSWERS], path)
    answers = pd.DataFrame({c: to_number(raw, c, path) for c in WELLNESS_ANSWERS})
    stamps = to_datetime(raw, "effective_time_frame", path, utc=True)
    frame = pd.DataFrame({"stamp": stamps, "readiness_self": answers["readiness"]})
    blank = (answers == 0).all(axis=1)
    if blank.any():
        log.add(path, "repair", "wellness reports with every answer 0 (empty submissions) "
                                "ignored", int(blank.sum()))
        frame = frame[~blank]
    frame = drop_undated(frame, path, log, "wellness reports")
    frame["date"] = to_local_date(frame["stamp"])
    frame = frame.sort_values("stamp", kind="stable")
    later = frame.duplicated("date", keep="first")
    if later.any():
        log.add(path, "repair", "days with several wellness reports: kept the earliest",
                int(later.sum()))
        frame = frame[~later]
    return frame.set_index("date")[["readiness_self"]]


def read_injury(path: Path, log: NoteLog) -> pd.DataFrame:
    """`injury.csv` → `injury` (1 = an injury reported, 0 = reported injury-free) per local day."""
    raw = read_csv(path, log)
    require_columns(raw, ["effective_time_frame", "injuries"], path)
    stamps = to_datetime(raw, "effective_time_frame", path, utc=True)
    injured = [1.0 if parse_literal(v, path, "injuries", (dict,)) else 0.0
               for v in raw["injuries"]]
    frame = drop_undated(pd.DataFrame({"stamp": stamps, "injury": injured}), path, log,
                         "injury reports")
    frame["date"] = to_local_date(frame["stamp"])
    per_day = frame.groupby("date")["injury"].max()
    n_merged = len(frame) - len(per_day)
    if n_merged:
        log.add(path, "repair", "days with several injury reports: injured if any report "
                                "lists an injury", n_merged)
    return per_day.to_frame()


def strength_share(activities: list[Any]) -> float:
    """Share of a session's minutes that were strength work (see the module docstring)."""
    named = [str(a) for a in activities if str(a).lower() not in SESSION_CONTEXT]
    if not named:
        return 0.0
    return sum(is_strength_activity(a) for a in named) / len(named)


def read_srpe(path: Path, log: NoteLog) -> pd.DataFrame:
    """`srpe.csv` → per local day of session start: `load_trimp` (sRPE-based), `strength_min`."""
    raw = read_csv(path, log)
    require_columns(raw, list(CSV_HEADERS["srpe.csv"]), path)
    rpe = to_number(raw, "perceived_exertion", path)
    minutes = to_number(raw, "duration_min", path)
    end = to_datetime(raw, "end_date_time", path, utc=True)
    activities = [parse_literal(v, path, "activity_names", (list, dict)) for v in
                  raw["activity_names"]]
    # A report with no activity ("{}"), no RPE or no duration describes no session.
    empty = rpe.isna() | minutes.isna() | end.isna() | pd.Series(
        [not a for a in activities], index=raw.index)
    if empty.any():
        log.add(path, "repair", "sRPE reports without activity, RPE or duration ignored",
                int(empty.sum()))
    bad = ~empty & ((rpe < 0) | (rpe > 10) | (minutes <= 0))
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(path, f"{int(bad.sum())} sessions have an RPE outside the CR-10 scale "
                              f"0-10 or a duration <= 0 (e.g. data row {first + 1})")
    keep = ~empty
    start = end[keep] - pd.to_timedelta(minutes[keep], unit="min")
    sessions = pd.DataFrame({
        "date": to_local_date(start),
        "load_trimp": srpe_to_trimp(rpe[keep].to_numpy(), minutes[keep].to_numpy()),
        "strength_min": minutes[keep].to_numpy() * np.array(
            [strength_share(list(a)) for a, k in zip(activities, keep) if k]),
    })
    return sessions.groupby("date")[["load_trimp", "strength_min"]].sum()


def drop_undated(frame: pd.DataFrame, path: Path, log: NoteLog, what: str) -> pd.DataFrame:
    """Drop rows with no timestamp (`stamp` empty); they cannot be placed on a day (noted)."""
    undated = frame["stamp"].isna()
    if undated.any():
        log.add(path, "repair", f"{what} without a timestamp ignored", int(undated.sum()))
    return frame[~undated].copy()


def keep_last_per_day(frame: pd.DataFrame, path: Path, log: NoteLog, what: str) -> pd.DataFrame:
    """Index a dated frame by day; a day listed twice keeps its last record (noted)."""
    repeated = frame.duplicated("date", keep="last")
    if repeated.any():
        log.add(path, "repair", f"days listed twice in the {what}: kept the last record",
                int(repeated.sum()))
        frame = frame[~repeated]
    return frame.set_index("date")


READERS: dict[str, Callable[[Path, NoteLog], pd.DataFrame]] = {
    "resting_heart_rate.json": read_resting_hr,
    "sleep_score.csv": read_sleep_score_rhr,
    "sleep.json": read_sleep,
    "time_in_heart_rate_zones.json": read_zones,
    "wellness.csv": read_wellness,
    "injury.csv": read_injury,
    "srpe.csv": read_srpe,
}


# ---------------------------------------------------------------------------------------------
# demographics


def find_overview(files: list[Path]) -> Path | None:
    """The demographics workbook: among the files, or next to / above the participant folder."""
    for f in files:
        if f.name == OVERVIEW_NAME:
            return f
    folder = files[0].parent
    for candidate in (folder / OVERVIEW_NAME, folder.parent / OVERVIEW_NAME,
                      folder.parent / "all" / OVERVIEW_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_overview(path: Path) -> pd.DataFrame:
    """`participant-overview.xlsx` → `age` (years), `sex` indexed by participant id (`p01`).

    The sheet has a group-label row above the column names; the names row is the one starting
    with "Participant ID". Every participant folder reads the same workbook, so the parsed sheet
    is cached per file version (path, modification time, size); callers must not modify it.
    """
    stat = path.stat()
    return read_overview_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def read_overview_cached(path_text: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """`read_overview` for one version of the workbook (the key includes its mtime and size)."""
    path = Path(path_text)
    try:
        sheet = pd.read_excel(path, header=None, dtype=object)
    except Exception as exc:  # openpyxl raises several unrelated types for a broken workbook
        raise DataError(path, f"not a readable Excel workbook ({exc})") from None
    first = sheet.iloc[:, 0].astype("string").str.strip()
    header_rows = first[first == "Participant ID"].index
    if len(header_rows) == 0:
        raise DataError(path, "no 'Participant ID' header row found")
    h = header_rows[0]
    names = [str(c).strip() for c in sheet.iloc[h]]
    body = sheet.iloc[h + 1:].copy()
    body.columns = names
    require_columns(body, ["Participant ID", "Age", "Gender"], path)
    body = body[body["Participant ID"].notna()]
    ids = body["Participant ID"].astype(str).str.strip()
    age = to_number(body, "Age", path)
    sex = body["Gender"].astype("string").str.strip().str.lower()
    unknown = sorted(set(sex.dropna()) - {"male", "female"})
    if unknown:
        raise DataError(path, f"column 'Gender': unknown value(s) {unknown}")
    return pd.DataFrame({"age": age.to_numpy(), "sex": sex.to_numpy(dtype=object)},
                        index=ids.to_numpy())


# ---------------------------------------------------------------------------------------------
# the loader


def combine_load(day: pd.DataFrame) -> pd.DataFrame:
    """Apply the one-basis-per-day load rule (module docstring) to a participant's day frame."""
    day = day.copy()
    logged = day["load_trimp"].notna()
    day.loc[logged, "load_basis"] = "srpe"
    if logged.any():
        first, last = day.index[logged].min(), day.index[logged].max()
        rest = (day.index >= first) & (day.index <= last) & ~logged
        day.loc[rest, ["load_trimp", "strength_min"]] = 0.0
        day.loc[rest, "load_basis"] = REST_DAY_BASIS
    return day


class PMDataLoader:
    """PMData: one folder of Fitbit/PMSys files per participant (p01..p16)."""

    source = "pmdata"

    def claims(self, path: Path) -> bool:
        name = path.name
        if name == OVERVIEW_NAME:
            return True
        if name in CSV_HEADERS:
            return tuple(header_of(path)) == CSV_HEADERS[name]
        if name in JSON_SIGNATURES:
            first_line = ",".join(header_of(path))
            return first_line.startswith("[") and (
                first_line == "[" or all(s in first_line for s in JSON_SIGNATURES[name]))
        return False

    def why_no_rows(self, files: list[Path]) -> str | None:
        """The words for a folder whose PMData files gave no daily rows (load_exports)."""
        if {f.name for f in files} == {OVERVIEW_NAME}:
            return ("PMData's participant overview workbook (age and sex of each participant), "
                    "which has no daily data: give a participant's folder (p01..p16) or the "
                    "dataset's folder that holds them")
        return None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        by_name = {f.name: f for f in files}
        unused = sorted(UNUSED_FILES & set(by_name))
        if unused:
            log.add(files[0].parent, "info", f"PMData files recognised and not used: "
                                             f"{', '.join(unused)}", len(unused))
        parts = {name: READERS[name](by_name[name], log) for name in READERS if name in by_name}
        if not parts:
            # e.g. the dataset's `all/` folder, which holds only the demographics workbook
            return pd.DataFrame(columns=["user_id", "date"])

        day = pd.concat(list(parts.values()), axis=1, join="outer", sort=True)
        if "srpe.csv" in parts and len(parts["srpe.csv"]):
            # the span of the sRPE log is filled day by day, rest days included
            logged = parts["srpe.csv"].index
            span = pd.date_range(logged.min(), logged.max(), freq="D", name="date")
            day = day.reindex(day.index.union(span))
        for column in ("rhr_bpm", "rhr_from_score", "load_trimp", "strength_min", *ZONE_COLUMNS):
            if column not in day.columns:
                day[column] = np.nan
        day["load_basis"] = None

        from_score = day["rhr_bpm"].isna() & day["rhr_from_score"].notna()
        if from_score.any():
            log.add(by_name["sleep_score.csv"], "info", "resting heart rate taken from the "
                    "sleep score (Fitbit's value of the day before the sleep ended) on days "
                    "resting_heart_rate.json has none", int(from_score.sum()))
            day.loc[from_score, "rhr_bpm"] = day.loc[from_score, "rhr_from_score"]
        day = combine_load(day).drop(columns=["rhr_from_score"])

        values = day.drop(columns=["load_basis"])
        empty = values.isna().all(axis=1)
        day = day[~empty]

        day.index.name = "date"
        out = day.reset_index()
        out.insert(0, "user_id", f"pmdata-{user_hint}")

        overview = find_overview(files)
        if overview is None:
            log.add(files[0].parent, "info", f"{OVERVIEW_NAME} not found; age and sex unknown")
        else:
            people = read_overview(overview)
            if user_hint in people.index:
                out["age"] = people.at[user_hint, "age"]
                out["sex"] = people.at[user_hint, "sex"]
            else:
                log.add(overview, "info", f"participant {user_hint!r} not listed; age and sex "
                                          f"unknown")
        return out


LOADER = PMDataLoader()
