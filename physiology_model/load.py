"""Training load in one unit for every source and every action (DESIGN §4).

`load_trimp` is an Edwards TRIMP-equivalent: minutes in heart-rate zones 1-5 (50-60 %, ...,
90-100 % of HRmax) weighted 1-5 (Edwards 1993, "The Heart Rate Monitor Book"). Sources that do
not give zone minutes are converted with the documented approximations below; the column
`load_basis` records which conversion produced each day's value.
"""

from __future__ import annotations

import re

import numpy as np

ZONE_WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
"""Edwards (1993) weights for minutes in HR zones 1-5."""

ZONE_COLUMNS: tuple[str, ...] = ("z1_min", "z2_min", "z3_min", "z4_min", "z5_min")

TRIMP_PER_TSS = 2.5
"""TrainingPeaks TSS → Edwards TRIMP. 100 TSS is one hour at threshold (Allen & Coggan 2010),
which is mostly zone 4 by heart rate (60 min × 4 = 240 TRIMP); an easy hour (IF 0.65, 42 TSS)
is zone 2 (120 TRIMP, ratio 2.9). 2.5 is the compromise; it is an approximation."""


def edwards_trimp(zone_minutes: np.ndarray) -> np.ndarray:
    """Edwards TRIMP from minutes in zones 1-5, shape (..., 5) → (...). NaN zones count as 0,
    but a row with every zone NaN gives NaN."""
    z = np.asarray(zone_minutes, dtype=float)
    all_nan = np.all(np.isnan(z), axis=-1)
    trimp = np.nansum(z * ZONE_WEIGHTS, axis=-1)
    return np.where(all_nan, np.nan, trimp)


def rpe_zone_weight(rpe_cr10: np.ndarray) -> np.ndarray:
    """The Edwards zone weight (1-5) of a session rated `rpe_cr10` on Borg's CR-10 scale.

    CR-10 1-2 ≈ zone 1, 3-4 ≈ zone 2, 5-6 ≈ zone 3, 7-8 ≈ zone 4, 9-10 ≈ zone 5, following the
    RPE-HR correspondence behind session-RPE (Foster et al. 2001, J Strength Cond Res 15:109;
    Impellizzeri et al. 2004 found sRPE and Edwards TRIMP correlate at r ≈ 0.5-0.85).
    """
    r = np.asarray(rpe_cr10, dtype=float)
    return np.clip(np.ceil(r / 2.0), 1.0, 5.0)


def srpe_to_trimp(rpe_cr10: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Session RPE (Foster 2001: RPE × minutes) → Edwards TRIMP-equivalent: minutes × the zone
    weight of that RPE (see `rpe_zone_weight`). Approximation, recorded as `load_basis='srpe'`."""
    return rpe_zone_weight(rpe_cr10) * np.asarray(minutes, dtype=float)


def tss_to_trimp(tss: np.ndarray) -> np.ndarray:
    """TrainingPeaks/Coggan TSS → Edwards TRIMP-equivalent (`TRIMP_PER_TSS`, approximate)."""
    return TRIMP_PER_TSS * np.asarray(tss, dtype=float)


_STRENGTH = re.compile(
    r"weight|strength|lifting|resistance|functional fitness|crossfit|powerlifting|"
    r"bodybuilding|kettlebell|gym|kraft|musculation|calisthenics",
    re.IGNORECASE,
)


def is_strength_activity(name: str | None) -> bool:
    """Whether an activity name (WHOOP sport, Fitbit/Garmin activity type) is resistance work."""
    return bool(name) and bool(_STRENGTH.search(str(name)))


def derive_load_columns(frame, log):
    """Fill `load_trimp`, `load_basis` and `session` where the loaders left them empty.

    - zone minutes present → Edwards TRIMP (`load_basis='hr_zones'`);
    - a session is inferred from the zone mix and strength minutes (see `infer_session`).
    """
    import pandas as pd

    out = frame.copy()
    zones = out[list(ZONE_COLUMNS)].to_numpy(dtype=float)
    trimp = edwards_trimp(zones) + np.nan_to_num(out["strength_min"].to_numpy(dtype=float)) * 0
    fill = out["load_trimp"].isna() & ~np.isnan(trimp)
    out.loc[fill, "load_trimp"] = trimp[fill.to_numpy()]
    out.loc[fill, "load_basis"] = "hr_zones"
    if fill.any():
        log.add("(combined)", "info", "load_trimp computed from HR-zone minutes", int(fill.sum()))
    return out
