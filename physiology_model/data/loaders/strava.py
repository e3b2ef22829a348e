"""Strava bulk export `activities.csv` → daily load rows (source `strava`,
`user_id = f"strava-{folder}"`). Load only: Strava keeps no daily physiology.

Strava's "Download your data" archive has `activities.csv`, one row per activity. Two header
layouts are read, both by column *position* of the first column with a name, because names
repeat:

1. **The short layout** (older archives, 11-12 columns): `Activity ID, Activity Date, Activity
   Name, Activity Type, Activity Description, Elapsed Time, Distance, Relative Effort, Commute,
   Activity Gear, Filename`; no heart rate columns, so no load can be estimated from it (an
   `info` note says so) and its activities only mark training days.
2. **The full layout** (archives since about 2021, 80-100 columns): the short block (with `Max
   Heart Rate` after `Distance`) followed by a detail block that repeats `Elapsed Time`,
   `Distance`, `Max Heart Rate`, `Relative Effort` and `Commute` with more digits (the first
   `Distance` is km, the second m) and adds `Moving Time`, `Average Heart Rate`, ...

Rules:

- `Activity Date` is written in English, `Jun 4, 2024, 6:13:47 AM`, and is **UTC** (Strava's
  export convention; there is no time-zone column). The day is the UTC date: an activity near
  midnight may land on the neighbouring local day (an `info` note says so). A date in another
  locale (`4 juin 2024, 06:13:47`) or format is one `DataError` naming the file: re-export with
  the Strava language set to English.
- minutes = `Moving Time` (s) / 60, else `Elapsed Time` (s) / 60; heart rate in bpm.
- load: the Edwards TRIMP-equivalent from the mean heart rate (`_activities`, as for Garmin);
  activities without heart rate have no load estimate. Strava's `Relative Effort` is a
  heart-rate score on Strava's own scale with no published conversion, so it is not used.
- the export is the athlete's complete uploaded record: days without an activity inside
  stretches where activities are at most `REST_GAP_DAYS` apart are rest days (load 0).
- a file whose header has no `Activity Date`/`Activity Type` but is a Strava *API* list
  (`start_date_local`, `moving_time`) is read by the Garmin Connect loader, not here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.loaders._activities import activity_days, rest_spans
from physiology_model.data.loaders._io import header_of, read_text
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SIGNATURE = ("Activity ID", "Activity Date", "Activity Name", "Activity Type")
DATE_FORMAT = "%b %d, %Y, %I:%M:%S %p"
"""`Jun 4, 2024, 6:13:47 AM` (English month abbreviation, 12-hour clock)."""
REST_GAP_DAYS = 14
SECONDS_PER_MINUTE = 60.0


def _first(header: list[str], name: str) -> int | None:
    return header.index(name) if name in header else None


def read_activities(path: Path, log: NoteLog) -> pd.DataFrame:
    """activities.csv → the `_activities` frame (start in UTC as written)."""
    text = read_text(path, log)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(path, f"not a readable CSV file ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    header = [c.strip() for c in rows[0]]
    missing = [c for c in SIGNATURE if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {missing}: not a Strava activities.csv")
    body = rows[1:]
    if not body:
        raise DataError(path, "header only, no activities")
    if len(body[-1]) < len(header) and not text.endswith(("\n", "\r")):
        log.add(path, "repair", "last line is cut short; dropped", 1)
        body = body[:-1]
    short = [i for i, r in enumerate(body) if len(r) != len(header)]
    if short:
        i = short[0]
        raise DataError(path, f"data row {i + 1} has {len(body[i])} fields but the header has "
                              f"{len(header)}")

    def column(name: str) -> list[str] | None:
        at = _first(header, name)
        return None if at is None else [r[at].strip() for r in body]

    dates = column("Activity Date")
    start = pd.to_datetime(pd.Series(dates), format=DATE_FORMAT, errors="coerce")
    if start.isna().any():
        i = int(start.isna().to_numpy().nonzero()[0][0])
        raise DataError(path, f"'Activity Date' {dates[i]!r} in data row {i + 1} is not "
                              f"Strava's English date (e.g. 'Jun 4, 2024, 6:13:47 AM'); export "
                              f"again with the Strava language set to English")

    def number(name: str) -> pd.Series:
        values = column(name)
        if values is None:
            return pd.Series(np.nan, index=range(len(body)))
        out = pd.to_numeric(pd.Series(values).replace("", None), errors="coerce")
        bad = pd.Series([v != "" for v in values]) & out.isna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(path, f"column {name!r}: {values[i]!r} in data row {i + 1} is not a "
                                  f"number")
        return out.astype(float)

    seconds = number("Moving Time")
    if seconds.isna().all():
        seconds = number("Elapsed Time")
    avg_hr, max_hr = number("Average Heart Rate"), number("Max Heart Rate")
    if column("Average Heart Rate") is None:
        log.add(path, "info", "short Strava layout without heart rate: activities mark "
                              "training days but their load cannot be estimated")
    near_midnight = ((start.dt.hour >= 22) | (start.dt.hour < 2)).sum()
    if near_midnight:
        log.add(path, "info", "Activity Date is UTC; activities between 22:00 and 02:00 UTC may "
                              "belong to the neighbouring local day", int(near_midnight))
    return pd.DataFrame({
        "start": start,
        "type": column("Activity Type"),
        "minutes": seconds / SECONDS_PER_MINUTE,  # s → min
        "avg_hr": avg_hr.where(avg_hr > 0),
        "max_hr": max_hr.where(max_hr > 0),
        "tss": np.nan,
    })


class StravaLoader:
    """Strava bulk-export activities.csv, short or full layout (module doc)."""

    source = "strava"

    def claims(self, path: Path) -> bool:
        if path.suffix.lower() != ".csv":
            return False
        header = header_of(path)
        return all(c in header for c in SIGNATURE)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0].parent if len(files) > 1 else files[0]
        acts = pd.concat([read_activities(p, log) for p in sorted(files)], ignore_index=True)
        frame = activity_days(acts, where, log,
                              rest_spans=rest_spans(acts["start"], REST_GAP_DAYS))
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame


LOADER = StravaLoader()
