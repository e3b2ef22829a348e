"""TrainingPeaks workout exports → daily load rows (source `trainingpeaks`,
`user_id = f"trainingpeaks-{folder}"`). Load only: TrainingPeaks exports carry no physiology.

The file is TrainingPeaks' "Export workouts" CSV (`workouts.csv`): one row per workout with
`Title`, `WorkoutType` (Run, Bike, Swim, Strength, Day Off, ...), `WorkoutDay` (the athlete's
local date), `TimeTotalInHours`, `TSS`, `IF`, `HRZone1Minutes`..`HRZone10Minutes`,
`PWRZone*Minutes`, `Rpe` and `Feeling`. Titles may be in any script (the shipped export has
Hebrew titles); the file is read as UTF-8.

Rules (each counted in a note):

- A row is a *completed* workout when it has a duration, a TSS or heart-rate zone minutes.
  Rows with none of these are planned workouts that were not done, or "Day Off" markers:
  they add no load.
- A completed workout whose type, duration and distance (both > 0) exactly repeat an earlier
  one's, to the last digit, is the same recording uploaded twice (seen in the shipped export
  on consecutive days); the later copy is dropped.
- Heart-rate zones: the export's zone count is the highest `HRZone<i>Minutes` column with any
  value (7 in both shipped exports: TrainingPeaks' default Friel zones 1-4, 5a, 5b, 5c). They
  are mapped onto Edwards zones 1-5 by `_sessions.map_hr_zones_to_edwards` (1-4 kept, 5+
  summed into 5).
- Each workout's load: HR zones (Edwards TRIMP) → TSS (`load.tss_to_trimp`) → RPE × minutes
  (`load.srpe_to_trimp`; TrainingPeaks' RPE is 1-10, 0 = not rated); see `_sessions`.
- `strength_min`: duration of workouts whose `WorkoutType` names resistance work
  (`load.is_strength_activity`, e.g. "Strength"), or whose title does when the type is generic
  ("Other", "Custom"): a bike session titled "Strength Ramp" is not resistance work.
- A TrainingPeaks log is the athlete's complete training record, so every day between the
  file's first and last completed workout with no completed workout is a measured rest day
  (load 0, `load_basis = "no_activity"`).

A TrainingPeaks export inside a Couzens folder belongs to that athlete and is read by the
Couzens loader (`couzens.is_couzens_folder`); this loader does not claim it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._couzens_tables import is_couzens_folder
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.loaders._sessions import (
    MINUTES_PER_HOUR,
    SESSION_COLUMNS,
    daily_load_from_sessions,
    map_hr_zones_to_edwards,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SIGNATURE: frozenset[str] = frozenset(
    {"Title", "WorkoutType", "WorkoutDay", "TimeTotalInHours", "TSS", "HRZone1Minutes"}
)
"""Header columns that identify a TrainingPeaks workouts export."""

REQUIRED_COLUMNS: list[str] = ["WorkoutType", "WorkoutDay", "TimeTotalInHours", "TSS"]

_HR_ZONE_COLUMN = re.compile(r"^HRZone(\d+)Minutes$")


GENERIC_TYPES = frozenset({"other", "custom"})
"""Workout types that say nothing about the sport, so the title decides."""


def is_strength_workout(workout_type: str | None, title: str | None) -> bool:
    """Resistance work: the type says so (TrainingPeaks' "Strength"), or the type is generic
    ("Other", "Custom", empty) and the title says so. A specific sport's title is not
    trusted ("GCN Strength Ramp Power Indoor Cycling" is a bike session)."""
    if is_strength_activity(workout_type):
        return True
    generic = workout_type is None or str(workout_type).strip().lower() in GENERIC_TYPES | {""}
    return generic and is_strength_activity(title)


def is_trainingpeaks_workouts(path: Path) -> bool:
    """Whether `path` is a TrainingPeaks workouts export (CSV with the TrainingPeaks header)."""
    return path.suffix.lower() == ".csv" and SIGNATURE <= set(header_of(path))


def read_trainingpeaks_workouts(path: Path, log: NoteLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One export → (sessions, keys).

    `sessions` has `_sessions.SESSION_COLUMNS`, one row per completed workout, in file order;
    `keys` holds, per session, the raw (type, duration, distance) text used to spot the same
    recording uploaded twice (see `drop_reuploads`).
    """
    raw = read_csv(path, log)
    require_columns(raw, REQUIRED_COLUMNS, path)
    date = to_datetime(raw, "WorkoutDay", path, required=True).dt.normalize()
    hours = to_number(raw, "TimeTotalInHours", path)
    minutes = hours * MINUTES_PER_HOUR  # h → min
    tss = to_number(raw, "TSS", path)
    rpe = to_number(raw, "Rpe", path) if "Rpe" in raw.columns else pd.Series(np.nan, raw.index)

    zone_columns = sorted(
        (int(m.group(1)), c) for c in raw.columns if (m := _HR_ZONE_COLUMN.match(c))
    )
    zone_values = np.column_stack([to_number(raw, c, path).to_numpy() for _, c in zone_columns]) \
        if zone_columns else np.full((len(raw), 0), np.nan)
    numbers = [number for number, _ in zone_columns]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DataError(path, f"heart-rate zone columns are not numbered 1..n: {numbers}")
    # the zone count is the highest zone with any value: TrainingPeaks leaves unused zones empty
    used = [i for i in range(len(numbers)) if not np.all(np.isnan(zone_values[:, i]))]
    n_zones = (used[-1] + 1) if used else 0
    if n_zones:
        edwards = map_hr_zones_to_edwards(zone_values[:, :n_zones], path)
    else:
        edwards = np.full((len(raw), len(ZONE_COLUMNS)), np.nan)
    has_zones = ~np.all(np.isnan(edwards), axis=1)

    completed = (minutes.notna() | tss.notna() | pd.Series(has_zones, raw.index)).to_numpy()
    n_not_done = int((~completed).sum())
    if n_not_done:
        log.add(path, "info", "rows without a duration, TSS or heart-rate zones (planned "
                              "workouts not done, 'Day Off' markers) add no load", n_not_done)
    if n_zones:
        log.add(path, "info", f"{n_zones} heart-rate zones mapped onto Edwards zones 1-5 "
                              f"(zones 1-4 kept, zones 5-{n_zones} summed into zone 5)")

    titles = raw["Title"] if "Title" in raw.columns else pd.Series(None, raw.index, dtype=object)
    strength = [is_strength_workout(kind, title) for kind, title in zip(raw["WorkoutType"], titles)]
    sessions = pd.DataFrame({
        "date": date,
        "minutes": minutes,
        **{z: edwards[:, k] for k, z in enumerate(ZONE_COLUMNS)},
        "tss": tss,
        "rpe_cr10": rpe,
        "strength": strength,
    })[list(SESSION_COLUMNS)]
    if "DistanceInMeters" in raw.columns:
        distance_text = raw["DistanceInMeters"]
        distance_m = to_number(raw, "DistanceInMeters", path)
    else:
        distance_text = pd.Series(None, raw.index, dtype=object)
        distance_m = pd.Series(np.nan, raw.index)
    keys = pd.DataFrame({"type": raw["WorkoutType"], "hours": raw["TimeTotalInHours"],
                         "distance": distance_text, "distance_m": distance_m})
    keep = completed
    return (sessions[keep].reset_index(drop=True), keys[keep].reset_index(drop=True))


def drop_reuploads(sessions: pd.DataFrame, keys: pd.DataFrame, path: str | Path,
                   log: NoteLog) -> pd.DataFrame:
    """Drop workouts whose type, duration and distance (> 0) exactly repeat an earlier one's.

    A GPS recording of the same duration and distance to the last digit is one file uploaded
    twice (the shipped export has such a ride on two consecutive days); the first is kept.
    """
    comparable = keys["hours"].notna() & (keys["distance_m"] > 0)
    repeated = comparable & keys.duplicated(["type", "hours", "distance"], keep="first")
    n = int(repeated.sum())
    if n:
        log.add(path, "repair", "workouts repeating an earlier one's type, duration and distance "
                                "exactly (the same recording uploaded twice) dropped", n)
    return sessions[~repeated.to_numpy()].reset_index(drop=True)


def load_trainingpeaks_days(files: list[Path], where: str | Path,
                            log: NoteLog) -> pd.DataFrame:
    """Daily load rows (no user id) from one athlete's TrainingPeaks exports.

    Rest days are filled inside each file's own span (first to last completed workout), so a
    gap between two exports is not mistaken for rest.
    """
    all_sessions, all_keys, spans = [], [], []
    for path in files:
        sessions, keys = read_trainingpeaks_workouts(path, log)
        if sessions.empty:
            log.add(path, "info", "no completed workouts")
            continue
        all_sessions.append(sessions)
        all_keys.append(keys)
        spans.append((sessions["date"].min(), sessions["date"].max()))
    if not all_sessions:
        return pd.DataFrame()
    sessions = drop_reuploads(pd.concat(all_sessions, ignore_index=True),
                              pd.concat(all_keys, ignore_index=True), where, log)
    return daily_load_from_sessions(sessions, rest_day_spans=spans, path=where, log=log)


class TrainingPeaksLoader:
    """TrainingPeaks `workouts.csv` exports, one athlete per folder."""

    source = "trainingpeaks"

    def claims(self, path: Path) -> bool:
        if not is_trainingpeaks_workouts(path):
            return False
        return not is_couzens_folder(path.parent)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0] if len(files) == 1 else files[0].parent
        days = load_trainingpeaks_days(files, where, log)
        if days.empty:
            return days
        days.insert(0, "user_id", f"{self.source}-{user_hint}")
        days["source"] = self.source
        return days


LOADER = TrainingPeaksLoader()
