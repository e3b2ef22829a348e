"""Activity lists with a mean heart rate (and no zone minutes) → daily load rows, shared by the
Garmin Connect CSV, Strava, Apple Health and FIT loaders.

An *activity* frame has the columns `start` (local start, `datetime64`), `type`, `minutes`,
`avg_hr`, `max_hr` (bpm) and `tss` (NaN where none). Each activity's load is the Edwards
TRIMP-equivalent estimated from its mean heart rate as in `garmin.daily_load` (minutes × the
Edwards zone weight of avg HR / HRmax, `load_basis = "avg_hr_edwards"`; HRmax = the highest
activity max HR of the export, noted), or `load.tss_to_trimp` of its TSS where it has no heart
rate. An activity with neither leaves its day's load unknown (noted).

Rest days (load 0, `load_basis = "no_activity"`) are added only where the caller says the log
is complete: the days without an activity inside `rest_spans` that are also in `rest_days_only`
when that is given (a day the watch was worn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.loaders._sessions import REST_DAY_BASIS
from physiology_model.data.loaders.garmin import daily_load
from physiology_model.data.table import NoteLog

ACTIVITY_COLUMNS = ("start", "type", "minutes", "avg_hr", "max_hr", "tss")


def rest_spans(dates: pd.Series | pd.DatetimeIndex, gap_days: int
               ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Stretches of a log whose consecutive activity days are at most `gap_days` apart."""
    days = pd.DatetimeIndex(sorted({pd.Timestamp(d).normalize() for d in dates}))
    if days.empty:
        return []
    spans = []
    first = prev = days[0]
    for day in days[1:]:
        if (day - prev).days > gap_days:
            spans.append((first, prev))
            first = day
        prev = day
    spans.append((first, prev))
    return spans


def activity_days(acts: pd.DataFrame, where: Path, log: NoteLog, *,
                  rest_spans: list[tuple[pd.Timestamp, pd.Timestamp]] = (),
                  rest_days_only: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Daily `date, load_trimp, load_basis, strength_min` from activities (module doc)."""
    acts = acts[list(ACTIVITY_COLUMNS)].copy()
    acts["start"] = pd.to_datetime(acts["start"])
    repeated = acts.duplicated(["start", "type", "minutes"])
    if repeated.any():
        log.add(where, "repair", "activities listed twice (same start, type and duration) "
                                 "counted once", int(repeated.sum()))
        acts = acts[~repeated]
    if acts.empty:
        return pd.DataFrame(columns=["date", "load_trimp", "load_basis", "strength_min"])
    load = daily_load(acts.reset_index(drop=True), where, log).drop(columns="activities")
    days = set()
    for first, last in rest_spans:
        days.update(pd.date_range(first, last, freq="D"))
    rest = pd.DatetimeIndex(sorted(days)).difference(pd.DatetimeIndex(load["date"]))
    if rest_days_only is not None:
        rest = rest.intersection(pd.DatetimeIndex(rest_days_only))
    if len(rest):
        log.add(where, "info", "days without an activity inside the log's span are rest days "
                               "(load 0)", len(rest))
        load = pd.concat([load, pd.DataFrame({
            "date": rest, "load_trimp": 0.0, "load_basis": REST_DAY_BASIS,
            "strength_min": 0.0})], ignore_index=True)
    load["load_trimp"] = load["load_trimp"].astype(float)
    return load.sort_values("date", kind="stable").reset_index(drop=True).assign(
        strength_min=lambda f: f["strength_min"].astype(float).where(
            f["strength_min"].notna(), np.nan))
