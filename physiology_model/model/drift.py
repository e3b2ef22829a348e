"""Slow drift in the observation noise: a second, slow AR(1) component and its Kalman filter.

With one AR(1) process (coefficient φ, marginal SD σ) for each target's deviation from the
Banister mean, real athletes' deviations remember more than the model says (after
personalising on 14 days, unseen athletes' residuals stay autocorrelated at lags of weeks:
docs/world_model.md), because an athlete's baseline wanders (season, sleep, illness, device
fit) and a 14-day baseline is uncertain. A 7-day rolling mean follows that level, which is
why it beat the one-AR(1) model's next-day forecast.

Here the deviation is the sum of two independent stationary AR(1) components,

    r_t = ℓ_t + a_t,   ℓ_t = φ_s ℓ_{t−1} + η_t,   a_t = φ_f a_{t−1} + ε_t,
    Var ℓ = w σ²,   Var a = (1 − w) σ²,

so the marginal SD stays the posterior's σ and only the memory changes (a sum of AR(1)s is
the standard components form of a structural time series, Harvey 1989, *Forecasting,
Structural Time Series Models and the Kalman Filter*, ch. 2). With `phi_fast=None` the fast
coefficient is set so that the lag-1 autocorrelation w φ_s + (1 − w) φ_f equals the
posterior's φ (clipped at 0). The state (ℓ, a) is observed without error through r = ℓ + a
on observed days; a Kalman filter (predict on every day, update on observed ones) gives its
mean and covariance each evening, and a k-day forecast is the state pushed k steps. With w = 0
this is exactly the single AR(1) conditioned on its last observed value.

In a model fitted with `PriorConfig.slow_noise`, (w, φ_s, φ_f) per target are population
parameters of the posterior itself (the likelihood is this filter's,
`bayes.noise_log_likelihoods`), so each draw carries its own (`noise_components`). A model
fitted with one AR(1) in its likelihood (the default while the slow component's fit is slow:
docs/world_model.md) gets one (w, φ_s, φ_f) setting per target chosen after the fit on the
training athletes' next-day CRPS (`select_drift`, `WorldModel.fit_drift`; stored in its
model.json): an empirical-Bayes layer, which becomes the slow component of its draws when it
is loaded (`WorldModel._drift_as_slow_noise`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from physiology_model.dynamics.observation import (
    NOISE_PHI,
    NOISE_PHI_SLOW,
    NOISE_SLOW_SHARE,
    split_residual,
)

_TINY = 1e-12


@dataclass(frozen=True)
class NoiseComponents:
    """Per posterior draw (S,) each: the slow share w, φ_s and the fast φ_f of one target."""

    share: np.ndarray
    phi_slow: np.ndarray
    phi_fast: np.ndarray


@dataclass(frozen=True)
class SlowDrift:
    """The two-component noise of one target (module docstring)."""

    fraction: float = 0.0
    """w: the share of the residual variance in the slow component (0 = one AR(1))."""
    phi_slow: float = 0.0
    """φ_s: the slow component's day-to-day coefficient."""
    phi_fast: float | None = None
    """φ_f, or None to keep the posterior's lag-1 autocorrelation."""

    def __post_init__(self):
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"fraction must be in [0, 1), got {self.fraction}")
        if not 0.0 <= self.phi_slow < 1.0:
            raise ValueError(f"phi_slow must be in [0, 1), got {self.phi_slow}")
        if self.phi_fast is not None and not 0.0 <= self.phi_fast < 1.0:
            raise ValueError(f"phi_fast must be in [0, 1) or None, got {self.phi_fast}")

    def fast_phi(self, phi: np.ndarray) -> np.ndarray:
        """φ_f for posterior draws with lag-1 coefficients `phi` (S,)."""
        phi = np.asarray(phi, dtype=float)
        if self.phi_fast is not None:
            return np.full_like(phi, self.phi_fast)
        matched = (phi - self.fraction * self.phi_slow) / (1.0 - self.fraction)
        return np.clip(matched, 0.0, 0.999)

    def components(self, phi: np.ndarray) -> NoiseComponents:
        """The components for posterior draws with coefficients `phi` (S,)."""
        phi = np.asarray(phi, dtype=float)
        return NoiseComponents(np.full_like(phi, self.fraction),
                               np.full_like(phi, self.phi_slow), self.fast_phi(phi))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SlowDrift:
        return cls(**{k: data[k] for k in ("fraction", "phi_slow", "phi_fast")})


NO_DRIFT = SlowDrift()
"""One AR(1) component: the posterior's own noise model."""


def noise_components(p: dict[str, np.ndarray], target: str, drift: SlowDrift = NO_DRIFT
                     ) -> NoiseComponents:
    """A target's two noise components for the draws `p`: the posterior's own (a model fitted
    with the slow component in its likelihood, or an older one whose drift setting became its
    slow component on loading: `params.NOISE_PARAMS` in `p`), else
    the `drift` setting an older model chose after its fit."""
    phi = np.asarray(p[NOISE_PHI[target]], dtype=float)
    share = p.get(NOISE_SLOW_SHARE[target])
    if share is not None and np.any(np.asarray(share) > 0):
        return NoiseComponents(np.asarray(share, dtype=float),
                               np.asarray(p[NOISE_PHI_SLOW[target]], dtype=float), phi)
    return drift.components(phi)


@dataclass(frozen=True)
class FilteredStates:
    """Kalman-filtered (slow, fast) residual state after each evening's update."""

    mean: np.ndarray
    """(T, S, 2)"""
    cov: np.ndarray
    """(T, S, 3): Var slow, Var fast, Cov."""
    var: tuple[np.ndarray, np.ndarray]
    """The components' stationary variances, each (S,)."""
    phi: tuple[np.ndarray, np.ndarray]
    """(φ_s, φ_f), each (S,)."""


def filter_residuals(resid: np.ndarray, sigma: np.ndarray, components: NoiseComponents,
                     days: int | None = None) -> FilteredStates:
    """Filter S draws' residual series `resid` (S, T), NaN = unobserved, through day
    `days` − 1 (default all). `sigma`: (S,) marginal SDs; `components`: the draws' slow share
    and coefficients (`noise_components`)."""
    resid = np.asarray(resid, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    n_draws, n_days = resid.shape
    n_days = n_days if days is None else min(int(days), n_days)
    phi_s = np.broadcast_to(components.phi_slow, (n_draws,)).astype(float)
    phi_f = np.broadcast_to(components.phi_fast, (n_draws,)).astype(float)
    share = np.broadcast_to(components.share, (n_draws,)).astype(float)
    var_s, var_f = share * sigma ** 2, (1.0 - share) * sigma ** 2
    # From the stationary distribution, the first predict step leaves it stationary: each day
    # is one step of the simulator's and the planner's filter (`observation.split_residual`).
    slow, fast = np.zeros(n_draws), np.zeros(n_draws)
    cov = np.stack([var_s, var_f, np.zeros(n_draws)], axis=-1)
    means = np.empty((n_days, n_draws, 2))
    covs = np.empty((n_days, n_draws, 3))
    for t in range(n_days):
        slow, fast, cov = split_residual(resid[:, t], slow, fast, cov, phi_f, phi_s, sigma,
                                         share)
        means[t, :, 0], means[t, :, 1] = slow, fast
        covs[t] = cov
    return FilteredStates(means, covs, (var_s, var_f), (phi_s, phi_f))


def forecast_residual(states: FilteredStates, last_days: np.ndarray, steps: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of the residual `steps` (O, H) days after the evening of `last_days` (O,)
    (each ≥ 0 and inside the filtered range). Returns (O, S, H) each."""
    mean = states.mean[last_days]  # (O, S, 2)
    cov = states.cov[last_days]  # (O, S, 3)
    k = np.asarray(steps, dtype=float)[:, None, :]  # (O, 1, H)
    a_s = states.phi[0][None, :, None] ** k
    a_f = states.phi[1][None, :, None] ** k
    var_s, var_f = (v[None, :, None] for v in states.var)
    mu = a_s * mean[..., :1] + a_f * mean[..., 1:]
    var = (a_s ** 2 * cov[..., :1] + var_s * (1.0 - a_s ** 2)
           + a_f ** 2 * cov[..., 1:2] + var_f * (1.0 - a_f ** 2)
           + 2.0 * a_s * a_f * cov[..., 2:3])
    return mu, np.sqrt(np.maximum(var, _TINY))


@dataclass(frozen=True)
class DriftCase:
    """One athlete's residuals under its posterior draws, scored from `first_origin` on."""

    resid: np.ndarray
    """(S, T), NaN where unobserved."""
    sigma: np.ndarray
    phi: np.ndarray
    first_origin: int


def next_day_crps(cases: Sequence[DriftCase], drift: SlowDrift) -> float:
    """Mean CRPS of the next-day forecasts of every observed day from each case's first origin
    on, for the Gaussian matching the draw mixture's mean and variance (law of total
    variance), the same score the residual gate uses (`residual.gaussian_crps`)."""
    from physiology_model.model.residual import gaussian_crps

    total, count = 0.0, 0
    for case in cases:
        n_days = case.resid.shape[1]
        origins = np.arange(max(case.first_origin, 1), n_days)
        origins = origins[np.isfinite(case.resid[0, origins])]  # observed in every draw or none
        if not origins.size:
            continue
        states = filter_residuals(case.resid, case.sigma, drift.components(case.phi),
                                  days=n_days - 1)
        mu, sd = forecast_residual(states, origins - 1, np.ones((origins.size, 1)))
        # draw s forecasts y as mean_s + mu_s, and y − mean_s = resid_s, so the mixture's
        # error is mean_s + mu_s − y = mu_s − resid_s
        error = mu[..., 0] - case.resid[:, origins].T  # (O, S)
        centre = error.mean(axis=1)
        spread = np.sqrt((sd[..., 0] ** 2).mean(axis=1) + error.var(axis=1))
        crps = gaussian_crps(np.zeros_like(centre), centre, spread)
        total += float(crps.sum())
        count += crps.size
    if count == 0:
        raise ValueError("no observed day to score the drift settings on")
    return total / count


DRIFT_GRID = {"fraction": (0.0, 0.15, 0.3, 0.45, 0.6, 0.75),
              "phi_slow": (0.97, 0.99, 0.997),
              "phi_fast": (None, 0.0, 0.2, 0.4)}
"""The settings `select_drift` tries (fraction 0 is the posterior's own AR(1))."""


def select_drift(cases: Sequence[DriftCase], grid: dict = DRIFT_GRID
                 ) -> tuple[SlowDrift, dict]:
    """The grid setting with the lowest `next_day_crps` over `cases`, and a summary
    {"crps": best, "crps_ar1": the single AR(1)'s, "tried": count}."""
    scores = {}
    for fraction, phi_slow, phi_fast in itertools.product(
            grid["fraction"], grid["phi_slow"], grid["phi_fast"]):
        drift = (NO_DRIFT if fraction == 0.0 else
                 SlowDrift(float(fraction), float(phi_slow), phi_fast))
        if drift not in scores:
            scores[drift] = next_day_crps(cases, drift)
    if NO_DRIFT not in scores:
        scores[NO_DRIFT] = next_day_crps(cases, NO_DRIFT)
    best = min(scores, key=scores.get)
    return best, {"crps": scores[best], "crps_ar1": scores[NO_DRIFT], "tried": len(scores)}
