"""The Banister forecast of one athlete: a daily series on a gap-free calendar, and predictive
Gaussians and samples of ln HRV, RHR and recovery at given origins and horizons, with the noise
filtered through the observed residuals (`drift.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import (
    NOISE_SIGMA,
    WARM_START_DAYS,
    latent_states,
    logit_to_recovery,
    observation_means,
    recovery_to_logit,
)
from physiology_model.errors import DataError
from physiology_model.features.batch import weekdays
from physiology_model.model.arrays import daily_loads, fill_missing_loads
from physiology_model.model.drift import (
    NO_DRIFT,
    NoiseComponents,
    SlowDrift,
    filter_residuals,
    forecast_residual,
    noise_components,
)


@dataclass(frozen=True)
class AthleteSeries:
    """One athlete's daily series on a gap-free calendar, in model units.

    `load`, `hi_load`: (T,) w and u (params.py, `arrays.daily_loads`), missing days filled
    with the athlete's median known value before that day (`arrays.fill_missing_loads`);
    `hrv` ln ms, `rhr` bpm, `recovery_logit`: (T,) with NaN where not observed.
    `dates` (T,) datetime64[D]: the calendar, whose weekdays the observation equations read.
    """

    dates: np.ndarray
    load: np.ndarray
    hi_load: np.ndarray
    hrv: np.ndarray
    rhr: np.ndarray
    recovery_logit: np.ndarray
    source: str | None


def series_from_frame(frame: pd.DataFrame) -> AthleteSeries:
    """An `AthleteSeries` from one athlete's canonical rows (any order, gaps allowed)."""
    if frame.empty:
        raise DataError("(history)", "no rows")
    if frame["user_id"].nunique() > 1:
        raise DataError("(history)", "rows of more than one athlete")
    f = frame.sort_values("date")
    dates = pd.date_range(f["date"].min(), f["date"].max(), freq="D")
    f = f.set_index("date").reindex(dates)
    w, u = daily_loads(f)
    w = fill_missing_loads(w, 0.0, WARM_START_DAYS)
    u = fill_missing_loads(u, 0.0, WARM_START_DAYS)
    hrv = np.log(f["hrv_rmssd_ms"].to_numpy(dtype=float))
    sources = f["source"].dropna()
    return AthleteSeries(
        dates=dates.to_numpy(dtype="datetime64[D]"), load=w, hi_load=u, hrv=hrv,
        rhr=f["rhr_bpm"].to_numpy(dtype=float),
        recovery_logit=recovery_to_logit(f["recovery_pct"].to_numpy(dtype=float)),
        source=str(sources.iloc[-1]) if len(sources) else None)


def stack_athletes(draws: Sequence[dict[str, np.ndarray]], series: Sequence[AthleteSeries]
                   ) -> tuple[dict[str, np.ndarray], AthleteSeries, list[tuple[int, int]]]:
    """Several athletes' posterior draws and series (the same calendar length) as one set of
    draws with per-draw series (S_total, T) (dates too: each draw's own calendar), for
    `forecast_gaussians` to forecast them in one pass; returns the draws, the series (new
    arrays, writable) and each athlete's (start, end) rows of the draws."""
    sizes = [len(np.asarray(d["tau_fat_days"])) for d in draws]
    ends = np.cumsum(sizes)
    p = {k: np.concatenate([np.broadcast_to(d[k], (n,)) for d, n in zip(draws, sizes)])
         for k in draws[0]}
    stacked = AthleteSeries(
        source=series[0].source,
        **{f: np.concatenate([np.broadcast_to(getattr(x, f), (n, x.load.shape[-1]))
                              for x, n in zip(series, sizes)])
           for f in ("dates", "load", "hi_load", "hrv", "rhr", "recovery_logit")})
    return p, stacked, [(int(e - n), int(e)) for e, n in zip(ends, sizes)]


PLAN_LOAD_COLUMNS: tuple[str, ...] = ("load_trimp", "z4_min", "z5_min", "strength_min")
"""The load columns a plan may give (`WorldModel.predict`); a missing zone/strength column is 0."""


def plan_frame(history: pd.DataFrame, planned_loads: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One athlete's calendar-filled rows with a plan written in: the planned loads on today
    (when today's row has no load yet) or from tomorrow on, one row per planned day, plus one
    more day (zero load, no physiology) whose morning follows the last planned day.

    Returns the frame and the row of the first planned day. Physiology of the new days is NaN;
    history rows keep every column (the residual's features are built from them).
    """
    f = history.sort_values("date")
    user = str(f["user_id"].iloc[0])
    first, last = f["date"].iloc[0], f["date"].iloc[-1]
    days = (last - first).days + 1  # the history's calendar
    start = days if pd.notna(f["load_trimp"].iloc[-1]) else days - 1  # today trained or not
    horizon = len(planned_loads)
    # one reindex onto the calendar and the new days
    dates = pd.date_range(first, periods=max(days, start + horizon + 1), freq="D")
    f = f.set_index("date").reindex(dates).rename_axis("date").reset_index()
    f["user_id"] = user
    if "source" in f.columns:
        f["source"] = f["source"].ffill()
    rows = np.arange(start, start + horizon + 1)
    for column in PLAN_LOAD_COLUMNS:
        given = (planned_loads[column].to_numpy(dtype=float) if column in planned_loads
                 else np.zeros(horizon))
        values = (f[column].to_numpy(dtype=float, copy=True) if column in f.columns
                  else np.full(len(f), np.nan))
        values[rows] = np.concatenate([np.nan_to_num(given), [0.0]])
        f[column] = values
    return f, start



def observed_targets(series: AthleteSeries) -> dict[str, np.ndarray]:
    return {"hrv": series.hrv, "rhr": series.rhr, "recovery": series.recovery_logit}


def forecast_gaussians(p: dict[str, np.ndarray], series: AthleteSeries, origins: np.ndarray,
                       horizon: int, drift: Mapping[str, SlowDrift] | None = None
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each posterior draw's Gaussian forecast of mornings d0 .. d0+horizon−1 at each origin d0.

    Same timing as `forecast_samples` (loads of days < d0+horizon−1, observations of days < d0).
    The residual of each target is Kalman-filtered through day d0 − 1 with the draws' slow
    and fast noise components (`drift.noise_components`: the posterior's own; for a model
    fitted before they were in the likelihood, its `drift` setting, and a target not in `drift`
    has the single AR(1), i.e. conditioned on its last observed value) and pushed forward. Returns {target:
    (mean, sd)}, each (n_origins, n_draws, horizon), on the model scale: hrv ln ms, rhr bpm,
    recovery logit. The predictive is the equally weighted mixture over draws. The series'
    arrays are one athlete's (T,), or each draw's own (S, T): draws of several athletes with
    the same calendar length, stacked (each draw's forecast is its own, elementwise).
    """
    origins = np.asarray(origins, dtype=int)
    drift = drift or {}
    lat = latent_states(p, series.load, series.hi_load)
    means = observation_means(p, lat, weekdays(series.dates))
    n_days = series.load.shape[-1]
    target_days = origins[:, None] + np.arange(horizon)[None, :]  # (O, H)
    if (target_days.max(initial=-1) >= n_days
            or origins.min(initial=WARM_START_DAYS) < WARM_START_DAYS):
        raise ValueError(f"origins must satisfy {WARM_START_DAYS} <= d0 and "
                         f"d0 + horizon - 1 < len(series)")
    steps = target_days - (origins - 1)[:, None]
    # the targets' filters are independent and elementwise over draws: one filter of the
    # three stacked along the draw axis (one loop over the days, not three)
    targets = observed_targets(series)
    resid = np.concatenate([y - means[t] for t, y in targets.items()])  # (3S, T)
    n_draws = lat.shape[0]
    parts = [noise_components(p, t, drift.get(t, NO_DRIFT)) for t in targets]
    components = NoiseComponents(*(np.concatenate([np.broadcast_to(getattr(c, f), (n_draws,))
                                                   for c in parts])
                                   for f in ("share", "phi_slow", "phi_fast")))
    sigma = np.concatenate([np.broadcast_to(np.asarray(p[NOISE_SIGMA[t]], dtype=float),
                                            (n_draws,)) for t in targets])
    states = filter_residuals(resid, sigma, components, days=origins.max(initial=0))
    r_mean, r_sd = forecast_residual(states, origins - 1, steps)  # (O, 3S, H)
    out = {}
    for k, target in enumerate(targets):
        mean = means[target][:, target_days].transpose(1, 0, 2)  # (O, S, H)
        rows = slice(k * n_draws, (k + 1) * n_draws)
        out[target] = (mean + r_mean[:, rows], r_sd[:, rows])
    return out


def sample_gaussians(gaussians: dict[str, tuple[np.ndarray, np.ndarray]], n_samples: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Samples of the draw mixture of `forecast_gaussians`: each (n_origins, n_samples,
    horizon), on the model scale (recovery logit). One draw index per (origin, sample), shared
    by the targets."""
    mean0 = next(iter(gaussians.values()))[0]
    n_origins, n_draws = mean0.shape[:2]
    draw = rng.integers(0, n_draws, size=(n_origins, n_samples))
    rows = np.arange(n_origins)[:, None]
    out = {}
    for target, (mean, sd) in gaussians.items():
        cond_mean, cond_sd = mean[rows, draw], sd[rows, draw]
        out[target] = cond_mean + cond_sd * rng.standard_normal(cond_mean.shape)
    return out


def forecast_samples(p: dict[str, np.ndarray], series: AthleteSeries, origins: np.ndarray,
                     horizon: int, n_samples: int, rng: np.random.Generator,
                     drift: Mapping[str, SlowDrift] | None = None) -> dict[str, np.ndarray]:
    """Predictive samples for mornings d0 .. d0+horizon−1 at each origin d0.

    Uses loads of days < d0+horizon−1 (the loads actually done, or planned) and observations of
    days < d0 only: the residual of each target is filtered through day d0 − 1
    (`forecast_gaussians`; with no `drift` the AR(1) residual conditioned on its last observed
    value k days before the target day: r ~ N(φ^k r_last, σ²(1 − φ^{2k}))).
    Returns {"hrv": ln ms, "rhr": bpm, "recovery": %}, each (n_origins, n_samples, horizon).
    """
    samples = sample_gaussians(forecast_gaussians(p, series, origins, horizon, drift),
                               n_samples, rng)
    samples["recovery"] = logit_to_recovery(samples["recovery"])
    return samples
