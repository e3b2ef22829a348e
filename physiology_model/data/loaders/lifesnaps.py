"""LifeSnaps daily Fitbit table (`daily_fitbit_sema_df_unprocessed.csv`) → daily rows.

LifeSnaps (Yfantidou et al. 2022, Sci. Data 9:663; data CC BY 4.0) followed Fitbit Sense wearers
from 2021 to 2022. Its daily file has one row per user-day: `id` is the participant (a 24-hex
MongoDB ObjectId), `date` the day, and the first column an unnamed row index (absent in some
copies; not needed). Several people share one file, so `user_id` comes from `id`.

Mapping (units as Fitbit reports them, checked against the values in the shipped file):

* `rmssd` → `hrv_rmssd_ms`: Fitbit's nightly RMSSD in ms (median 33, range 0-122). 0 means Fitbit
  computed no value that night (`nremhr` is also 0 on exactly those rows): set missing.
* `resting_hr` → `rhr_bpm` (Fitbit daily resting heart rate, bpm).
* `full_sleep_breathing_rate` → `resp_rate_rpm` (breaths/min); 0 = not computed → missing.
* `spo2` → `spo2_pct` (%).
* `nightly_temperature` → `skin_temp_c`: values are 25.5-35.9, median 33.8 °C, so this is the
  absolute nightly wrist-skin temperature, not a deviation from baseline (that would centre on 0).
  `daily_temperature_variation` (median -1.4 °C, not centred on 0 either) is not used.
* `minutesAsleep` → `sleep_min`; `sleep_efficiency` → `sleep_efficiency_pct` (Fitbit's own %).
* `sleep_deep_ratio`, `sleep_rem_ratio` (and light, wake) are **not** shares of the night: each has
  a mean of about 1.0 and the four sum to about 3.9, i.e. they are the night's stage minutes over
  Fitbit's 30-day average for that stage (`thirtyDayAvgMinutes` in Fitbit's sleep log). The
  minutes themselves are not in the file, so `rem_pct` and `deep_pct` stay missing.
* `minutes_in_default_zone_1/2/3` (Fitbit's fat burn, cardio, peak: 50-69, 70-84, >= 85 % of
  HRmax; see `_fitbit` for why these are the %-HRmax zones) → `z1_min..z5_min`, cardio and peak
  spread over the Edwards zones their bands overlap (cardio 2/3 z3 + 1/3 z4, peak 1/3 z4 + 2/3
  z5); fat-burn minutes are **not** counted (`_fitbit.TRAINING_ZONE_SHARES`): these are
  whole-day minutes and fat burn is where everyday activity (walking, stairs) sits, a median
  134 min a day that read as 130-470 TRIMP of training a day. `load_trimp` is then derived
  centrally (`load_basis='hr_zones'`) on the same Edwards scale as other sources; an easy
  session below 70 % HRmax counts as nothing (LifeSnaps has no training log to say better). The
  `*_active_minutes` and `steps` columns are not read as load for the same reason. Days with
  under `_fitbit.MIN_HR_COVERAGE_MIN` minutes of heart-rate data get no zone minutes.
* `recovery_pct` stays missing. Fitbit's `stress_score` (Stress Management Score, 1-100, higher =
  less physiological stress; 0 = not computed) combines responsiveness (HRV, EDA, RHR), exertion
  balance and sleep; it is not a recovery/readiness score in WHOOP's sense, and putting it in
  `recovery_pct` would let the safety rules (recovery < 30 %) act on a different quantity.
* `age` from the band (`<30` → 23.5, the middle of an adult 18-29 band; `>=30` → 35.0, a nominal
  value since the band is open above); `sex` from `gender` (`MALE`/`FEMALE`). Both are constant
  per participant and filled onto all of their rows.

Dates: `date` is taken as given. LifeSnaps built the table from Fitbit's daily records, which date
a night's sleep (and the nightly RMSSD, breathing rate, SpO2 and temperature computed from it) by
`dateOfSleep`, the day the sleep ended, and date activity (zones) by calendar day; that is the
table's convention (physiology from the night ending that morning, load during that day).

User ids: `lifesnaps-` + the last 8 hex digits of `id`. The leading digits of an ObjectId are its
creation second, which participants registered in one batch can share; the trailing digits hold
the per-process counter, which is unique within a batch. If two ids in a file still share their
last 8 digits, those participants keep their full id (and a note says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS
from physiology_model.data.loaders._fitbit import (
    MIN_HR_COVERAGE_MIN,
    TRAINING_ZONE_SHARES,
    fitbit_zones_to_edwards,
    hr_coverage_too_short,
)
from physiology_model.data.loaders._io import (
    header_of,
    read_csv,
    require_columns,
    to_datetime,
    to_number,
)
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SIGNATURE_COLUMNS: tuple[str, ...] = (
    "id", "date", "rmssd", "nightly_temperature", "full_sleep_breathing_rate", "stress_score",
    "minutes_in_default_zone_1", "sleep_deep_ratio",
)
"""Columns whose presence in a header identifies a LifeSnaps daily file, whatever its name."""

NUMERIC_SOURCE: dict[str, str] = {
    "rmssd": "hrv_rmssd_ms",
    "resting_hr": "rhr_bpm",
    "full_sleep_breathing_rate": "resp_rate_rpm",
    "spo2": "spo2_pct",
    "nightly_temperature": "skin_temp_c",
    "minutesAsleep": "sleep_min",
    "sleep_efficiency": "sleep_efficiency_pct",
}
"""LifeSnaps column → canonical column, where the unit is already the canonical one."""

ZERO_MEANS_MISSING: tuple[str, ...] = ("rmssd", "full_sleep_breathing_rate")
"""Columns where Fitbit writes 0 for "not computed" (a living person has neither value at 0)."""

ZONE_SOURCE: tuple[str, ...] = (
    "minutes_below_default_zone_1", "minutes_in_default_zone_1", "minutes_in_default_zone_2",
    "minutes_in_default_zone_3",
)

AGE_BAND_YEARS: dict[str, float] = {"<30": 23.5, ">=30": 35.0}
"""Age band → years (see the module docstring for why these values)."""

SEX: dict[str, str] = {"MALE": "male", "FEMALE": "female"}

SHORT_ID_DIGITS = 8


def shorten_ids(ids: pd.Series, path: Path, log: NoteLog) -> dict[str, str]:
    """Map each raw participant id to its `lifesnaps-...` user id (see the module docstring)."""
    unique = sorted(ids.dropna().unique())
    short = {raw: raw[-SHORT_ID_DIGITS:] for raw in unique}
    counts = pd.Series(list(short.values())).value_counts()
    clashing = [raw for raw, s in short.items() if counts[s] > 1]
    for raw in clashing:
        short[raw] = raw
    if clashing:
        log.add(path, "info", f"participants whose last {SHORT_ID_DIGITS} id digits coincide "
                              f"keep their full id", len(clashing))
    return {raw: f"lifesnaps-{s}" for raw, s in short.items()}


def fill_static(values: pd.Series, users: pd.Series, column: str, path: Path,
                log: NoteLog) -> pd.Series:
    """Spread a per-participant constant (age band, gender) onto all of that participant's rows.

    A participant with two different values keeps the most frequent one (ties: the first in
    sorted order), recorded as a repair.
    """
    frame = pd.DataFrame({"user": users, "value": values}).dropna()
    n_values = frame.groupby("user")["value"].nunique()
    conflicting = n_values[n_values > 1]
    if len(conflicting):
        log.add(path, "repair", f"{column}: participants with more than one value keep the "
                                f"most frequent", len(conflicting))
    chosen = frame.groupby("user")["value"].agg(most_frequent)
    return users.map(chosen)


def most_frequent(values: pd.Series) -> object:
    """The most frequent value; ties go to the smallest value, so the choice is deterministic."""
    counts = values.value_counts()
    return min(counts[counts == counts.max()].index)


def read_daily_file(path: Path, log: NoteLog) -> pd.DataFrame:
    """One LifeSnaps daily file → canonical daily rows (duplicates not yet resolved)."""
    raw = read_csv(path, log)
    require_columns(raw, ["id", "date", *NUMERIC_SOURCE, *ZONE_SOURCE, "age", "gender"], path)
    if raw["id"].isna().any():
        raise DataError(path, f"{int(raw['id'].isna().sum())} rows have no participant id")
    if raw["date"].isna().any():
        raise DataError(path, f"{int(raw['date'].isna().sum())} rows have no date")

    out = pd.DataFrame(index=raw.index)
    out["raw_id"] = raw["id"]
    out["date"] = to_datetime(raw, "date", path, fmt="%Y-%m-%d")

    for src, dst in NUMERIC_SOURCE.items():
        values = to_number(raw, src, path)
        if src in ZERO_MEANS_MISSING:
            zero = values == 0
            if zero.any():
                log.add(path, "repair", f"{src} = 0 (Fitbit: not computed) set to missing",
                        int(zero.sum()))
                values = values.mask(zero)
        out[dst] = values

    below, fat_burn, cardio, peak = (to_number(raw, c, path) for c in ZONE_SOURCE)
    zones = fitbit_zones_to_edwards(fat_burn, cardio, peak, TRAINING_ZONE_SHARES)
    short = hr_coverage_too_short(below, fat_burn, cardio, peak)
    if short.any():
        log.add(path, "repair", f"zone minutes of days with under {MIN_HR_COVERAGE_MIN:g} min "
                                f"of heart-rate data (watch not worn) set to missing",
                int(short.sum()))
        zones.loc[short] = np.nan
    out[zones.columns] = zones

    age_band = raw["age"]
    unknown = sorted(set(age_band.dropna()) - set(AGE_BAND_YEARS))
    if unknown:
        raise DataError(path, f"column 'age': unknown age band(s) {unknown}; "
                              f"expected {sorted(AGE_BAND_YEARS)}")
    gender = raw["gender"].str.upper()
    unknown = sorted(set(gender.dropna()) - set(SEX))
    if unknown:
        raise DataError(path, f"column 'gender': unknown value(s) {unknown}; expected MALE/FEMALE")
    out["age"] = fill_static(age_band.map(AGE_BAND_YEARS), raw["id"], "age", path, log)
    out["sex"] = fill_static(gender.map(SEX), raw["id"], "sex", path, log)
    return out


DAY_COLUMNS: tuple[str, ...] = tuple(NUMERIC_SOURCE.values()) + ZONE_COLUMNS
"""Columns that vary by day; a row with none of them holds no daily information."""


class LifeSnapsLoader:
    """LifeSnaps `daily_fitbit_sema_df_unprocessed.csv` (several participants in one file)."""

    source = "lifesnaps"

    def claims(self, path: Path) -> bool:
        if path.suffix.lower() != ".csv":
            return False
        header = set(header_of(path))
        return all(c in header for c in SIGNATURE_COLUMNS)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        frames = []
        for path in files:
            frame = read_daily_file(path, log)
            frame["file_order"] = len(frames)
            frames.append(frame)
        rows = pd.concat(frames, ignore_index=True)
        where = files[0] if len(files) == 1 else files[0].parent
        # Ids are shortened over every participant in the input, before any row is dropped, so
        # that a participant's user id does not depend on which of their days hold values.
        user_ids = shorten_ids(rows["raw_id"], where, log)

        # A (participant, day) seen twice keeps the row with the most values; ties keep the
        # first in file order (none occur in the shipped file).
        rows["n_values"] = rows[list(DAY_COLUMNS)].notna().sum(axis=1)
        rows = rows.sort_values(["raw_id", "date", "n_values", "file_order"],
                                ascending=[True, True, False, True], kind="stable")
        dup = rows.duplicated(["raw_id", "date"], keep="first")
        if dup.any():
            log.add(where, "repair", "repeated (participant, day) rows: kept the one with the "
                                     "most values", int(dup.sum()))
            rows = rows[~dup]

        empty = rows[list(DAY_COLUMNS)].isna().all(axis=1)
        if empty.any():
            log.add(where, "info", "participant-days with no physiology, sleep or zone value "
                                   "(e.g. survey-only days) not kept", int(empty.sum()))
            rows = rows[~empty]

        rows = rows.copy()
        rows["user_id"] = rows["raw_id"].map(user_ids)
        return rows.drop(columns=["raw_id", "file_order", "n_values"]).reset_index(drop=True)


LOADER = LifeSnapsLoader()
