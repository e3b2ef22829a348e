"""Stuck readings: the same wearable value on many mornings in a row is not a measurement.

A resting HR of 48 bpm on 84 mornings running (Section 11 u25), or of 58 bpm through runs of
up to 297 days (intervals.icu u01), is a value typed once and carried forward by the app, or a
profile default, not what the sensor saw each night. Believed, it tells the world model that
this athlete's resting HR does not vary at all: its noise SD collapses towards 0, the
likelihood grows without bound and the whole hierarchical fit follows it (measured: with
Section 11 u25 in the fit, NUTS drove that athlete's σ_RHR to 1e-6 and the shared time
constants into another mode).

Rule (`blank_stuck_runs`): on `STUCK_COLUMNS`, a run of at least `STUCK_RUN_DAYS` consecutive
calendar days with the identical value is set to missing, the whole run, and a `repair` note
names the athlete, the channel, the value and the dates. Why 7: on the shipped real exports
(144 athletes with ≥ 14 days of resting HR) a morning repeats the previous morning's resting HR
on a median 9 % of consecutive-day pairs (interquartile range 0-15 %; day-to-day SD/√2 a
median 1.6 bpm), so seven equal mornings in a row have a chance of the order of 0.15⁶ ≈ 1e-5
per day for a real series; outside the stuck series above, the longest such run in those
exports is 5 days (one run each in 6 athletes), while the stuck series run 16 to 297 days.
HRV in milliseconds and device scores repeat even less. Runs of 5 or 6 equal days are kept.
(Measured with the shipped exports; `tests/test_stuck_readings.py` holds the rule.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from physiology_model.data.table import NoteLog, athlete_rows

STUCK_RUN_DAYS = 7
STUCK_COLUMNS = ("rhr_bpm", "hrv_rmssd_ms", "hrv_sdnn_ms", "recovery_pct")
"""The nightly wearable channels the rule applies to."""


def stuck_runs(dates: pd.Series, values: pd.Series, min_days: int = STUCK_RUN_DAYS
               ) -> np.ndarray:
    """Which rows (in the order given; `dates` sorted ascending) lie in a run of at least
    `min_days` consecutive calendar days with the identical measured value."""
    return _runs(pd.to_datetime(dates).to_numpy("datetime64[D]"), values.to_numpy(dtype=float),
                 min_days)


def _runs(day: np.ndarray, x: np.ndarray, min_days: int = STUCK_RUN_DAYS) -> np.ndarray:
    """`stuck_runs` on arrays: `day` as datetime64[D], `x` as float."""
    joined = np.zeros(len(x), dtype=bool)  # row k continues the run of row k - 1
    if len(x) > 1:
        joined[1:] = ((x[1:] == x[:-1]) & np.isfinite(x[1:])
                      & ((day[1:] - day[:-1]) == np.timedelta64(1, "D")))
    run = np.cumsum(~joined)  # one id per run
    lengths = np.bincount(run)
    return np.isfinite(x) & (lengths[run] >= min_days)


def blank_stuck_runs(frame: pd.DataFrame, log: NoteLog,
                     origins: dict[str, str]) -> pd.DataFrame:
    """Runs of identical readings set to missing, with one `repair` note per athlete and
    channel (module doc). `frame` is a validated table; it is returned as it is when
    nothing is blanked."""
    day = frame["date"].to_numpy("datetime64[D]")
    stamps = frame["date"].to_numpy()
    columns = {c: frame[c].to_numpy(dtype=float, copy=True) for c in STUCK_COLUMNS if c in frame}
    blanked = []
    for uid, rows in athlete_rows(frame):
        for column, x in columns.items():
            if np.count_nonzero(~np.isnan(x[rows])) < STUCK_RUN_DAYS:
                continue
            mask = _runs(day[rows], x[rows])
            if not mask.any():
                continue
            hit = rows[mask]
            values = sorted({float(v) for v in x[hit]})
            shown = ", ".join(f"{v:g}" for v in values[:3]) + (" ..." if len(values) > 3 else "")
            first, last = pd.Timestamp(stamps[hit].min()), pd.Timestamp(stamps[hit].max())
            log.add(origins.get(uid, uid), "repair",
                    f"{uid}: {column} repeats the same value ({shown}) on {STUCK_RUN_DAYS} or "
                    f"more days in a row between {first:%Y-%m-%d} and {last:%Y-%m-%d}: a value "
                    f"carried forward, not a nightly measurement; those days set to missing",
                    int(mask.sum()))
            x[hit] = np.nan
            blanked.append(column)
    if not blanked:
        return frame
    return frame.assign(**{c: columns[c] for c in dict.fromkeys(blanked)})
