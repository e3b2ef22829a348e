"""Garmin Connect data → daily rows (source `garmin`, `user_id = f"garmin-{folder}"`).

Two layouts are read; both have one person per folder.

1. **CSV pulled from the Garmin Connect API**: `garmin_daily.csv`-style daily summaries
   (`date`, `restingHeartRate`, `sleepingSeconds`, ...) and `garmin_activities.csv`-style activity
   lists (`start_time_local`, `type`, `duration` in s, `avg_hr`, `max_hr`, `tss`, ...).
2. **Daily markdown notes** written by a Garmin sync script: `wellness-YYYY-MM-DD.md` (sections
   `## Sleep`, `## Heart Rate Variability (HRV)`, `## Resting Heart Rate`, `## Training
   Readiness`, ... with `- Key: value unit` lines) and `activity-YYYY-MM-DD-<id>-<name>.md`
   (`- Date:`, `- Type:`, `- Duration: N min`, `- Average heart rate: N bpm`, ...).
   The parser reads `- Key: value` lines under `##` headings (several `Key: value` pairs may
   share a line, separated by commas). A missing section or field, `None`, or a "No ... data
   available" line is NaN; a value that is present but not a number in the expected unit is a
   `DataError` naming the file and the field.

Physiology (the date is the wake day, as Garmin files it):

- HRV "Last night average" (ms) is Garmin's overnight mean of RMSSD → `hrv_rmssd_ms`.
- resting HR (bpm) → `rhr_bpm`. Total sleep (min, or s in the CSV) → `sleep_min`; a night of
  0 minutes with every stage 0 means "no sleep recorded" and becomes NaN (`repair` note).
- deep/REM % = stage minutes / total sleep × 100; efficiency = asleep / (asleep + awake) × 100
  (Garmin reports no time in bed; awake minutes inside the sleep window stand in for it).
- Garmin *Training Readiness* (0-100) → `recovery_pct` where the note gives a score: like WHOOP
  recovery it combines overnight HRV, sleep and recent load, but it is Garmin's own algorithm.
  Body Battery is an energy gauge driven by stress and activity through the day, not a
  morning recovery score, so it is not used.

Load (DESIGN §4). Garmin gives no HR-zone minutes here, so each activity's Edwards
TRIMP-equivalent is estimated from its mean heart rate:

    load_trimp = duration_min × edwards_zone_weight(avg_hr / HRmax)

where the zone weight is 1-5 for 50-60 %, ..., 90-100 % of HRmax and 0 below 50 % (Edwards
1993). HRmax is the athlete's highest activity max HR in the export (an `info` note gives it):
an observed maximum underestimates the true one if they never went all out, which shifts
sessions up a zone. Using the mean HR instead of the time in each zone underestimates
intervals (TRIMP is convex in HR); `load_basis = "avg_hr_edwards"` marks it. An activity without
heart rate but with a TSS (power-based cycling) uses `load.tss_to_trimp` (`load_basis="tss"`);
one with neither has no estimate and is left out of its day's sum (a `repair` note counts them;
a day with only such activities gets NaN). `strength_min` sums the minutes of activities whose
type is resistance work (`load.is_strength_activity`). Load is filed on the activity's local
start date.

A day with no measured value at all (a note saying "no data" in every section) gives no row.
A day the watch was worn (a daily summary with a measured value) between the first and the
last activity of the export, with no activity, is a measured rest day: `load_trimp = 0`,
`strength_min = 0`, `load_basis = "no_activity"`. Outside that span load is NaN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import is_strength_activity, tss_to_trimp
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

SECONDS_PER_MINUTE = 60.0

DAILY_COLUMNS = ("date", "restingHeartRate", "sleepingSeconds")
ACTIVITY_COLUMNS = ("start_time_local", "type", "duration", "avg_hr", "max_hr")
WELLNESS_NAME = re.compile(r"^wellness-(\d{4}-\d{2}-\d{2})\.md$", re.IGNORECASE)
ACTIVITY_NAME = re.compile(r"^activity-(\d{4}-\d{2}-\d{2})-.*\.md$", re.IGNORECASE)

EMPTY_VALUES = {"", "none", "null", "n/a", "na", "-", "--", "nan"}

# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

MarkdownFields = dict[tuple[str, str], str]
"""(section, key) → raw value text, both lower-cased and stripped; section '' before any `##`."""

_PAIR = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*([A-Za-z%/]*)$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*[A-Za-z%/]*$")
_HOURS_MINUTES = re.compile(r"^(\d+)\s*h(?:ours?)?\s*(?:(\d+)\s*m(?:in)?)?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d+):(\d{2})(?::(\d{2}))?$")


def parse_markdown_fields(text: str) -> tuple[str, MarkdownFields]:
    """The `# title` and the `- Key: value` fields of a markdown note.

    A bullet with several comma-separated `Key: value` pairs gives each pair (`- Deep: 97 min,
    Light: 283 min`); a bullet without a colon ("No HRV data available") gives nothing. A key
    seen twice in one section keeps its first value.
    """
    title = ""
    section = ""
    fields: MarkdownFields = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("## "):
            section = stripped[3:].strip().lower()
        elif stripped.startswith("# ") and not title:
            title = stripped[2:].strip()
        elif stripped.startswith(("- ", "* ")):
            body = stripped[2:]
            parts = body.split(",")
            pairs = [_PAIR.match(p) for p in parts]
            if len(parts) > 1 and not all(pairs):
                # A comma inside a single value ("Tempe, AZ"): one pair for the whole bullet.
                pairs = [_PAIR.match(body)]
            for m in pairs:
                if m:
                    fields.setdefault((section, m.group(1).lower()), m.group(2))
    return title, fields


def find_field(fields: MarkdownFields, sections: Iterable[str],
               keys: Iterable[str]) -> tuple[str, str] | None:
    """The first (section, key) present whose section contains one of `sections` (substring,
    lower case; '' matches any) and whose key equals one of `keys`."""
    keys = tuple(keys)
    sections = tuple(sections)
    for key in keys:
        for sec_part in sections:
            for (sec, k) in fields:
                if k == key and sec_part in sec:
                    return sec, k
    return None


def quantity(raw: str, units: tuple[str, ...], path: Path, what: str) -> float:
    """A number written with one of `units` ('' = no unit). Empty/None is NaN; anything else
    is a `DataError` naming the file and the field.

    Thousands separators (`12,345`) are accepted; minutes (`'min'` in `units`) also accept
    `7h 38m`, `7 h 38 min` and `H:MM[:SS]`.
    """
    text = raw.strip()
    if text.lower() in EMPTY_VALUES or text.lower().split(" ")[0] in EMPTY_VALUES:
        return np.nan
    if _THOUSANDS.match(text):  # "12,345 steps"
        text = text.replace(",", "")
    m = _NUMBER.match(text)
    if m and m.group(2).lower() in units:
        return float(m.group(1))
    if "min" in units:
        hm = _HOURS_MINUTES.match(text)
        if hm:
            return 60.0 * float(hm.group(1)) + float(hm.group(2) or 0)  # h → min
        clock = _CLOCK.match(text)
        if clock:
            h, mnt, sec = clock.groups()
            if sec is None:  # H:MM
                return 60.0 * float(h) + float(mnt)
            return 60.0 * float(h) + float(mnt) + float(sec) / 60.0  # H:MM:SS → min
    shown = " or ".join(repr(u) if u else "no unit" for u in units)
    raise DataError(path, f"{what}: cannot read {raw!r} as a number (expected {shown})")


def _field_value(fields: MarkdownFields, path: Path, sections: tuple[str, ...],
                 keys: tuple[str, ...], units: tuple[str, ...]) -> float:
    where = find_field(fields, sections, keys)
    if where is None:
        return np.nan
    return quantity(fields[where], units, path, f"'{where[1]}' in section '{where[0] or '-'}'")


def read_wellness_markdown(path: Path, log: NoteLog) -> dict[str, float | pd.Timestamp]:
    """One `wellness-YYYY-MM-DD.md` note → one daily record (canonical names, plus `worn`).

    `worn` is True when the note has any measured value (HRV, resting HR, stress or steps),
    i.e. the watch was on that day.
    """
    title, fields = parse_markdown_fields(read_text(path, log))
    named = WELLNESS_NAME.match(path.name)
    in_title = re.search(r"\d{4}-\d{2}-\d{2}", title)
    if in_title and named and in_title.group(0) != named.group(1):
        raise DataError(path, f"the title says {in_title.group(0)} but the file name says "
                              f"{named.group(1)}")
    stamp = in_title.group(0) if in_title else (named.group(1) if named else None)
    if stamp is None:
        raise DataError(path, "no date in the title or the file name")
    try:
        date = pd.Timestamp(stamp)
    except ValueError:
        raise DataError(path, f"{stamp!r} is not a date") from None

    def value(sections: tuple[str, ...], keys: tuple[str, ...], units: tuple[str, ...]) -> float:
        return _field_value(fields, path, sections, keys, units)

    sleep = ("sleep",)
    total = value(sleep, ("total sleep", "sleep duration"), ("min",))
    deep = value(sleep, ("deep",), ("min",))
    light = value(sleep, ("light",), ("min",))
    rem = value(sleep, ("rem",), ("min",))
    awake = value(sleep, ("awake",), ("min",))
    hrv = value(("hrv", "heart rate variability"), ("last night average", "last night avg",
                                                    "overnight average"), ("ms",))
    rhr = value(("resting",), ("resting hr", "resting heart rate"), ("bpm", ""))
    readiness = value(("training readiness",), ("score", "training readiness", "readiness"),
                      ("", "%"))
    stress = value(("stress",), ("average stress level",), ("",))
    steps = value(("steps",), ("total steps", "steps"), ("", "steps"))

    no_sleep = total == 0 and all(np.nan_to_num(x) == 0 for x in (deep, light, rem, awake))
    if no_sleep:
        total = deep = rem = awake = np.nan
    total_or_nan = total if total and total > 0 else np.nan
    return {
        "date": date,
        "hrv_rmssd_ms": hrv,  # ms
        "rhr_bpm": rhr,  # bpm
        "sleep_min": total,  # min
        "deep_pct": deep / total_or_nan * 100.0,
        "rem_pct": rem / total_or_nan * 100.0,
        "sleep_efficiency_pct": total / (total + awake) * 100.0 if total + awake > 0 else np.nan,
        "recovery_pct": readiness,  # Training Readiness 0-100 → %
        "worn": bool(np.isfinite([hrv, rhr, stress, steps]).any()),
        "_no_sleep": bool(no_sleep),
    }


def read_activity_markdown(path: Path, log: NoteLog) -> dict[str, object]:
    """One `activity-*.md` note → one activity record (start, date, type, minutes, HR, TSS)."""
    title, fields = parse_markdown_fields(read_text(path, log))
    start: pd.Timestamp | None = None
    where = find_field(fields, ("",), ("date", "start", "start time"))
    if where is not None and fields[where].strip().lower() not in EMPTY_VALUES:
        try:
            start = pd.Timestamp(fields[where])
        except ValueError:
            raise DataError(path, f"'{where[1]}': {fields[where]!r} is not a date/time") from None
    if start is None:
        named = ACTIVITY_NAME.match(path.name)
        if not named:
            raise DataError(path, "no start date in the note or the file name")
        start = pd.Timestamp(named.group(1))
    if start.tzinfo is not None:  # keep the local wall clock as written
        start = start.tz_localize(None)
    kind = fields.get(("", "type")) or title

    def value(keys: tuple[str, ...], units: tuple[str, ...]) -> float:
        return _field_value(fields, path, ("",), keys, units)

    return {
        "start": start,
        "type": kind,
        "minutes": value(("duration", "moving time"), ("min",)),
        "avg_hr": value(("average heart rate", "avg heart rate", "avg hr"), ("bpm", "")),
        "max_hr": value(("max heart rate", "maximum heart rate", "max hr"), ("bpm", "")),
        "tss": value(("tss", "training stress score"), ("",)),
    }


# ---------------------------------------------------------------------------------------------
# CSV (Garmin Connect API pulls)
# ---------------------------------------------------------------------------------------------

def _zero_is_missing(values: pd.Series) -> pd.Series:
    """Garmin's API pull writes 0.0 for a value it did not have (no HR strap, no power)."""
    return values.where(values != 0)


def read_daily_csv(path: Path, log: NoteLog) -> pd.DataFrame:
    """A `garmin_daily.csv`-style summary → daily records (canonical names, plus `worn`)."""
    raw = read_csv(path, log)
    require_columns(raw, list(DAILY_COLUMNS), path)
    rhr = _zero_is_missing(to_number(raw, "restingHeartRate", path))  # bpm
    sleep_s = to_number(raw, "sleepingSeconds", path)
    no_sleep = sleep_s == 0
    if no_sleep.any():
        log.add(path, "repair", "sleepingSeconds = 0 read as no sleep recorded (NaN)",
                int(no_sleep.sum()))
    steps = to_number(raw, "totalSteps", path) if "totalSteps" in raw.columns else rhr * np.nan
    return pd.DataFrame({
        "date": to_datetime(raw, "date", path).dt.normalize(),
        "rhr_bpm": rhr,
        "sleep_min": sleep_s.mask(no_sleep) / SECONDS_PER_MINUTE,  # s → min
        "worn": (rhr.notna() | (steps > 0)).to_numpy(),
    })


def read_activities_csv(path: Path, log: NoteLog) -> pd.DataFrame:
    """A `garmin_activities.csv`-style list → activity records (duration s → min)."""
    raw = read_csv(path, log)
    require_columns(raw, list(ACTIVITY_COLUMNS), path)
    start = to_datetime(raw, "start_time_local", path, required=True)
    tss = (to_number(raw, "tss", path) if "tss" in raw.columns
           else pd.Series(np.nan, index=raw.index))
    return pd.DataFrame({
        "start": start,
        "type": raw["type"].astype("object"),
        "minutes": to_number(raw, "duration", path) / SECONDS_PER_MINUTE,  # s → min
        "avg_hr": _zero_is_missing(to_number(raw, "avg_hr", path)),  # bpm
        "max_hr": _zero_is_missing(to_number(raw, "max_hr", path)),  # bpm
        "tss": _zero_is_missing(tss),
    })


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------

def edwards_zone_weight(hr_fraction_of_max: np.ndarray) -> np.ndarray:
    """Edwards (1993) zone weight for a heart rate given as a fraction of HRmax.

    0 below 0.5; 1 for [0.5, 0.6), 2 for [0.6, 0.7), ..., 5 for 0.9 and above. NaN stays NaN.
    """
    f = np.asarray(hr_fraction_of_max, dtype=float)
    # Rounded before flooring so that 0.6 (0.1 × 10 = 0.999... in binary) lands in zone 2.
    weight = np.clip(np.floor(np.round((f - 0.5) * 10.0, 9)) + 1.0, 0.0, 5.0)
    return np.where(np.isnan(f), np.nan, np.where(f < 0.5, 0.0, weight))


def daily_load(activities: pd.DataFrame, where: Path, log: NoteLog) -> pd.DataFrame:
    """Per-activity TRIMP estimates (see module doc) summed per local start date.

    Returns columns `date`, `load_trimp`, `load_basis`, `strength_min` and `activities` (their
    number), one row per date that has at least one activity.
    """
    acts = activities.copy()
    hr_max = float(acts["max_hr"].max()) if acts["max_hr"].notna().any() else np.nan
    if np.isfinite(hr_max):
        log.add(where, "info", f"HRmax for the TRIMP estimate = highest activity max HR, "
                               f"{hr_max:g} bpm")
    by_hr = acts["minutes"] * edwards_zone_weight(acts["avg_hr"] / hr_max)
    by_tss = pd.Series(tss_to_trimp(acts["tss"].to_numpy()), index=acts.index)
    acts["trimp"] = by_hr.where(by_hr.notna(), by_tss)
    acts["basis"] = np.where(by_hr.notna(), "avg_hr_edwards",
                             np.where(by_tss.notna(), "tss", None))
    unknown = acts["trimp"].isna()
    if unknown.any():
        kinds = acts.loc[unknown, "type"].fillna("?").value_counts().to_dict()
        log.add(where, "repair", f"activities with neither heart rate nor TSS have no load "
                                 f"estimate and are left out of their day's load_trimp: {kinds}",
                int(unknown.sum()))
    acts["strength"] = np.where([is_strength_activity(t) for t in acts["type"]],
                                acts["minutes"].fillna(0.0), 0.0)
    acts["date"] = acts["start"].dt.normalize()

    def basis(values: pd.Series) -> str | None:
        used = sorted(set(values.dropna()))
        return "+".join(used) if used else None

    return acts.groupby("date", sort=True).agg(
        load_trimp=("trimp", lambda s: s.sum() if s.notna().any() else np.nan),
        load_basis=("basis", basis),
        strength_min=("strength", "sum"),
        activities=("type", "size"),
    ).reset_index()


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------

def _kind(path: Path) -> str | None:
    """Which Garmin layout a file is: 'wellness_md', 'activity_md', 'daily_csv',
    'activities_csv', or None."""
    suffix = path.suffix.lower()
    if suffix == ".md":
        first = " ".join(header_of(path)).lower()
        if WELLNESS_NAME.match(path.name) and first.startswith("# wellness"):
            return "wellness_md"
        if ACTIVITY_NAME.match(path.name) and first.startswith("# "):
            return "activity_md"
        return None
    if suffix != ".csv":
        return None
    header = header_of(path)
    if all(c in header for c in DAILY_COLUMNS):
        return "daily_csv"
    if all(c in header for c in ACTIVITY_COLUMNS) and "aerobic_te" in header:
        return "activities_csv"
    return None


class GarminLoader:
    """Garmin Connect CSV pulls and daily markdown notes (see module doc)."""

    source = "garmin"

    def claims(self, path: Path) -> bool:
        return _kind(path) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0].parent if len(files) > 1 else files[0]
        days: list[pd.DataFrame] = []
        wellness: list[dict] = []
        activities: list[pd.DataFrame] = []
        activity_notes: list[dict] = []
        for path in sorted(files, key=lambda p: p.name):
            kind = _kind(path)
            if kind == "wellness_md":
                wellness.append(read_wellness_markdown(path, log))
            elif kind == "activity_md":
                activity_notes.append(read_activity_markdown(path, log))
            elif kind == "daily_csv":
                days.append(read_daily_csv(path, log))
            elif kind == "activities_csv":
                activities.append(read_activities_csv(path, log))
        if wellness:
            frame = pd.DataFrame(wellness)
            n_no_sleep = int(frame.pop("_no_sleep").sum())
            if n_no_sleep:
                log.add(where, "repair", "notes with 0 min total sleep and every stage 0 read "
                                         "as no sleep recorded (NaN)", n_no_sleep)
            days.append(frame)
        if activity_notes:
            activities.append(pd.DataFrame(activity_notes))

        daily = pd.concat(days, ignore_index=True) if days else pd.DataFrame(
            {"date": pd.Series(dtype="datetime64[ns]"), "worn": pd.Series(dtype=bool)})
        dup = daily.duplicated("date")
        if dup.any():
            log.add(where, "repair", "days summarised in more than one file: merged, the first "
                                     "file in name order wins per value", int(dup.sum()))
            daily = daily.groupby("date", sort=True, as_index=False).first()

        if activities:
            acts = pd.concat(activities, ignore_index=True)
            repeated = acts.duplicated(["start", "type", "minutes"])
            if repeated.any():
                log.add(where, "repair", "activities listed twice (same start, type and "
                                         "duration) counted once", int(repeated.sum()))
                acts = acts[~repeated]
            load = daily_load(acts, where, log)
            first, last = acts["start"].min().normalize(), acts["start"].max().normalize()
            frame = daily.merge(load, on="date", how="outer", sort=True)
            rest = (frame["activities"].isna()
                    & frame["worn"].fillna(False).astype(bool)
                    & frame["date"].between(first, last))
            frame.loc[rest, "load_trimp"] = 0.0  # a worn day with no activity: measured rest
            frame.loc[rest, "strength_min"] = 0.0
            frame.loc[rest, "load_basis"] = "no_activity"
            frame = frame.drop(columns="activities")
        else:
            frame = daily
        frame = frame.drop(columns="worn")
        empty = frame.drop(columns=["date", "load_basis"], errors="ignore").isna().all(axis=1)
        if empty.any():
            log.add(where, "info", "days with no measured value at all (watch not worn or not "
                                   "synced) give no row", int(empty.sum()))
            frame = frame[~empty]
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame.reset_index(drop=True)


LOADER = GarminLoader()
