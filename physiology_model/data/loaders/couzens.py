"""Alan Couzens' training/HRV log → daily rows (source `couzens`, `user_id = f"couzens-{folder}"`).

One folder holds one athlete (the coach himself). It has up to four files, recognised by their
header (the first column, the date as m/d/Y, has no name in the shipped files):

- `model_data.csv` ("model" table): daily 2014-03-12 to 2019-09-18 with CTL, TSB, SDNN, RMSSD,
  RHR_lying, RHR_standing, SLEEP (h), SLEEPQ, STRESS, MOTIVATION, MOOD, SORE, Duration (h),
  Intensity and lagged copies;
- `model_data_optimization.csv` ("optimization" table): the same days and columns plus TSS,
  Power, Run EF and BikeEF;
- `performance_model_data - Copy.csv` ("performance" table): daily 2013-04-01 to 2019-09-18
  with CTL, TSB, TSS, Duration (h), RMSSD, SDNN, Run EF, swim/bike/run hours and minutes in
  seven heart-rate zones (HRZone1-7Minutes);
- `workouts.csv`: a TrainingPeaks workouts export (Jan-Apr 2020), read with the TrainingPeaks
  rules (`trainingpeaks.load_trainingpeaks_days`). The Couzens loader claims a TrainingPeaks
  export only when its folder also holds a Couzens table (`is_couzens_folder`), so it belongs
  to this athlete, and the TrainingPeaks loader leaves it alone.

These are tables the author prepared for his models, not device exports. Repairs (each a
`repair` note with its count):

- Days without a measurement were mean-imputed: RMSSD == 41.61121857, SDNN == 56.50483559,
  RHR_lying == 54.55319149 and SLEEP == 8.783755677 are fills, always on the same 983 days of
  the model tables (and on every performance-table day before 2014-03-12). They become NaN
  (SDNN has no canonical column and is not read).
  On those days every subjective score is 3, the scale's default, so MOOD and MOTIVATION are
  blanked there too.
- 0 means "not recorded" for RMSSD (31 days), RHR_lying, SLEEP, MOOD and MOTIVATION: NaN.
- Remaining outliers (RMSSD 303 ms, SLEEP 88.98 h) are left to the central range check.

Which file wins, per column, where several have the day (a note counts every day on which a
losing file disagrees):

- RMSSD, RHR_lying, SLEEP, MOOD, MOTIVATION: model > optimization > performance (they agree on
  every shared day; only the performance table has RMSSD, all fills, before 2014-03-12).
- TSS and Duration: performance > optimization. The performance table's TSS is never lower than
  the optimization table's and is higher on 450 days (2014-2016 and 2018: the optimization table
  misses some sessions, e.g. 0 TSS where the performance table has 50), so it is the complete
  record. Its CTL is also continuous from 2013, while the model tables restart CTL at 0 in 2014.
- Daily tables win over the 2020 TrainingPeaks export on any shared day (there are none).

Canonical columns (units):

- `hrv_rmssd_ms` = RMSSD (ms); `rhr_bpm` = RHR_lying (bpm, a morning lying measurement);
  `sleep_min` = SLEEP (h) × 60.
- `readiness_self`: the mean of MOOD and MOTIVATION, both 1-5 Likert scores (1 worst; higher
  goes with higher TSB and RMSSD in this log), rescaled to 0-10 as (score − 1) / 4 × 10.
- Load: the performance table's zone minutes describe a day only when they cover at least
  `ZONE_COVERAGE` of its duration (median coverage is 50 %: zones were recorded for some
  sessions only). On such days the 7 zones are mapped onto Edwards zones 1-5
  (`_sessions.map_hr_zones_to_edwards`) and `load_trimp` is derived centrally; every other day
  with a TSS gets `load_trimp = load.tss_to_trimp(TSS)`, `load_basis = "tss"`. The log is
  complete (CTL is computed from it), so TSS 0 is a rest day with load 0. On the days where
  zones cover the whole day, Edwards TRIMP / TSS has median 2.6 (cf. `load.TRIMP_PER_TSS`).
- SDNN, RHR_standing, SLEEPQ, STRESS, SORE and the lagged columns have no canonical column.

The run efficiency factor (Run EF: speed per heartbeat, TrainingPeaks' EF) is the one real
performance series of the project; it is not a daily-table column, and
`load_couzens_performance` returns it with TSS, CTL and TSB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, tss_to_trimp
from physiology_model.data.loaders._couzens_tables import (
    HR_ZONE_COLUMNS,
    MODEL,
    OPTIMIZATION,
    PERFORMANCE,
    is_couzens_folder,
    table_role,
)
from physiology_model.data.loaders._io import read_csv, to_datetime, to_number
from physiology_model.data.loaders._sessions import MINUTES_PER_HOUR, map_hr_zones_to_edwards
from physiology_model.data.loaders.trainingpeaks import (
    is_trainingpeaks_workouts,
    load_trainingpeaks_days,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

FILL_VALUES: dict[str, float] = {
    "RMSSD": 41.61121857,
    "RHR_lying": 54.55319149,
    "SLEEP": 8.783755677,
}
"""The column means the author wrote into days without a measurement (README, quirks). SDNN
(fill 56.50483559) has no canonical column and is not read."""

FILL_TOLERANCE = 1e-6
"""|value − fill| below this is a fill (the fills are written with 8-9 decimals)."""

ZERO_IS_MISSING: tuple[str, ...] = ("RMSSD", "RHR_lying", "SLEEP", "MOOD", "MOTIVATION")
"""Columns where 0 means "not recorded" (no living person has 0 ms RMSSD or 0 h sleep, and the
subjective scales start at 1)."""

SUBJECTIVE: tuple[str, ...] = ("MOOD", "MOTIVATION")

LIKERT_MIN, LIKERT_MAX = 1.0, 5.0
"""Range of the subjective scores."""

READINESS_MAX = 10.0

ZONE_COVERAGE = 0.9
"""Zone minutes describe a day when they sum to at least this share of its duration."""

PHYSIOLOGY_PRIORITY: tuple[str, ...] = (MODEL, OPTIMIZATION, PERFORMANCE)
LOAD_PRIORITY: tuple[str, ...] = (PERFORMANCE, OPTIMIZATION)

NUMERIC_INPUTS: tuple[str, ...] = (
    "RMSSD", "RHR_lying", "SLEEP", "MOOD", "MOTIVATION", "TSS", "Duration", "CTL",
    "TSB", "Run EF", "Swim hrs", "Bike hrs", "Run hrs", *HR_ZONE_COLUMNS,
)
"""Columns read from a Couzens table when present (the rest are not used)."""

WHY_WINS: dict[str, str] = {
    PERFORMANCE: "the performance table is the complete training record",
    MODEL: "the model table is the primary daily log",
    OPTIMIZATION: "the optimization table is the primary daily log here",
}


def read_couzens_table(path: Path, log: NoteLog) -> pd.DataFrame:
    """One Couzens table → float columns (`NUMERIC_INPUTS` present in it), indexed by date.

    Applies the repairs in the module docstring (fills and zeros → NaN), each noted. A date that
    appears twice keeps its first row (noted).
    """
    raw = read_csv(path, log)
    dates = to_datetime(raw, raw.columns[0], path, fmt="%m/%d/%Y", required=True)
    frame = pd.DataFrame({c: to_number(raw, c, path) for c in NUMERIC_INPUTS if c in raw.columns})
    frame.index = pd.DatetimeIndex(dates.dt.normalize(), name="date")
    repeated = frame.index.duplicated(keep="first")
    if repeated.any():
        log.add(path, "repair", "dates that appear twice: the first row kept", int(repeated.sum()))
        frame = frame[~repeated]

    no_entry = pd.Series(True, frame.index)
    fill_columns = [c for c in FILL_VALUES if c in frame.columns]
    for column in fill_columns:
        is_fill = (frame[column] - FILL_VALUES[column]).abs() < FILL_TOLERANCE
        no_entry &= is_fill
        if is_fill.any():
            log.add(path, "repair", f"{column} == {FILL_VALUES[column]} is the author's mean "
                                    f"imputation of a day without a measurement: set to missing",
                    int(is_fill.sum()))
            frame[column] = frame[column].mask(is_fill)
    if not fill_columns:
        no_entry[:] = False
    for column in SUBJECTIVE:
        if column in frame.columns and no_entry.any():
            blank = no_entry & frame[column].notna()
            if blank.any():
                log.add(path, "repair", f"{column} on days without any measurement (every "
                                        f"physiology column imputed, every score the default 3): "
                                        f"set to missing", int(blank.sum()))
                frame[column] = frame[column].mask(no_entry)
    for column in ZERO_IS_MISSING:
        if column in frame.columns:
            zero = frame[column] == 0
            if zero.any():
                log.add(path, "repair", f"{column} == 0 means not recorded: set to missing",
                        int(zero.sum()))
                frame[column] = frame[column].mask(zero)
    return frame


Tables = dict[str, list[tuple[Path, pd.DataFrame]]]
"""Role (`model`, `optimization`, `performance`) → the (path, cleaned frame) of each table."""


def _read_tables(paths: Sequence[Path], log: NoteLog) -> Tables:
    tables: Tables = {}
    for path in sorted(paths):
        role = table_role(path)
        if role is None:
            raise DataError(path, "not a Couzens model/optimization/performance table")
        tables.setdefault(role, []).append((path, read_couzens_table(path, log)))
    return tables


def combine_column(tables: Tables, column: str,
                   priority: Sequence[str], where: str | Path, log: NoteLog) -> pd.Series:
    """One column over all tables that have it: per day, the first table in `priority` order
    with a value wins. Days on which a losing table has a different value are noted."""
    ranked = [(role, path, frame[column]) for role in priority
              for path, frame in tables.get(role, []) if column in frame.columns]
    if not ranked:
        return pd.Series(dtype="float64", name=column)
    winner_role, winner_path, combined = ranked[0]
    combined = combined.copy()
    for _, path, values in ranked[1:]:
        shared = combined.index.intersection(values.index)
        a, b = combined.reindex(shared), values.reindex(shared)
        differ = a.notna() & b.notna() & ~np.isclose(a, b, rtol=1e-9, atol=1e-9)
        if differ.any():
            log.add(where, "repair", f"{column}: {path.name} disagrees with {winner_path.name} on "
                                     f"some days; {winner_path.name} kept "
                                     f"({WHY_WINS[winner_role]})", int(differ.sum()))
        combined = combined.combine_first(values)
    return combined.rename(column)


def _readiness_0_10(mood: pd.Series, motivation: pd.Series) -> pd.Series:
    """Mean of the 1-5 MOOD and MOTIVATION scores (either alone if one is missing) → 0-10."""
    score = pd.concat([mood, motivation], axis=1).mean(axis=1, skipna=True)
    return (score - LIKERT_MIN) / (LIKERT_MAX - LIKERT_MIN) * READINESS_MAX


def _daily_rows(tables: Tables, where: str | Path, log: NoteLog) -> pd.DataFrame:
    """Canonical daily columns from the Couzens tables (see the module docstring)."""
    def col(name: str, priority: Sequence[str]) -> pd.Series:
        return combine_column(tables, name, priority, where, log)

    series = {
        "rmssd": col("RMSSD", PHYSIOLOGY_PRIORITY),
        "rhr": col("RHR_lying", PHYSIOLOGY_PRIORITY),
        "sleep_h": col("SLEEP", PHYSIOLOGY_PRIORITY),
        "mood": col("MOOD", PHYSIOLOGY_PRIORITY),
        "motivation": col("MOTIVATION", PHYSIOLOGY_PRIORITY),
        "tss": col("TSS", LOAD_PRIORITY),
        "duration_h": col("Duration", LOAD_PRIORITY),
        **{z: col(z, (PERFORMANCE,)) for z in HR_ZONE_COLUMNS},
    }
    dates = pd.DatetimeIndex(sorted({d for _, frames in tables.items() for _, f in frames
                                     for d in f.index}), name="date")
    s = pd.DataFrame({k: v.reindex(dates) for k, v in series.items()}, index=dates)

    out = pd.DataFrame(index=dates)
    out["hrv_rmssd_ms"] = s["rmssd"]  # already ms
    out["rhr_bpm"] = s["rhr"]
    out["sleep_min"] = s["sleep_h"] * MINUTES_PER_HOUR  # h → min
    out["readiness_self"] = _readiness_0_10(s["mood"], s["motivation"])

    zone_minutes = s[list(HR_ZONE_COLUMNS)].to_numpy(dtype=float)
    zone_total = np.nansum(zone_minutes, axis=1)
    duration_min = s["duration_h"].to_numpy(dtype=float) * MINUTES_PER_HOUR  # h → min
    with np.errstate(invalid="ignore"):
        zone_day = (zone_total > 0) & (zone_total >= ZONE_COVERAGE * duration_min)
    edwards = map_hr_zones_to_edwards(zone_minutes, where)
    for k, zone in enumerate(ZONE_COLUMNS):
        out[zone] = np.where(zone_day, edwards[:, k], np.nan)
    tss_day = ~zone_day & s["tss"].notna().to_numpy()
    out["load_trimp"] = np.where(tss_day, tss_to_trimp(s["tss"].to_numpy(dtype=float)), np.nan)
    out["load_basis"] = np.where(tss_day, "tss", None)
    if zone_day.any():
        log.add(where, "info", f"days whose HR-zone minutes cover at least {ZONE_COVERAGE:.0%} of "
                               f"the day's duration: load from the zones (7 zones → Edwards 1-5)",
                int(zone_day.sum()))
    if tss_day.any():
        log.add(where, "info", "days with load from TSS (load.tss_to_trimp)", int(tss_day.sum()))
    return out.reset_index()


class CouzensLoader:
    """Alan Couzens' prepared daily tables and his 2020 TrainingPeaks export, one folder."""

    source = "couzens"

    def claims(self, path: Path) -> bool:
        if table_role(path) is not None:
            return True
        return is_trainingpeaks_workouts(path) and is_couzens_folder(path.parent)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0] if len(files) == 1 else files[0].parent
        table_files = [p for p in files if table_role(p) is not None]
        workout_files = [p for p in files if p not in table_files]
        parts = []
        if table_files:
            parts.append(_daily_rows(_read_tables(table_files, log), where, log))
        if workout_files:
            workouts = load_trainingpeaks_days(workout_files, where, log)
            if parts and not workouts.empty:
                shared = workouts["date"].isin(parts[0]["date"])
                if shared.any():
                    log.add(where, "repair", "days in both the daily tables and the "
                                             "TrainingPeaks export: the daily tables kept",
                            int(shared.sum()))
                    workouts = workouts[~shared]
            parts.append(workouts)
        parts = [p for p in parts if not p.empty]
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True).sort_values("date", kind="stable")
        out.insert(0, "user_id", f"{self.source}-{user_hint}")
        out["source"] = self.source
        return out.reset_index(drop=True)


def load_couzens_performance(folder: str | Path) -> pd.DataFrame:
    """The Couzens performance series, one row per day, sorted by date.

    Columns: `date`; `tss` (TSS); `ctl`, `tsb` (TrainingPeaks' chronic training load and
    training stress balance, TSS/day, as the author computed them); `duration_h` (training
    hours); `swim_h`, `bike_h`, `run_h` (hours per sport, performance table only); `run_ef`
    (run efficiency factor: speed per heartbeat, TrainingPeaks' EF; NaN on days without a
    run, written as 0 in the files).

    Read from the folder's performance table (2013-04 to 2019-09), falling back to the
    optimization table on days it lacks (same priority as the loader). Raises `DataError` when
    the folder has neither.
    """
    folder = Path(folder)
    log = NoteLog()
    try:
        paths = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise DataError(folder, f"cannot be read ({exc.strerror})") from None
    wanted = [p for p in paths if table_role(p) in LOAD_PRIORITY]
    if not wanted:
        raise DataError(folder, "no Couzens performance or optimization table (with TSS, CTL "
                                "and Run EF) found here")
    tables = _read_tables(wanted, log)
    for frames in tables.values():
        for _, frame in frames:
            if "Run EF" in frame.columns:
                # 0 = no run that day; masked before combining so it never outranks a real EF
                frame["Run EF"] = frame["Run EF"].mask(frame["Run EF"] == 0)
    names = {"TSS": "tss", "CTL": "ctl", "TSB": "tsb", "Duration": "duration_h",
             "Swim hrs": "swim_h", "Bike hrs": "bike_h", "Run hrs": "run_h", "Run EF": "run_ef"}
    columns = {new: combine_column(tables, old, LOAD_PRIORITY, folder, log)
               for old, new in names.items()}
    dates = pd.DatetimeIndex(sorted({d for frames in tables.values() for _, f in frames
                                     for d in f.index}), name="date")
    out = pd.DataFrame({k: v.reindex(dates) for k, v in columns.items()}, index=dates)
    return out.reset_index()


LOADER = CouzensLoader()
