"""One person or two? The level test at a junction of an athlete's history (issue 21, item 3).

Two people's exports in one folder whose dates interleave are caught by their overlapping
cycles (`whoop.check_one_person`). When they do not overlap (one person's history followed by
another's, or two files of separate date ranges), the data can still show it: a person's
nightly HRV and resting heart rate change slowly, so the levels just before and just after a
junction are one person's unless both jump at once.

The rule, at each *junction*: a gap of `JUNCTION_GAP_DAYS` or more between two mornings with
readings, or the boundary between two files of separate date ranges. The level on each side is
the median over the `LEVEL_MORNINGS` mornings nearest the junction that have both HRV (ln
RMSSD) and resting HR, and needs `MIN_MORNINGS` of them. The two sides are two people when ln
RMSSD moves by `HRV_JUMP_LN` or more (a factor of 1.42, e.g. 45 → 64 ms) **and** resting HR by
`RHR_JUMP_BPM` bpm or more, together.

Calibration on the shipped data (`data/real`, 71 athletes with 56 or more such mornings),
splitting every athlete's history at every morning, not only at gaps: no athlete meets both
thresholds anywhere (the largest, whoop-u06, reaches 0.88 of them; the largest single moves,
0.86 in ln RMSSD and 12.5 bpm, never come together), while the end of one athlete's history
against the start of another's meets both in 38 % of the 4,970 ordered pairs. So one person
after a long gap (a layoff, an illness, a new strap) is not refused, and two people are told
apart when their levels differ clearly; two people of similar HRV and resting HR cannot be
told apart from the readings (a note names the files where two files are merged)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.errors import DataError

JUNCTION_GAP_DAYS = 14
LEVEL_MORNINGS = 28
MIN_MORNINGS = 14
HRV_JUMP_LN = 0.35
RHR_JUMP_BPM = 8.0


@dataclass(frozen=True)
class Levels:
    """Median nightly RMSSD (ms) and resting HR (bpm) on one side of a junction."""

    hrv_ms: float
    rhr_bpm: float
    mornings: int


def levels(hrv_ms: pd.Series, rhr_bpm: pd.Series, *, last: bool) -> Levels | None:
    """The level of the `LEVEL_MORNINGS` mornings with both readings nearest the junction:
    the last ones (`last`) of the side before it, the first ones of the side after. None with
    fewer than `MIN_MORNINGS`."""
    both = pd.DataFrame({"hrv": hrv_ms.to_numpy(dtype=float),
                         "rhr": rhr_bpm.to_numpy(dtype=float)}).dropna()
    both = both[both["hrv"] > 0]
    if len(both) < MIN_MORNINGS:
        return None
    side = both.iloc[-LEVEL_MORNINGS:] if last else both.iloc[:LEVEL_MORNINGS]
    return Levels(float(np.exp(np.log(side["hrv"]).median())), float(side["rhr"].median()),
                  len(side))


def two_people(before: Levels | None, after: Levels | None) -> bool:
    """Whether the levels on the two sides of a junction cannot be one person's (module
    docstring)."""
    if before is None or after is None:
        return False
    return (abs(np.log(after.hrv_ms) - np.log(before.hrv_ms)) >= HRV_JUMP_LN
            and abs(after.rhr_bpm - before.rhr_bpm) >= RHR_JUMP_BPM)


def describe(before: Levels, after: Levels) -> str:
    return (f"HRV {before.hrv_ms:.0f} → {after.hrv_ms:.0f} ms and resting HR "
            f"{before.rhr_bpm:.0f} → {after.rhr_bpm:.0f} bpm (medians of {before.mornings} and "
            f"{after.mornings} mornings)")


def check_gaps(frame: pd.DataFrame, where: str | Path) -> None:
    """Refuse one athlete's rows (`date`, `hrv_rmssd_ms`, `rhr_bpm`, sorted or not) whose
    levels jump across a gap of `JUNCTION_GAP_DAYS` or more (module docstring): `DataError`
    naming `where`, the dates and the levels."""
    if "hrv_rmssd_ms" not in frame or "rhr_bpm" not in frame:
        return
    dates = pd.to_datetime(frame["date"]).to_numpy()
    hrv = frame["hrv_rmssd_ms"].to_numpy(dtype=float)
    rhr = frame["rhr_bpm"].to_numpy(dtype=float)
    both = ~(np.isnat(dates) | np.isnan(hrv) | np.isnan(rhr))
    if np.count_nonzero(both) < 2 * MIN_MORNINGS:
        return
    order = np.argsort(dates[both], kind="stable")
    dates, hrv, rhr = dates[both][order], hrv[both][order], rhr[both][order]
    gaps = (dates[1:] - dates[:-1]) // np.timedelta64(1, "D")  # gaps[i - 1]: before row i
    for i in np.flatnonzero(gaps >= JUNCTION_GAP_DAYS) + 1:
        before = levels(pd.Series(hrv[:i]), pd.Series(rhr[:i]), last=True)
        after = levels(pd.Series(hrv[i:]), pd.Series(rhr[i:]), last=False)
        if two_people(before, after):
            user = frame["user_id"].iloc[0] if "user_id" in frame else "this athlete"
            raise DataError(where, f"{user}: across the {int(gaps[i - 1])}-day gap from "
                                   f"{pd.Timestamp(dates[i - 1]):%Y-%m-%d} to "
                                   f"{pd.Timestamp(dates[i]):%Y-%m-%d}, "
                                   f"{describe(before, after)}: one person's nightly HRV and "
                                   f"resting HR do not both jump that far, so these look like "
                                   f"two people's data read as one; give each person's export "
                                   f"its own folder (if it is one person, leave out the rows "
                                   f"before the gap)")
