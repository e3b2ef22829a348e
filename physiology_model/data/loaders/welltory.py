"""Welltory COVID-19 and wearables open data → daily rows (source `welltory`).

The files hold many people, keyed by a 10-character `user_code`; `user_id =
f"welltory-{user_code}"` (already short, unique and stable, so it is kept whole).

**These are spot measurements, not nightly ones.** Welltory users take an HRV reading with the
phone camera (PPG) or a chest strap whenever they choose, often several times a day and on few
days. A Welltory `hrv_rmssd_ms` is therefore one short daytime or morning recording, noisier and
not comparable to the whole-night RMSSD of WHOOP/Oura/Garmin; filter on `source == "welltory"`
where that matters.

Files read (others in the dataset are not claimed and show up as `ignored` notes):

- `hrv_measurements.csv`: one row per user-day from the measurements taken that day (local date
  of `measurement_datetime`, which is local wall-clock time: it agrees with the app's
  `time_of_day` label). The day's value is the earliest measurement labelled `morning`, or the
  earliest of the day when none is (a `repair` note counts the measurements this leaves out).
  `rmssd` is in ms → `hrv_rmssd_ms`. Its `bpm` is a spot heart rate taken at any time of day, not
  a resting heart rate, so it is not used for `rhr_bpm`. The self-ratings (`how_feel` -2..2) are
  not used: `0` is also what an unanswered rating holds, so neutral and missing cannot be told
  apart.
- `wearables.csv` (daily summaries synced from a wearable; sparse): `resting_pulse` (bpm) →
  `rhr_bpm`; `average_spo2_value` is a 0-1 fraction → × 100 → `spo2_pct`.
- `sleep.csv`: `sleep_duration` (s) → `sleep_min` on the file's `day` (the wake day). A user-day
  with several sleeps keeps the longest (in this file they are mostly the same night exported
  twice with shifted clock times); `deep_pct`/`rem_pct` are computed only where light, deep and
  REM durations are all given, as shares of their sum.
- `participants.csv`: `gender` f/m → `sex`; `age_range` "35-44" → `age` = band mid-point (39.5).

A user-day gets a row only when at least one canonical value is known.
"""

from __future__ import annotations

import re
from pathlib import Path

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
FRACTION_TO_PCT = 100.0

HRV_COLUMNS = ("user_code", "rr_code", "measurement_datetime", "rmssd")
WEARABLE_COLUMNS = ("user_code", "day", "resting_pulse")
SLEEP_COLUMNS = ("user_code", "day", "sleep_begin", "sleep_end", "sleep_duration")
PARTICIPANT_COLUMNS = ("user_code", "gender", "age_range")

SEX = {"f": "female", "female": "female", "m": "male", "male": "male"}
OPEN_BAND_WIDTH_YEARS = 10.0
"""Width assumed for an open-ended age band such as "65+" (its mid-point is then 70)."""
# (No open band occurs in the shipped file; this only keeps a newer export readable.)

_BAND = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_OPEN_BAND = re.compile(r"^\s*(\d+)\s*\+\s*$")


def _kind(header: list[str]) -> str | None:
    for kind, columns in (("hrv", HRV_COLUMNS), ("wearables", WEARABLE_COLUMNS),
                          ("sleep", SLEEP_COLUMNS), ("participants", PARTICIPANT_COLUMNS)):
        if all(c in header for c in columns):
            return kind
    return None


def _user_ids(codes: pd.Series, path: Path) -> pd.Series:
    if codes.isna().any():
        first = int(codes.isna().to_numpy().nonzero()[0][0])
        raise DataError(path, f"data row {first + 1} has no user_code")
    return "welltory-" + codes.astype(str).str.strip()


def age_band_midpoint(band: str | None, path: Path) -> float:
    """Years at the middle of an age band: "25-34" → 29.5, "65+" → 70; None → NaN."""
    if band is None:
        return np.nan
    m = _BAND.match(band)
    if m:
        return (float(m.group(1)) + float(m.group(2))) / 2.0
    m = _OPEN_BAND.match(band)
    if m:
        return float(m.group(1)) + OPEN_BAND_WIDTH_YEARS / 2.0
    raise DataError(path, f"age_range {band!r} is not a band like '25-34' or '65+'")


def read_hrv(path: Path, log: NoteLog) -> pd.DataFrame:
    """Spot HRV measurements → one row per user-day (earliest morning reading, see module doc)."""
    raw = read_csv(path, log)
    require_columns(raw, list(HRV_COLUMNS), path)
    when = to_datetime(raw, "measurement_datetime", path, required=True)
    label = (raw["time_of_day"].astype("string").str.strip().str.lower()
             if "time_of_day" in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="string"))
    frame = pd.DataFrame({
        "user_id": _user_ids(raw["user_code"], path),
        "date": when.dt.normalize(),
        "_when": when,
        "_not_morning": (label != "morning").fillna(True).astype(bool),
        "hrv_rmssd_ms": to_number(raw, "rmssd", path),  # ms already
    })
    frame = frame.sort_values(["user_id", "date", "_not_morning", "_when"], kind="stable")
    extra = frame.duplicated(["user_id", "date"])
    if extra.any():
        log.add(path, "repair", "several measurements on one user-day: the earliest 'morning' "
                                "one is kept (else the earliest)", int(extra.sum()))
    return frame[~extra].drop(columns=["_when", "_not_morning"]).reset_index(drop=True)


def read_wearables(path: Path, log: NoteLog) -> pd.DataFrame:
    """Daily wearable summaries → resting HR and SpO2 per user-day."""
    raw = read_csv(path, log)
    require_columns(raw, list(WEARABLE_COLUMNS), path)
    spo2 = (to_number(raw, "average_spo2_value", path) * FRACTION_TO_PCT  # 0-1 → %
            if "average_spo2_value" in raw.columns else pd.Series(np.nan, index=raw.index))
    frame = pd.DataFrame({
        "user_id": _user_ids(raw["user_code"], path),
        "date": to_datetime(raw, "day", path).dt.normalize(),
        "rhr_bpm": to_number(raw, "resting_pulse", path),  # bpm
        "spo2_pct": spo2,
    })
    dup = frame.duplicated(["user_id", "date"])
    if dup.any():
        log.add(path, "repair", "user-days listed twice: merged, the first row wins per value",
                int(dup.sum()))
        frame = frame.groupby(["user_id", "date"], sort=True, as_index=False).first()
    return frame


def read_sleep(path: Path, log: NoteLog) -> pd.DataFrame:
    """Sleep records → sleep minutes (and stage shares where complete) per user-day."""
    raw = read_csv(path, log)
    require_columns(raw, list(SLEEP_COLUMNS), path)

    def seconds(column: str) -> pd.Series:
        return (to_number(raw, column, path) if column in raw.columns
                else pd.Series(np.nan, index=raw.index))

    total_s = seconds("sleep_duration")
    light, deep, rem = (seconds("sleep_light_duration"), seconds("sleep_deep_duration"),
                        seconds("sleep_rem_duration"))
    staged = light + deep + rem  # NaN unless all three are given
    staged = staged.where(staged > 0)
    frame = pd.DataFrame({
        "user_id": _user_ids(raw["user_code"], path),
        "date": to_datetime(raw, "day", path).dt.normalize(),
        "sleep_min": total_s / SECONDS_PER_MINUTE,  # s → min
        "deep_pct": deep / staged * 100.0,
        "rem_pct": rem / staged * 100.0,
    })
    frame = frame.sort_values(["user_id", "date", "sleep_min"], ascending=[True, True, False],
                              kind="stable")
    dup = frame.duplicated(["user_id", "date"])
    if dup.any():
        log.add(path, "repair", "several sleeps on one user-day: the longest is kept",
                int(dup.sum()))
    return frame[~dup].reset_index(drop=True)


def read_participants(path: Path, log: NoteLog) -> pd.DataFrame:
    """Participants → one row per user with `sex` and `age` (band mid-point, years)."""
    raw = read_csv(path, log)
    require_columns(raw, list(PARTICIPANT_COLUMNS), path)
    gender = raw["gender"].astype("string").str.strip().str.lower()
    unknown = gender.notna() & ~gender.isin(list(SEX))
    if unknown.any():
        log.add(path, "info", f"gender values {sorted(set(gender[unknown]))} are not "
                              f"female/male: sex left empty", int(unknown.sum()))
    frame = pd.DataFrame({
        "user_id": _user_ids(raw["user_code"], path),
        "sex": gender.map(SEX).astype("object").where(gender.isin(list(SEX)), None),
        "age": [age_band_midpoint(b, path) for b in raw["age_range"]],
    })
    dup = frame.duplicated("user_id")
    if dup.any():
        log.add(path, "repair", "participants listed twice: the first row is kept", int(dup.sum()))
        frame = frame[~dup]
    return frame


class WelltoryLoader:
    """The Welltory hrv-covid19 open dataset (see module doc)."""

    source = "welltory"

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() == ".csv" and _kind(header_of(path)) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        daily: list[pd.DataFrame] = []
        people: pd.DataFrame | None = None
        for path in sorted(files, key=lambda p: p.name):
            kind = _kind(header_of(path))
            if kind == "hrv":
                daily.append(read_hrv(path, log))
            elif kind == "wearables":
                daily.append(read_wearables(path, log))
            elif kind == "sleep":
                daily.append(read_sleep(path, log))
            elif kind == "participants":
                people = read_participants(path, log)
        if not daily:
            return pd.DataFrame(columns=["user_id", "date"])
        frame = daily[0]
        for other in daily[1:]:
            frame = frame.merge(other, on=["user_id", "date"], how="outer")
        values = frame.drop(columns=["user_id", "date"])
        frame = frame[values.notna().any(axis=1)]
        if people is not None:
            frame = frame.merge(people, on="user_id", how="left")
        frame = frame.sort_values(["user_id", "date"]).reset_index(drop=True)
        frame["source"] = self.source
        return frame


LOADER = WelltoryLoader()
