"""Fitbit conventions shared by the Fitbit-based loaders (LifeSnaps, PMData).

Fitbit reports, per calendar day, the minutes spent below and in its three default heart-rate
zones, "fat burn", "cardio" and "peak" (`IN_DEFAULT_ZONE_1..3`, LifeSnaps'
`minutes_in_default_zone_1..3`). The daily table wants minutes in the five Edwards zones (50-60 %,
60-70 %, 70-80 %, 80-90 %, 90-100 % of HRmax; Edwards 1993). Fitbit has defined its zones two ways:

* **% of HRmax**, the "default zones" (Fitbit device manuals, e.g. the Ionic manual: fat burn
  50-69 %, cardio 70-84 %, peak >= 85 % of an estimated maximum heart rate). PMData's own
  `exercise.json` confirms this for 2019-2020: every participant's zone bounds sit at
  50 / 70 / 85 % of one maximum heart rate (e.g. p01: 86 / 121 / 147 bpm, HRmax ~172).
* **% of heart-rate reserve** for Active Zone Minutes (Fitbit blog, 31 March 2020: zones
  "personalized ... based on your resting heart rate and age"; fat burn from about 40 % HRR).
  Those are reported separately (as Active Zone Minutes), not as the `DEFAULT_ZONE` minutes.

LifeSnaps (2021-2022) carries no zone bounds, but its values fit the %-HRmax definition better:
on fully worn days its 44 participants' median daily mean heart rate is 79 bpm and their median
time in fat burn 164 min/day (participant medians up to 582), which is plausible above 50 % of
HRmax (~95 bpm) but hardly above 40 % of heart-rate reserve (~115 bpm); and time in fat burn
tracks resting heart rate across participants (Spearman 0.61), as expected for a threshold fixed
in % of HRmax (a reserve-based threshold rises with resting heart rate). So both Fitbit loaders
use `ZONE_SHARES_PCT_HRMAX`.

Each Fitbit zone's minutes are spread over the Edwards zones its band overlaps, in proportion to
the overlap (time is assumed uniform within a band: an approximation, since everyday activity
sits near the bottom of the fat-burn band). For the training load only cardio and peak are
counted (`TRAINING_ZONE_SHARES`): whole-day fat-burn minutes are everyday activity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS

ZONE_SHARES_PCT_HRMAX = np.array([
    # z1    z2    z3     z4     z5
    [0.5, 0.5, 0.0, 0.0, 0.0],  # fat burn 50-69 % HRmax = Edwards z1 + z2
    [0.0, 0.0, 2 / 3, 1 / 3, 0.0],  # cardio 70-84 %: z3 (70-79) + the lower half of z4 (80-84)
    [0.0, 0.0, 0.0, 1 / 3, 2 / 3],  # peak 85-100 %: the upper half of z4 (85-89) + z5
])
"""Share of each Fitbit zone's minutes (rows) that go to Edwards z1..z5 (columns), for Fitbit's
default zones (% of HRmax). Rows sum to 1. As TRIMP weights: fat burn 1.5, cardio 3.33,
peak 4.67 per minute."""

TRAINING_ZONE_SHARES = ZONE_SHARES_PCT_HRMAX * np.array([[0.0], [1.0], [1.0]])
"""`ZONE_SHARES_PCT_HRMAX` with the fat-burn row zeroed: the shares the Fitbit loaders use, so
that a day's zone minutes, and the training load derived from them, count only cardio and peak
minutes (>= 70 % of HRmax).

Why: Fitbit's zones cover the whole day, and fat burn (50-69 % HRmax) is where everyday activity
sits. In LifeSnaps, fat burn is a median 134 min a day (up to 1,023) against 0 min of cardio and
peak; at 1.5 TRIMP a minute (half z1, half z2) it made the 130-470 TRIMP a day issue 21 saw, a
hard training day of other sources every day, so a fresh participant's history looked like weeks without rest and the
rest rule planned rest after rest (issue 21). Minutes >= 70 % HRmax do separate training: in
PMData, 73 % of the days with a logged session reach 20 min of cardio + peak, 6 % of the days
without one (pmdata.py). What is lost: an easy session held below 70 % HRmax counts as
nothing, and the warm-up of a harder one is left out (a smaller load than the session had, on
the same Edwards TRIMP scale as every other source's zone minutes)."""

MIN_HR_COVERAGE_MIN = 600.0
"""A day with fewer minutes of heart-rate data than this (below + in all zones; a worn day has
about 1,440) is treated as not worn: its zone minutes are missing, not a measured zero, because
a watch that was off cannot show the training done."""


def fitbit_zones_to_edwards(
    fat_burn_min: pd.Series,
    cardio_min: pd.Series,
    peak_min: pd.Series,
    shares: np.ndarray,
) -> pd.DataFrame:
    """Minutes in Fitbit's three zones → minutes in Edwards zones 1-5 (columns `z1_min..z5_min`).

    `shares` has shape (3, 5), e.g. `ZONE_SHARES_PCT_HRMAX`. A day with any of
    the three Fitbit zones missing gets all five Edwards zones missing. Minutes in, minutes out.
    """
    fitbit = np.column_stack([
        fat_burn_min.to_numpy(dtype=float),
        cardio_min.to_numpy(dtype=float),
        peak_min.to_numpy(dtype=float),
    ])
    edwards = fitbit @ shares  # (days, 3) @ (3, 5) → (days, 5); NaN in any zone → NaN row
    return pd.DataFrame(edwards, columns=list(ZONE_COLUMNS), index=fat_burn_min.index)


def hr_coverage_too_short(below_min: pd.Series, fat_burn_min: pd.Series, cardio_min: pd.Series,
                          peak_min: pd.Series) -> pd.Series:
    """True on days with some zone data but under `MIN_HR_COVERAGE_MIN` minutes of heart rate."""
    total = pd.concat([below_min, fat_burn_min, cardio_min, peak_min], axis=1).sum(
        axis=1, min_count=1)
    return total.notna() & (total < MIN_HR_COVERAGE_MIN)
