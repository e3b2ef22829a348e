"""Daily-table frame → padded per-athlete arrays: the input of the PyMC fit and the WorldModel.

`prepare_arrays` turns the canonical daily table (DESIGN §3) into one `AthleteArrays`: every
series of every athlete on one calendar grid, shape (n_athletes, n_days), left-aligned (day
index 0 is the athlete's first day) and padded at the end, with a `valid` mask.

Conventions (shared by the fit, the WorldModel and the evaluation):

- Which athletes: those `preprocess.assess_athletes` keeps **and** with at least `min_hrv_days`
  days of HRV inside the window used (the model is about HRV, RHR and recovery). Every athlete of
  the frame appears in `AthleteArrays.report` with the reason when excluded.
- The window: each athlete's calendar from their first row to their last day with a target
  observation (HRV, RHR or recovery), every day present (calendar-filled). Trailing days with
  load but no physiology inform nothing and are cut. `max_days` keeps only the most recent
  `max_days` days of that window (to bound fit time).
- Targets: `hrv` = ln RMSSD (ln ms), `rhr` = bpm, `recovery` = percent 0-100; NaN = missing,
  never imputed (the likelihood skips missing entries).
- Loads (units of `params.py`): w = load_trimp / `params.LOAD_SCALE_TRIMP` and
  u = (z4_min + z5_min + strength_min) / `params.HI_LOAD_SCALE_MIN`. u is known on a day when any
  of its three columns is (the missing ones count 0), or when load_trimp is a measured 0 (no
  training at all): `daily_loads`. A missing value on a day inside the window is filled with
  the median of the athlete's known values before that day (`fill_missing_loads`, the one fill
  of the project: the world model's forecasts and the baselines use it too) and flagged in
  `load_known` / `hi_load_known`; an athlete with no known w gets the median known w of all
  athletes in the frame (so its states sit at a typical level and its load gains are
  prior-only); an athlete with no known u gets u = 0 (sources without zone minutes: the fast
  channel is then constant and its average effect is carried by the level).
- The day-0 state: the steady morning state at the athlete's mean (filled) load
  (`banister.steady_morning_state`), so a series does not start "untrained". It depends on the
  time constants; `initial_state` is computed at the prior-median τ's (`REFERENCE_TAUS_DAYS`),
  and the fit recomputes it from each athlete's own τ's and `mean_load` / `mean_hi_load`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.data.table import DailyTable
from physiology_model.dynamics import banister, params
from physiology_model.dynamics.observation import TARGETS
from physiology_model.features.preprocess import PreprocessConfig, assess_athletes

REFERENCE_TAUS_DAYS: dict[str, float] = {
    "tau_fit": float(np.exp(params.ATHLETE_PARAMS["tau_fat_days"].loc_mean)
                     + np.exp(params.ATHLETE_PARAMS["tau_gap_days"].loc_mean)),
    "tau_fat": float(np.exp(params.ATHLETE_PARAMS["tau_fat_days"].loc_mean)),
    "tau_fast": params.TAU_FAST_DAYS,
}
"""The prior-median time constants (days) behind `AthleteArrays.initial_state`."""

_SERIES_KEYS: tuple[str, ...] = ("dates", "load", "load_known", "hi_load", "hi_load_known",
                                 "hrv", "rhr", "recovery")

REPORT_COLUMNS: tuple[str, ...] = (
    "user_id", "source", "included", "reason", "first_date", "last_date", "window_days",
    "hrv_days", "rhr_days", "recovery_days", "load_known_days",
)


@dataclass(frozen=True)
class AthleteArrays:
    """Every included athlete's series on one padded calendar grid.

    Shapes: A = n_athletes, T = n_days (the longest window). Athlete a's days are
    `[0, n_valid[a])`; later entries are padding (`valid` False, loads 0, targets NaN, dates NaT).
    """

    user_ids: tuple[str, ...]
    """(A,) athlete ids, sorted."""
    sources: tuple[str, ...]
    """The distinct data sources (`source` column), sorted; `source_index` points into it."""
    source_index: np.ndarray
    """(A,) int: each athlete's source, an index into `sources`."""
    dates: np.ndarray
    """(A, T) datetime64[D]: the calendar day of each entry (NaT on padding)."""
    valid: np.ndarray
    """(A, T) bool: the day is inside the athlete's window."""
    load: np.ndarray
    """(A, T) float: daily load w = load_trimp / 100 (hundreds of TRIMP), filled (see module)."""
    load_known: np.ndarray
    """(A, T) bool: w was measured (False where filled, and on padding)."""
    hi_load: np.ndarray
    """(A, T) float: high-intensity load u = (z4 + z5 + strength minutes) / 60 (h), filled."""
    hi_load_known: np.ndarray
    """(A, T) bool: u was measured."""
    hrv: np.ndarray
    """(A, T) float: ln RMSSD (ln ms), NaN = missing."""
    rhr: np.ndarray
    """(A, T) float: resting HR (bpm), NaN = missing."""
    recovery: np.ndarray
    """(A, T) float: recovery score (percent 0-100), NaN = missing."""
    mean_load: np.ndarray
    """(A,) float: mean of the filled w over the athlete's window (hundreds of TRIMP per day)."""
    mean_hi_load: np.ndarray
    """(A,) float: mean of the filled u over the window (h per day)."""
    initial_state: np.ndarray
    """(A, banister.N_CHANNELS): the day-0 morning state, the steady state at (`mean_load`,
    `mean_hi_load`) with the time constants `REFERENCE_TAUS_DAYS` (raw Banister units, not
    EWMA-normalised)."""
    report: pd.DataFrame
    """One row per athlete of the input frame (`REPORT_COLUMNS`): included or not and why, the
    window and its observation counts."""

    @property
    def n_athletes(self) -> int:
        return len(self.user_ids)

    @property
    def n_days(self) -> int:
        return int(self.valid.shape[1])

    @property
    def n_valid(self) -> np.ndarray:
        """(A,) int: days in each athlete's window."""
        return self.valid.sum(axis=1)

    @property
    def athlete_sources(self) -> tuple[str, ...]:
        """(A,) each athlete's source name."""
        return tuple(self.sources[i] for i in self.source_index)

    def target(self, name: str) -> np.ndarray:
        """The (A, T) array of one target (`TARGETS`)."""
        if name not in TARGETS:
            raise KeyError(f"unknown target {name!r}; expected one of {TARGETS}")
        return getattr(self, name)

    def to_series(self) -> list[dict[str, Any]]:
        """The per-athlete series (the input format of `stack_series`), padding removed."""
        out = []
        for a, user_id in enumerate(self.user_ids):
            n = int(self.n_valid[a])
            item: dict[str, Any] = {"user_id": user_id,
                                    "source": self.sources[self.source_index[a]]}
            for key in _SERIES_KEYS:
                item[key] = getattr(self, key)[a, :n]
            out.append(item)
        return out

    def head(self, n_days: int) -> AthleteArrays:
        """Each athlete's first `n_days` days only, with the mean loads and initial states
        recomputed from those days (e.g. to personalise on the start of a history)."""
        series = [{**s, **{k: s[k][:n_days] for k in _SERIES_KEYS}} for s in self.to_series()]
        return stack_series(series, self.report)

    def subset(self, athletes: Any) -> AthleteArrays:
        """The arrays of some athletes (indices or a boolean mask over athletes, in the given
        order), trimmed to their longest window. `sources` is kept whole, so source indices stay
        comparable with the full set; `report` is kept whole too."""
        index = np.arange(self.n_athletes)[athletes]
        index = np.atleast_1d(index)
        n_days = int(self.valid[index].sum(axis=1).max()) if len(index) else 0
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "user_ids":
                value = tuple(self.user_ids[i] for i in index)
            elif f.name in ("sources", "report"):
                pass  # kept whole (see the docstring)
            elif value.ndim == 2 and value.shape[1] == self.n_days and f.name != "initial_state":
                value = value[index, :n_days]
            else:
                value = value[index]
            values[f.name] = value
        return AthleteArrays(**values)


LOAD_FILL_HEAD_DAYS = 7
"""Days before an athlete's first known load are filled with the median known load of the first
this many days (the only look-ahead of the fill, and only before any forecast origin:
`observation.WARM_START_DAYS` is the same 7 days)."""


def daily_loads(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(w, u) per row of a canonical frame, NaN where unknown (units of `params.py`):
    w = load_trimp / `params.LOAD_SCALE_TRIMP` (hundreds of TRIMP per day) and
    u = (z4_min + z5_min + strength_min) / `params.HI_LOAD_SCALE_MIN` (hours per day), the sum
    of whichever of the three are known; u is also known (0) on a day whose load_trimp is a
    measured 0 (no training at all), and NaN when nothing says how hard the day was. The one
    definition used by the fit (`prepare_arrays`), the world model's forecasts
    (`forecast.series_from_frame`) and the baselines (`forecast.py`)."""
    def column(name: str) -> np.ndarray:
        if name not in frame.columns:
            return np.full(len(frame), np.nan)
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)

    trimp = column("load_trimp")
    parts = np.stack([column("z4_min"), column("z5_min"), column("strength_min")])
    any_part = np.isfinite(parts).any(axis=0)
    minutes = np.where(any_part, np.nansum(np.where(np.isfinite(parts), parts, 0.0), axis=0),
                       np.nan)
    minutes = np.where(~any_part & (trimp == 0.0), 0.0, minutes)
    return trimp / params.LOAD_SCALE_TRIMP, minutes / params.HI_LOAD_SCALE_MIN


def fill_missing_loads(values: np.ndarray, fallback: float,
                       head_days: int = LOAD_FILL_HEAD_DAYS) -> np.ndarray:
    """One athlete's daily loads (consecutive days, NaN = unknown) with every unknown day
    filled by the median of the athlete's known loads **before** that day: causal, so a
    forecast never sees a later load through the fill, and the same fill in the fit, the world
    model's forecasts and the baselines. Days before the first known load take the median known
    load of the first `head_days` days, else `fallback` (no known load there at all)."""
    x = np.asarray(values, dtype=float)
    running = pd.Series(x).expanding().median().shift(1).to_numpy()
    head = x[:head_days][np.isfinite(x[:head_days])]
    start = float(np.median(head)) if head.size else float(fallback)
    fill = np.where(np.isnan(running), start, running)
    return np.where(np.isnan(x), fill, x)


def prepare_arrays(
    frame: pd.DataFrame | DailyTable,
    *,
    max_days: int | None = None,
    min_hrv_days: int = 28,
    preprocess: PreprocessConfig | None = None,
    user_ids: tuple[str, ...] | list[str] | None = None,
    require_kept: bool = True,
) -> AthleteArrays:
    """Build the padded per-athlete arrays of a daily-table frame (see the module docstring).

    Args:
        frame: the canonical daily-table frame (`DailyTable.frame`) or the table itself.
        max_days: keep at most this many of each athlete's most recent days (None = all).
        min_hrv_days: exclude an athlete with fewer HRV days than this inside the window.
        preprocess: the rule of `assess_athletes` (which athletes are usable at all;
            None = `PreprocessConfig()`).
        user_ids: restrict to these athletes (None = every athlete of the frame).
        require_kept: apply `assess_athletes`; False keeps athletes it would drop (e.g. to
            personalise a new athlete from a short history); `min_hrv_days` still applies.

    Raises:
        ValueError: if no athlete is left, or `max_days` < 1.
    """
    if max_days is not None and max_days < 1:
        raise ValueError(f"max_days must be ≥ 1 or None, got {max_days}")
    if isinstance(frame, DailyTable):
        frame = frame.frame
    if user_ids is not None:
        frame = frame[frame["user_id"].isin(list(user_ids))]
    assessed = assess_athletes(DailyTable(frame), preprocess or PreprocessConfig())
    assessed = assessed.set_index("user_id")
    known_loads = frame["load_trimp"].to_numpy(dtype=float) / params.LOAD_SCALE_TRIMP
    known_loads = known_loads[~np.isnan(known_loads)]
    population_load = float(np.median(known_loads)) if known_loads.size else 0.0

    report_rows: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    for user_id, g in frame.groupby("user_id", sort=True):
        source = g["source"].dropna()
        row: dict[str, Any] = {"user_id": user_id,
                               "source": str(source.iloc[0]) if len(source) else "unknown"}
        observed = g[["hrv_rmssd_ms", "rhr_bpm", "recovery_pct"]].notna().any(axis=1)
        reason = ""
        if require_kept and not bool(assessed.loc[user_id, "kept"]):
            reason = f"dropped by assess_athletes: {assessed.loc[user_id, 'reason']}"
        elif not observed.any():
            reason = "no HRV, RHR or recovery at all"
        if not observed.any():
            report_rows.append({**row, "included": False, "reason": reason})
            continue
        start = g["date"].min()
        end = g.loc[observed, "date"].max()
        if max_days is not None:
            start = max(start, end - pd.Timedelta(days=max_days - 1))
        calendar = pd.date_range(start, end, freq="D")
        g = g.set_index("date").reindex(calendar)
        hrv = np.log(g["hrv_rmssd_ms"].to_numpy(dtype=float))
        w, u = daily_loads(g)
        counts = {
            "first_date": calendar[0].date(), "last_date": calendar[-1].date(),
            "window_days": len(calendar), "hrv_days": int(np.isfinite(hrv).sum()),
            "rhr_days": int(g["rhr_bpm"].notna().sum()),
            "recovery_days": int(g["recovery_pct"].notna().sum()),
            "load_known_days": int(np.isfinite(w).sum()),
        }
        if not reason and counts["hrv_days"] < min_hrv_days:
            reason = f"only {counts['hrv_days']} HRV days in the window (< {min_hrv_days})"
        report_rows.append({**row, **counts, "included": not reason, "reason": reason})
        if reason:
            continue
        series.append({
            "user_id": user_id, "source": row["source"],
            "dates": calendar.to_numpy().astype("datetime64[D]"),
            "load": fill_missing_loads(w, population_load), "load_known": np.isfinite(w),
            "hi_load": fill_missing_loads(u, 0.0), "hi_load_known": np.isfinite(u),
            "hrv": hrv, "rhr": g["rhr_bpm"].to_numpy(dtype=float),
            "recovery": g["recovery_pct"].to_numpy(dtype=float),
        })

    report = pd.DataFrame(report_rows).reindex(columns=list(REPORT_COLUMNS))
    report["included"] = report["included"].astype(bool)
    if not series:
        raise ValueError("no athlete meets the rules of prepare_arrays:\n"
                         + report[["user_id", "reason"]].to_string(index=False))
    return stack_series(series, report)


def stack_series(series: list[dict[str, Any]], report: pd.DataFrame | None = None
                 ) -> AthleteArrays:
    """Pad per-athlete series to one (A, T) grid (left-aligned) and derive the mean loads and
    initial states.

    Each item of `series` is a dict with `user_id` (str), `source` (str), `dates`
    (datetime64[D], consecutive days) and equally long arrays `load`, `hi_load` (filled, in the
    units of `AthleteArrays`), `load_known`, `hi_load_known` (bool), `hrv` (ln ms), `rhr` (bpm),
    `recovery` (percent), NaN = missing. Used by `prepare_arrays` and by simulations.
    """
    if report is None:
        report = pd.DataFrame({"user_id": [s["user_id"] for s in series],
                               "source": [s["source"] for s in series], "included": True,
                               "reason": ""}).reindex(columns=list(REPORT_COLUMNS))
    n_athletes = len(series)
    n_days = max(len(s["dates"]) for s in series)

    def grid(key: str, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full((n_athletes, n_days), fill, dtype=dtype)
        for a, s in enumerate(series):
            out[a, : len(s[key])] = s[key]
        return out

    valid = np.zeros((n_athletes, n_days), dtype=bool)
    for a, s in enumerate(series):
        valid[a, : len(s["dates"])] = True
    load, hi_load = grid("load", 0.0, float), grid("hi_load", 0.0, float)
    n_valid = valid.sum(axis=1)
    mean_load = load.sum(axis=1) / n_valid
    mean_hi_load = hi_load.sum(axis=1) / n_valid
    decays = banister.decay_factors(REFERENCE_TAUS_DAYS["tau_fit"], REFERENCE_TAUS_DAYS["tau_fat"],
                                    REFERENCE_TAUS_DAYS["tau_fast"])
    sources = tuple(sorted({s["source"] for s in series}))
    return AthleteArrays(
        user_ids=tuple(s["user_id"] for s in series),
        sources=sources,
        source_index=np.array([sources.index(s["source"]) for s in series], dtype=int),
        dates=grid("dates", np.datetime64("NaT"), "datetime64[D]"),
        valid=valid,
        load=load,
        load_known=grid("load_known", False, bool),
        hi_load=hi_load,
        hi_load_known=grid("hi_load_known", False, bool),
        hrv=grid("hrv", np.nan, float),
        rhr=grid("rhr", np.nan, float),
        recovery=grid("recovery", np.nan, float),
        mean_load=mean_load,
        mean_hi_load=mean_hi_load,
        initial_state=banister.steady_morning_state(mean_load, mean_hi_load, decays),
        report=report,
    )
