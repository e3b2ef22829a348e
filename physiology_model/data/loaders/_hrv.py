"""Two rules on the HRV channel, applied by `load_exports` to every source after validation.

**SDNN is not RMSSD** (`sdnn_stand_in`). `hrv_rmssd_ms` holds RMSSD only; SDNN (intervals.icu
`hrvSDNN`, Apple Health `HeartRateVariabilitySDNN`, Section 11 `hrv_sdnn`) goes to
`hrv_sdnn_ms`. The world model reads one HRV channel, on the log scale and relative to the
athlete's own baseline (`ln_hrv_z_28d`, the personal level), with a population location per
data source. An athlete whose export has **no RMSSD at all** but has SDNN therefore enters with
SDNN as that channel, under a source of its own (`<source>_sdnn`, e.g. `intervals_icu_sdnn`):
the world model has no population location for it, so it treats it as an unknown device (a
mixture over the known sources' levels) and learns the athlete's level from the data, as it does
for any new device. The rule is never applied to an athlete with any RMSSD value (one series
never mixes the two statistics; days with SDNN only stay without RMSSD), and it is recorded as a
`repair` note, which `periodize plan` shows. Evidence that the day-to-day signal carries over:
on intervals_icu/u01, the one export with both on the same nights (430 days), the day-to-day
changes of ln SDNN and ln RMSSD correlate at r = 0.70 (391 consecutive-day pairs; computed by
`tests/test_loader_intervals_icu.py::test_sdnn_tracks_rmssd_day_to_day`), while the levels
differ (SDNN/RMSSD median 1.59 there), which the per-athlete baseline absorbs. The day-to-day
noise of SDNN is therefore partly its own: the stand-in is a weaker HRV signal, not the same one.

**HRV artefacts** (`filter_hrv_artefacts`). A single implausible morning (a 255 ms reading
in an athlete whose mornings run at 50 ms: a strap losing contact, an ectopic beat the device
did not reject) must not raise an alarm or flip a plan. Rule: a morning's HRV is an artefact
when it is more than `ARTEFACT_RATIO` times, or less than 1/`ARTEFACT_RATIO` of, the median of
the athlete's previous `BASELINE_MORNINGS` measured mornings (at least `MIN_BASELINE` of them),
**and** the next measured morning within `CONFIRM_DAYS` days is not outside the band on the
same side, **and** that morning's resting HR does not corroborate it (HRV down with resting HR
at least `RHR_AGREES` = 10 % above its median over the same mornings, or HRV up with resting HR
10 % below: a bad night after alcohol or at the start of an illness moves both). Such a
morning is set to missing (a `repair` note lists the dates). Two such mornings in a row are a
real change (illness, a training camp at altitude) and are kept. The last
morning (today, for a plan) cannot be confirmed yet: out of band, it is set to missing too and
the note says so; if tomorrow's morning agrees, both are kept when the export is read again.
(A true one-day collapse is then seen a day late by HRV; resting HR still sees it.)
A 3-fold jump is far outside day-to-day variation: the within-athlete SD of ln RMSSD is about
0.1-0.25 (Plews et al. 2012, Eur J Appl Physiol 112:3729), so ln 3 = 1.10 is 4-11 SDs.
On the shared real exports it flags 35 of 1,002 Couzens spot mornings, 16 of 1,875 Welltory spot
readings, 9 of 1,891 LifeSnaps nights, 1 of 6,243 WHOOP nights, 2 of 490 intervals.icu mornings
and none of 2,410 Section 11 ones (without the resting-HR condition WHOOP would lose 48).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from physiology_model.data.table import NoteLog, athlete_rows

SDNN_SUFFIX = "_sdnn"
ARTEFACT_RATIO = 3.0
BASELINE_MORNINGS = 14
MIN_BASELINE = 5
CONFIRM_DAYS = 3
RHR_AGREES = 0.10
"""A resting-HR change (fraction of its recent median) that corroborates an HRV jump."""


def sdnn_stand_in(frame: pd.DataFrame, log: NoteLog, origins: dict[str, str]) -> pd.DataFrame:
    """SDNN as the HRV channel for athletes with no RMSSD at all (module doc). `frame` is a
    validated table; it is returned as it is when no athlete needs the stand-in."""
    rmssd = frame["hrv_rmssd_ms"].to_numpy(dtype=float, copy=True)
    sdnn = frame["hrv_sdnn_ms"].to_numpy(dtype=float)
    source = frame["source"].to_numpy(dtype=object, copy=True)
    changed = False
    for uid, rows in athlete_rows(frame):
        if not np.isnan(rmssd[rows]).all() or np.isnan(sdnn[rows]).all():
            continue
        rmssd[rows] = sdnn[rows]
        source[rows] = [("unknown" if pd.isna(v) else str(v)) + SDNN_SUFFIX for v in source[rows]]
        n = int(np.count_nonzero(~np.isnan(sdnn[rows])))
        named = source[rows.min()]  # the athlete's first row in the frame
        log.add(origins.get(uid, uid), "repair",
                f"{uid}: no RMSSD in the export; its SDNN stands in as the HRV channel, under "
                f"the source '{named}' (a level of its own, learnt from the athlete's data)", n)
        changed = True
    if not changed:
        return frame
    return frame.assign(hrv_rmssd_ms=rmssd,
                        source=pd.Series(source, index=frame.index, dtype=object))


def _rhr_agrees(rhr: np.ndarray, i: int, side: int) -> bool:
    """Whether morning i's resting HR moved with its HRV (module doc): up by RHR_AGREES when
    HRV fell (side -1), down by it when HRV rose, against the median of the previous mornings."""
    prior = rhr[max(0, i - BASELINE_MORNINGS):i]
    prior = prior[np.isfinite(prior)]
    if not np.isfinite(rhr[i]) or prior.size < MIN_BASELINE:
        return False
    change = rhr[i] / np.median(prior) - 1.0
    return change >= RHR_AGREES if side < 0 else change <= -RHR_AGREES


def _median(values: np.ndarray) -> float:
    """`np.median` of a few finite values without its per-call cost (a thousand calls an
    athlete-year): the same middle value, or the same mean of the middle two, (a + b) / 2."""
    ordered = sorted(values.tolist())
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def artefact_mask(dates: pd.Series | np.ndarray, hrv: pd.Series | np.ndarray,
                  rhr: pd.Series | np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """(which mornings are artefacts, whether the last morning is out of band but unconfirmed)
    for one athlete's mornings sorted by date (module doc); Series or arrays."""
    values = np.asarray(hrv, dtype=float)
    heart = np.full(len(values), np.nan) if rhr is None else np.asarray(rhr, dtype=float)
    days = pd.DatetimeIndex(dates)
    measured = np.flatnonzero(np.isfinite(values) & (values > 0))
    logs = np.log(values[measured]) if measured.size else np.array([])
    side = np.zeros(measured.size, dtype=int)  # +1 above the band, -1 below, 0 inside
    for k in range(measured.size):
        prior = logs[max(0, k - BASELINE_MORNINGS):k]
        if prior.size >= MIN_BASELINE:
            dev = logs[k] - _median(prior)
            if abs(dev) > np.log(ARTEFACT_RATIO) and not _rhr_agrees(
                    heart, int(measured[k]), int(np.sign(dev))):
                side[k] = int(np.sign(dev))
    mask = np.zeros(len(values), dtype=bool)
    last_pending = False
    for k in np.flatnonzero(side):
        if k + 1 < measured.size:
            gap = (days[measured[k + 1]] - days[measured[k]]).days
            confirmed = gap <= CONFIRM_DAYS and side[k + 1] == side[k]
            prev_same = k > 0 and side[k - 1] == side[k] and (
                days[measured[k]] - days[measured[k - 1]]).days <= CONFIRM_DAYS
            if not confirmed and not prev_same:
                mask[measured[k]] = True
        else:  # the last morning: nothing can confirm it yet
            prev_same = k > 0 and side[k - 1] == side[k] and (
                days[measured[k]] - days[measured[k - 1]]).days <= CONFIRM_DAYS
            if not prev_same:
                mask[measured[k]] = True
                last_pending = True
    return mask, last_pending


def filter_hrv_artefacts(frame: pd.DataFrame, log: NoteLog,
                         origins: dict[str, str]) -> pd.DataFrame:
    """Isolated implausible HRV mornings set to missing (module doc). `frame` is a validated
    table; it is returned as it is when no morning is set to missing."""
    dates = frame["date"].to_numpy()
    hrv = frame["hrv_rmssd_ms"].to_numpy(dtype=float, copy=True)
    rhr = frame["rhr_bpm"].to_numpy(dtype=float)
    changed = False
    for uid, rows in athlete_rows(frame):
        mask, pending = artefact_mask(dates[rows], hrv[rows], rhr[rows])
        where = origins.get(uid, uid)
        if mask.any():
            hit = rows[mask]
            shown = ", ".join(f"{pd.Timestamp(d):%Y-%m-%d} {v:.0f} ms" for d, v in
                              zip(dates[hit][:5], hrv[hit][:5]))
            more = f" and {len(hit) - 5} more" if len(hit) > 5 else ""
            log.add(where, "repair",
                    f"{uid}: isolated HRV mornings more than {ARTEFACT_RATIO:g}x off the median "
                    f"of the previous {BASELINE_MORNINGS} taken as artefacts and set to missing "
                    f"({shown}{more})", int(mask.sum()))
            hrv[hit] = np.nan
            changed = True
        if pending:
            log.add(where, "repair",
                    f"{uid}: the last HRV morning is more than {ARTEFACT_RATIO:g}x off the recent "
                    f"median and nothing confirms it yet: treated as an artefact until the next "
                    f"morning agrees")
    return frame.assign(hrv_rmssd_ms=hrv) if changed else frame
