"""The hybrid world model: the Banister base forecast corrected by the neural residual.

`residual.py` holds the network and its training loop and never computes a base forecast;
`world_model.py` holds the Banister model and knows nothing of torch. This module joins them
(STYLE: "wrap rather than modify"):

- `fit_residual(model, fit_frame, ...)` builds the residual's training and validation rows from
  a fitted `WorldModel`'s own forecasts and trains it with `residual.train_residual`;
- `forecast_with_residual(params, residual, frame, ...)` is the forecast of
  `world_model._ConditionedWorldModel` when the model carries a residual.

The base predictive of one forecast
-----------------------------------
For an origin d0 and a horizon h, the world model's predictive of each target is the equally
weighted mixture, over the S posterior draws s, of the Gaussians N(m_s, v_s) of
`forecast.forecast_gaussians` (the Banister mean plus the residual's noise filtered through
d0 − 1 and carried forward, `drift.py`), on the model scale: ln HRV (ln ms), RHR (bpm), logit recovery.
The residual sees its exact first two moments over all draws (no sampling noise):

    base_mean = mean_s m_s,    base_sd² = mean_s v_s + mean_s (m_s − base_mean)²

and returns a corrected (mean, sd) per target (`TrainedResidual.predict`; a target whose gate is
off keeps the base). The forecast samples are then the base samples moved by the affine map that
carries the base moments onto the corrected ones,

    y = mean + (x − base_mean) · sd / base_sd,

applied to the samples x of enabled targets on the model scale (recovery as a logit, converted
to % afterwards). So the mixture keeps its shape (e.g. its skew from parameter uncertainty) and
gets exactly the residual's mean and SD; targets whose gate is off are the base samples, bit for
bit, and a model whose residual is off everywhere forecasts exactly as without one.

Inputs and timing (`residual.py`, forecast timing in `forecast.py`): the features of day d0 − 1
(`features.build_features`, physiology ≤ d0 − 1 and loads < d0 − 1) and the horizon inputs of
the loads of days d0 − 1 … d0 + h − 2 (`residual.horizon_inputs`, on the world model's causally
filled loads `AthleteSeries.load` / `hi_load`); with the base forecast's own timing, a forecast
reads no physiology of days ≥ d0 and no load of days ≥ d0 + h − 1.

Training rows (`fit_residual`)
------------------------------
Per athlete of the fit, its rows are split in time like `splits.temporal_split`: the first
`1 − validation_fraction` (82 %) are training days, the rest validation days. Training rows are
forecasts whose origin and target day both lie in the training days; validation rows have their
origin in the validation days (as the evaluation scores forecasts from origins after a cutoff).
The residual is fitted on training rows, early-stopped and gated on validation rows.

Limitation: the base posterior was fitted on all of `fit_frame`, validation days included, so
the gate compares the residual with an in-sample base model (a Banister model has few
parameters per athlete, so its in-sample optimism is small); refitting the base on the training
days alone would cost a second MCMC run. Held-out evaluation (`periodize model evaluate`) is
where the hybrid's effect is measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import logit_to_recovery
from physiology_model.features.batch import FEATURE_NAMES, build_features
from physiology_model.model.drift import SlowDrift
from physiology_model.model.forecast import (
    AthleteSeries,
    forecast_gaussians,
    forecast_samples,
    sample_gaussians,
    series_from_frame,
)
from physiology_model.model.residual import (
    TARGETS,
    ResidualConfig,
    TrainedResidual,
    horizon_inputs,
)

DEFAULT_HORIZONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
"""Horizons (days) of the residual's training rows: every step of a week ahead."""

VALIDATION_FRACTION = 0.18
"""Share of each athlete's fit rows (the latest) used as validation days."""

DEFAULT_RESIDUAL_CONFIG = ResidualConfig()
"""The residual's architecture, training and gate unless told otherwise (`ResidualConfig`)."""


# ---------------------------------------------------------------------------------------------
# Base moments and inputs.


def mixture_moments(gaussians: dict[str, tuple[np.ndarray, np.ndarray]]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of the equal-weight mixture over draws of `forecast_gaussians`' output.

    Returns (mean, sd), each (n_origins, horizon, 3) in the order `residual.TARGETS`, on the
    model scale (ln ms, bpm, logit). The variance is the law of total variance: the mean of the
    draws' variances plus the variance of their means.
    """
    means, sds = [], []
    for target in TARGETS:
        m, s = gaussians[target]  # (O, S, H)
        centre = m.mean(axis=1)
        var = (s ** 2).mean(axis=1) + ((m - centre[:, None, :]) ** 2).mean(axis=1)
        means.append(centre)
        sds.append(np.sqrt(var))
    return np.stack(means, axis=-1), np.stack(sds, axis=-1)


def athlete_features(frame: pd.DataFrame) -> np.ndarray:
    """`build_features` of one athlete's rows, one row per calendar day from its first to its
    last date (the rows of `series_from_frame`): (n_days, len(FEATURE_NAMES))."""
    built = build_features(frame)
    return built[list(FEATURE_NAMES)].to_numpy(dtype=float)


def residual_inputs(features: np.ndarray, series: AthleteSeries, origins: np.ndarray,
                    horizons: np.ndarray) -> pd.DataFrame:
    """The residual's unscaled inputs of forecast rows (origin d0, horizon h), one per pair.

    `features`: `athlete_features` of the athlete (aligned with `series`); `origins`,
    `horizons`: (n,) integers with d0 ≥ 1 and d0 + h − 1 < len(series). Columns:
    `FEATURE_NAMES` (day d0 − 1) and `residual.HORIZON_INPUT_NAMES` (loads of days d0 − 1 …
    d0 + h − 2, from the series' filled loads).
    """
    origins = np.asarray(origins, dtype=int)
    horizons = np.asarray(horizons, dtype=int)
    n_days = len(series.load)
    if len(features) != n_days:
        raise ValueError(f"features have {len(features)} rows, the series {n_days} days")
    if origins.size and (origins.min() < 1 or (origins + horizons - 1).max() >= n_days):
        raise ValueError("origins must satisfy 1 <= d0 and d0 + h - 1 < len(series)")
    width = int(horizons.max()) if horizons.size else 1
    days = (origins - 1)[:, None] + np.arange(width)[None, :]  # d0 − 1 … d0 + width − 2
    inside = np.arange(width)[None, :] < horizons[:, None]
    days = np.where(inside, days, 0)
    w = np.where(inside, series.load[days], np.nan)
    u = np.where(inside, series.hi_load[days], np.nan)
    rows = pd.DataFrame(features[origins - 1], columns=list(FEATURE_NAMES))
    return pd.concat([rows, horizon_inputs(horizons, w, u)], axis=1)


def _observed_targets(series: AthleteSeries) -> np.ndarray:
    """(n_days, 3): ln HRV, RHR, logit recovery (the model's scale), NaN where not observed."""
    return np.column_stack([series.hrv, series.rhr, series.recovery_logit])


def _padded(series: AthleteSeries, days: int) -> AthleteSeries:
    """The series with `days` unobserved zero-load days appended, so that a forecast of up to
    `days` steps fits after any origin. States of a day use loads of earlier days only, so the
    real days' forecasts are unchanged; rows whose target day is a padded one are dropped."""
    if days <= 0:
        return series
    nan = np.full(days, np.nan)
    zero = np.zeros(days)
    return dataclasses.replace(
        series, dates=np.concatenate([series.dates, series.dates[-1] + np.arange(1, days + 1)]),
        load=np.concatenate([series.load, zero]), hi_load=np.concatenate([series.hi_load, zero]),
        hrv=np.concatenate([series.hrv, nan]), rhr=np.concatenate([series.rhr, nan]),
        recovery_logit=np.concatenate([series.recovery_logit, nan]))


# ---------------------------------------------------------------------------------------------
# Forecasting with the residual.


def forecast_with_residual(params: dict[str, np.ndarray], residual: TrainedResidual | None,
                           frame: pd.DataFrame, origins: np.ndarray, horizon: int,
                           n_samples: int, rng: np.random.Generator,
                           drift: Mapping[str, SlowDrift] | None = None
                           ) -> dict[str, np.ndarray]:
    """The hybrid forecast of one athlete (see the module docstring).

    Same arguments, timing and output as `forecast.forecast_samples` on
    `series_from_frame(frame)`, `drift` included: {"hrv": ln ms, "rhr": bpm, "recovery": %}, each (n_origins,
    n_samples, horizon). `frame`: the athlete's rows (calendar-filled or not; the features are
    built from them). With no residual, or one whose gate is off for every target, this is
    exactly `forecast_samples` (same samples for the same `rng`).
    """
    series = series_from_frame(frame)
    if residual is None or not any(residual.enabled.values()):
        return forecast_samples(params, series, origins, horizon, n_samples, rng, drift)
    origins = np.asarray(origins, dtype=int)
    gaussians = forecast_gaussians(params, series, origins, horizon, drift)
    samples = sample_gaussians(gaussians, n_samples, rng)
    if origins.size:
        base_mean, base_sd = mixture_moments(gaussians)  # (O, H, 3)
        steps = np.arange(1, horizon + 1)
        inputs = residual_inputs(athlete_features(frame), series, np.repeat(origins, horizon),
                                 np.tile(steps, origins.size))
        mean, sd = residual.predict(inputs, base_mean.reshape(-1, len(TARGETS)),
                                    base_sd.reshape(-1, len(TARGETS)))
        shape = (origins.size, 1, horizon)
        for k, target in enumerate(TARGETS):
            if not residual.enabled[target]:
                continue
            m0 = base_mean[..., k].reshape(shape)
            ratio = (sd[:, k] / base_sd.reshape(-1, len(TARGETS))[:, k]).reshape(shape)
            samples[target] = mean[:, k].reshape(shape) + (samples[target] - m0) * ratio
    samples["recovery"] = logit_to_recovery(samples["recovery"])
    return samples


# ---------------------------------------------------------------------------------------------
# Training rows and fitting.


@dataclass
class ResidualRows:
    """Forecast rows of the residual (one per origin × horizon with an observed target)."""

    inputs: pd.DataFrame
    """`residual_inputs` of the rows (unscaled)."""
    base_mean: np.ndarray
    """(n, 3) base predictive mean (ln ms, bpm, logit)."""
    base_sd: np.ndarray
    """(n, 3) base predictive SD."""
    target: np.ndarray
    """(n, 3) observed values on the same scale, NaN where not observed."""
    user_id: np.ndarray
    """(n,) the athlete of each row."""
    origin: np.ndarray
    """(n,) origin row d0 (position in the athlete's calendar)."""
    horizon: np.ndarray
    """(n,) horizon h (days); the target is the morning of row d0 + h − 1."""

    @staticmethod
    def concat(parts: Sequence[ResidualRows]) -> ResidualRows:
        if not parts:
            return ResidualRows(pd.DataFrame(columns=list(FEATURE_NAMES)), np.zeros((0, 3)),
                                np.ones((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=object),
                                np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        return ResidualRows(
            pd.concat([p.inputs for p in parts], ignore_index=True),
            *(np.concatenate([getattr(p, f) for p in parts])
              for f in ("base_mean", "base_sd", "target", "user_id", "origin", "horizon")))

    def __len__(self) -> int:
        return len(self.target)


def forecast_rows(params: dict[str, np.ndarray], series: AthleteSeries, features: np.ndarray,
                  origins: np.ndarray, horizons: Sequence[int], end: int, user_id: str,
                  drift: Mapping[str, SlowDrift] | None = None) -> ResidualRows:
    """Base forecasts, inputs and observed targets of one athlete at `origins` × `horizons`.

    Keeps the pairs whose target day d0 + h − 1 is < `end` (≤ len(series)) and has at least one
    observed target. All horizons of an origin come from one forecast of max(horizons) steps
    (step h of it is the horizon-h forecast).
    """
    origins = np.asarray(origins, dtype=int)
    horizons = np.asarray(sorted({int(h) for h in horizons}), dtype=int)
    if origins.size == 0:
        return ResidualRows.concat([])
    longest = int(horizons.max())
    padded = _padded(series, longest - 1)
    base_mean, base_sd = mixture_moments(forecast_gaussians(params, padded, origins, longest,
                                                            drift))
    o = np.repeat(origins, horizons.size)
    h = np.tile(horizons, origins.size)
    keep_mean = base_mean[:, horizons - 1].reshape(-1, len(TARGETS))
    keep_sd = base_sd[:, horizons - 1].reshape(-1, len(TARGETS))
    day = o + h - 1
    inside = day < end
    target = np.full((o.size, len(TARGETS)), np.nan)
    target[inside] = _observed_targets(series)[day[inside]]
    keep = inside & np.isfinite(target).any(axis=1)
    o, h = o[keep], h[keep]
    return ResidualRows(residual_inputs(features, series, o, h), keep_mean[keep], keep_sd[keep],
                        target[keep], np.full(o.size, user_id, dtype=object), o, h)


def describe_residual(residual: TrainedResidual) -> str:
    """A few lines for the CLI: the gate per target and the validation CRPS behind it."""
    lines = []
    rows = residual.training.get("rows", {})
    if rows:
        lines.append(f"neural residual: {rows['n_train']} training and {rows['n_val']} "
                     f"validation forecasts of {rows['athletes']} athletes")
    if residual.validation is not None:
        for rec in residual.validation.to_dict(orient="records"):
            state = "ON " if residual.enabled.get(rec["target"]) else "off"
            lines.append(f"  {rec['target']:<9} {state} validation CRPS base "
                         f"{rec['crps_base']:.4f} → with residual {rec['crps_residual']:.4f} "
                         f"({-100 * rec['crps_improvement']:+.1f} %, n = {rec['n']})")
    return "\n".join(lines)
