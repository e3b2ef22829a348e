"""Per-session training logs → daily load rows, shared by the TrainingPeaks, Couzens and
GoldenCheetah loaders.

A *session* frame has one row per completed workout with the columns `SESSION_COLUMNS`:

- `date`: the local day of the workout (`datetime64`, midnight);
- `minutes`: its duration (min), NaN when unknown;
- `z1_min`..`z5_min`: minutes in Edwards zones 1-5, all NaN when the workout has no heart-rate
  zones (map a device's own zones with `map_hr_zones_to_edwards` first);
- `tss`: TrainingPeaks/Coggan Training Stress Score, NaN when none;
- `rpe_cr10`: session RPE on Borg's CR-10 scale, NaN when not rated;
- `strength`: whether it was resistance work.

`daily_load_from_sessions` turns it into daily rows. Each workout's load comes from the best
basis it has: HR zones (Edwards TRIMP, exact) → TSS (`load.tss_to_trimp`) → session RPE
(`load.srpe_to_trimp`). A day whose workouts all have zones keeps its zone minutes and leaves
`load_trimp` empty, so that the central `derive_load_columns` computes the Edwards sum; a day
that needs another basis for any workout gets the summed `load_trimp` and a `load_basis` naming
every basis used (e.g. `"hr_zones+tss"`), and no zone minutes (they would describe only part of
the day). A day with a workout whose load cannot be estimated at all has no load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, edwards_trimp, srpe_to_trimp, tss_to_trimp
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SESSION_COLUMNS: tuple[str, ...] = ("date", "minutes", *ZONE_COLUMNS, "tss", "rpe_cr10",
                                    "strength")

REST_DAY_BASIS = "no_activity"
"""`load_basis` of a day without any workout inside a complete training log (load 0)."""

SECONDS_PER_MINUTE = 60.0
MINUTES_PER_HOUR = 60.0

EDWARDS_ZONES = 5


def map_hr_zones_to_edwards(zone_minutes: np.ndarray, path: str | Path) -> np.ndarray:
    """Minutes in a device's k heart-rate zones, shape (n, k) → Edwards zones 1-5, shape (n, 5).

    Zones 1-4 keep their number; zones 5..k are summed into zone 5. With k = 5 this is the
    identity. k = 7 is TrainingPeaks' default heart-rate scheme (Friel's zones 1, 2, 3, 4, 5a,
    5b, 5c, anchored on lactate-threshold HR): 5a-5c are all above threshold, i.e. Edwards'
    90-100 % HRmax band for a threshold near 90 % HRmax. Friel's zones 1-4 sit a little above
    Edwards' 1-4 in %HRmax, so this mapping slightly underweights easy work. On the shipped
    logs, Edwards TRIMP from the mapped zones per TSS (median per workout or day) is 1.9
    (TrainingPeaks u01), 2.6 (Couzens 2013-2019) and 4.0 (Couzens 2020), around
    `load.TRIMP_PER_TSS` = 2.5 but athlete-dependent. Fewer than 5 zones cannot be mapped:
    `DataError`. NaN is kept where a row has no zone data at all; within a row with some
    zone data, an empty zone counts as 0 minutes.
    """
    z = np.asarray(zone_minutes, dtype=float)
    if z.ndim != 2:
        raise ValueError(f"zone_minutes must be 2-D (sessions, zones), got shape {z.shape}")
    k = z.shape[1]
    if k < EDWARDS_ZONES:
        raise DataError(path, f"heart-rate zones 1-{k} cannot be mapped onto Edwards' five zones "
                              f"(need at least 5 zones)")
    no_data = np.all(np.isnan(z), axis=1)
    filled = np.nan_to_num(z)
    out = np.concatenate([filled[:, :4], filled[:, 4:].sum(axis=1, keepdims=True)], axis=1)
    out[no_data] = np.nan
    return out


def session_loads(sessions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each session's Edwards TRIMP-equivalent and the basis it came from.

    Returns (trimp, basis): float array (NaN where no basis applies) and object array of
    `"hr_zones"`, `"tss"`, `"srpe"` or None.
    """
    zones = sessions[list(ZONE_COLUMNS)].to_numpy(dtype=float)
    from_zones = edwards_trimp(zones)
    tss = sessions["tss"].to_numpy(dtype=float)
    rpe = sessions["rpe_cr10"].to_numpy(dtype=float)
    minutes = sessions["minutes"].to_numpy(dtype=float)
    # RPE 0 means "not rated" in TrainingPeaks and GoldenCheetah, not a rest session.
    has_srpe = (rpe >= 1) & (minutes > 0)
    trimp = np.full(len(sessions), np.nan)
    basis = np.full(len(sessions), None, dtype=object)
    for mask, values, name in (
        (has_srpe, srpe_to_trimp(rpe, minutes), "srpe"),
        (~np.isnan(tss), tss_to_trimp(tss), "tss"),
        (~np.isnan(from_zones), from_zones, "hr_zones"),
    ):  # later entries override earlier ones: zones beat TSS beat sRPE
        trimp = np.where(mask, values, trimp)
        basis = np.where(mask, name, basis)
    return trimp, basis


def daily_load_from_sessions(sessions: pd.DataFrame, *,
                             rest_day_spans: list[tuple[pd.Timestamp, pd.Timestamp]],
                             path: str | Path, log: NoteLog,
                             label: str = "") -> pd.DataFrame:
    """Daily load rows (`date`, zone minutes, `load_trimp`, `load_basis`, `strength_min`).

    `rest_day_spans`: inclusive (first, last) days over which the log is the athlete's complete
    training record (one span per export file); a day inside a span with no workout is a
    measured rest day (`load_trimp = 0`, `strength_min = 0`, `load_basis = REST_DAY_BASIS`).
    Pass `[]` for a log whose completeness is unknown: then only workout days get rows.

    `strength_min` is the summed duration of the day's strength sessions (0 when none; NaN when
    a strength session has no duration). Days with a workout whose load cannot be estimated
    (no zones, TSS or RPE) get no load and are counted in an `info` note (prefixed with
    `label`, e.g. the user id, when one file holds several athletes).
    """
    prefix = f"{label}: " if label else ""
    columns = ["date", *ZONE_COLUMNS, "load_trimp", "load_basis", "strength_min"]
    if sessions.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    s = sessions.reset_index(drop=True).copy()
    trimp, basis = session_loads(s)
    s["_trimp"] = trimp
    s["_basis"] = basis
    s["_has_zones"] = ~np.isnan(edwards_trimp(s[list(ZONE_COLUMNS)].to_numpy(dtype=float)))
    s["_unknown"] = np.isnan(trimp)
    s["_strength_min"] = np.where(s["strength"].astype(bool), s["minutes"].astype(float), 0.0)

    g = s.groupby("date", sort=True)
    day = pd.DataFrame({
        "all_zones": g["_has_zones"].all(),
        "any_unknown": g["_unknown"].any(),
        "trimp": g["_trimp"].sum(min_count=1),
        "basis": g["_basis"].agg(lambda b: "+".join(sorted({str(x) for x in b if pd.notna(x)}))),
        # a strength session without a duration makes the day's strength minutes unknown
        "strength_min": g["_strength_min"].agg(
            lambda m: float(m.sum()) if m.notna().all() else np.nan),
    })
    for zone in ZONE_COLUMNS:
        day[zone] = g[zone].sum(min_count=0).where(day["all_zones"], np.nan)
    day["load_trimp"] = day["trimp"].where(~day["all_zones"] & ~day["any_unknown"], np.nan)
    day["load_basis"] = day["basis"].where(~day["all_zones"] & ~day["any_unknown"], None)
    n_unknown = int(day["any_unknown"].sum())
    if n_unknown:
        log.add(path, "info", f"{prefix}days with a workout that has no heart-rate zones, TSS "
                              f"or RPE: the day's load is unknown (left empty)", n_unknown)
    out = day.reset_index()[columns]

    if rest_day_spans:
        covered = pd.DatetimeIndex(sorted({d for first, last in rest_day_spans
                                           for d in pd.date_range(first, last, freq="D")}))
        rest = pd.DataFrame({"date": covered.difference(pd.DatetimeIndex(out["date"]))})
        if len(rest):
            rest["load_trimp"] = 0.0
            rest["strength_min"] = 0.0
            rest["load_basis"] = REST_DAY_BASIS
            log.add(path, "info", f"{prefix}days without a workout inside the log's span are "
                                  f"rest days (load 0)", len(rest))
            out = pd.concat([out, rest], ignore_index=True).sort_values("date", kind="stable")
    return out.reset_index(drop=True)
