"""The `WorldModel` (DESIGN §5): predict, personalise, sample athletes, save and load.

It holds posterior draws of every fitted athlete's parameters (`params.ATHLETE_PARAMS`) and of
the population (location per source, between-athlete scale, AR(1) coefficients), and computes
everything else with numpy from `banister.py` and the observation equations in `params.py`.

- `predict(history, planned_loads)`: predictive samples and quantiles of next-morning ln HRV,
  RHR and recovery (and the latent fitness/fatigue) for each planned day, with the noise
  filtered through the observed residuals (`drift.py`: the posterior's AR(1), plus the slow
  component `fit_drift` chose).
- `personalize(history)`: a posterior for an athlete the fit never saw, from as little as 7
  days, by Rao-Blackwellised importance sampling: population draws of the nonlinear parameters
  (time constants, noise SDs, AR coefficients) are weighted by their marginal likelihood, and
  the parameters that enter linearly (baselines and loadings) are drawn from their exact
  Gaussian posterior given each draw (a linear-Gaussian model after AR(1) prewhitening).
  The recovery link uses the posterior-mean HRV/RHR deviations as regressors (a plug-in).
  A long history pins the noise SDs down far more tightly than the population spreads them,
  so plain population proposals leave a handful of useful weights (an ESS of 1-6 of 2,000 on
  a year of WHOOP data). The proposals are therefore adapted over a few rounds (population
  Monte Carlo, Cappé et al. 2004, J Comput Graph Stat 13:907): each round draws the
  population draw from the last round's weights and the free nonlinear parameters from a
  Gaussian fitted to them, both mixed with the population itself (10 %, so no region the
  population allows is left out), and weighs by prior × likelihood / proposal; the round with
  the largest ESS gives the draws. An unknown device adapts its mixture over sources too.
- `sample_athletes(n, rng)`: parameter sets of new synthetic athletes from the population.
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from physiology_model import banister
from physiology_model.arrays import daily_loads, fill_missing_loads
from physiology_model.drift import (
    DRIFT_GRID,
    NO_DRIFT,
    DriftCase,
    SlowDrift,
    filter_residuals,
    forecast_residual,
    select_drift,
)
from physiology_model.errors import DataError
from physiology_model.params import (  # noqa: F401 - ATHLETE_PARAMS and the load scales
    AR_PARAMS,  # are re-exported: the simulator reads them next to the equations below
    ATHLETE_PARAMS,
    HI_LOAD_SCALE_MIN,
    LOAD_SCALE_TRIMP,
    PARAM_NAMES,
    RECOVERY_CLIP_PCT,
    TAU_FAST_DAYS,
    state_normaliser,
    to_constrained,
)

if TYPE_CHECKING:  # torch is imported only where a residual is used
    from physiology_model.calibration import IntervalCalibration
    from physiology_model.residual import TrainedResidual

TARGETS: tuple[str, ...] = ("hrv", "rhr", "recovery")
"""Forecast targets: ln RMSSD (ln ms), resting HR (bpm), recovery (%)."""

LATENTS: tuple[str, ...] = ("fitness", "fatigue", "fast_fatigue")
"""Latent states reported by `predict`, normalised by `params.state_normaliser` (yesterday
evening's EWMA of the daily load: 100 TRIMP/day; fast: h/day)."""

FORMAT = "adaptive-periodization.WorldModel"
FORMAT_VERSION = 2
"""2: states normalised by `params.state_normaliser` ((1 − e)/e; version 1 used 1 − e, so its
gains mean something else) and pooled parameters (scale 0)."""

# The linear blocks of the observation equations: (target, intercept, loadings with signs).
_HRV_BLOCK = ("mu_hrv", (("a_fit", 0, +1.0), ("a_fat", 1, -1.0), ("a_fast", 2, -1.0)))
_RHR_BLOCK = ("mu_rhr", (("b_fit", 0, -1.0), ("b_fat", 1, +1.0), ("b_fast", 2, +1.0)))
_LINEAR_PARAMS = frozenset(("mu_hrv", "a_fit", "a_fat", "a_fast", "mu_rhr", "b_fit", "b_fat",
                            "b_fast", "mu_rec", "g_hrv", "g_rhr"))
"""Parameters that enter linearly: drawn from their exact Gaussian posterior, not weighted."""


# --------------------------------------------------------------------------------------------
# Data of one athlete
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AthleteSeries:
    """One athlete's daily series on a gap-free calendar, in model units.

    `load`, `hi_load`: (T,) w and u (params.py, `arrays.daily_loads`), missing days filled
    with the athlete's median known value before that day (`arrays.fill_missing_loads`); `hrv` ln ms, `rhr` bpm, `recovery_logit`: (T,) with NaN where not observed.
    """

    dates: np.ndarray
    load: np.ndarray
    hi_load: np.ndarray
    hrv: np.ndarray
    rhr: np.ndarray
    recovery_logit: np.ndarray
    source: str | None


def effective_sample_size(weights: np.ndarray) -> np.ndarray:
    """Kish's effective sample size 1/Σw² of normalised importance weights (along the last
    axis): of a posterior reweighting here, and of the planner's tested performance draws
    (`agents.mpc`)."""
    return 1.0 / np.sum(np.asarray(weights) ** 2, axis=-1)


def recovery_to_logit(recovery_pct: np.ndarray) -> np.ndarray:
    lo, hi = RECOVERY_CLIP_PCT
    p = np.clip(np.asarray(recovery_pct, dtype=float), lo, hi) / 100.0
    return np.log(p) - np.log1p(-p)


def logit_to_recovery(logit: np.ndarray) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-np.asarray(logit, dtype=float)))


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
    dates = pd.date_range(f["date"].min(), f["date"].max(), freq="D")
    f = f.set_index("date").reindex(dates).rename_axis("date").reset_index()
    today_has_load = pd.notna(f["load_trimp"].iloc[-1])
    start = len(f) if today_has_load else len(f) - 1
    horizon = len(planned_loads)
    extra = start + horizon + 1 - len(f)
    new_days = pd.DataFrame({"date": dates[-1] + pd.to_timedelta(np.arange(1, extra + 1), "D")})
    f = pd.concat([f, new_days], ignore_index=True)
    f["user_id"] = user
    if "source" in f.columns:
        f["source"] = f["source"].ffill()
    rows = np.arange(start, start + horizon + 1)
    for column in PLAN_LOAD_COLUMNS:
        given = (planned_loads[column].to_numpy(dtype=float) if column in planned_loads
                 else np.zeros(horizon))
        f.loc[rows, column] = np.concatenate([np.nan_to_num(given), [0.0]])
    return f, start


WARM_START_DAYS = 7
"""The Banister states start at the steady state of the mean load of the first days (the
athlete trained before the data began); forecasts need origins at or after this day, so that
they never see a load of a day they forecast past. Equal to `arrays.LOAD_FILL_HEAD_DAYS`."""


# --------------------------------------------------------------------------------------------
# The equations, vectorised over parameter draws
# --------------------------------------------------------------------------------------------


def channel_decays(p: dict[str, np.ndarray]) -> np.ndarray:
    """Daily decay factors of the fitness, fatigue and fast-fatigue channels, (S, 3), of S
    parameter draws (τ_fit = τ_fat + τ_gap; the fast channel's τ is `TAU_FAST_DAYS`). The
    world model, the simulator and the planners all step their states with these."""
    tau_fat = p["tau_fat_days"]
    tau_fit = tau_fat + p["tau_gap_days"]
    return banister.decay_factors(tau_fit, tau_fat, np.full_like(tau_fat, TAU_FAST_DAYS))


def latent_states(p: dict[str, np.ndarray], load: np.ndarray, hi_load: np.ndarray) -> np.ndarray:
    """Normalised morning fitness, fatigue and fast fatigue (`params.state_normaliser`: a
    constant daily load w gives w), (S, T, 3), for S parameter draws.

    The series starts at the steady state of the mean load of its first `WARM_START_DAYS` days
    (a trained start).
    """
    decays = channel_decays(p)  # (S, C)
    initial = banister.steady_morning_state(np.mean(load[:WARM_START_DAYS]),
                                            np.mean(hi_load[:WARM_START_DAYS]), decays)
    states = banister.morning_states(np.broadcast_to(load, decays.shape[:1] + load.shape),
                                     np.broadcast_to(hi_load, decays.shape[:1] + load.shape),
                                     decays, initial)
    return states[..., :3] * state_normaliser(decays[:, None, :3])


def observation_means(p: dict[str, np.ndarray], latents: np.ndarray) -> dict[str, np.ndarray]:
    """Means of ln HRV, RHR and logit recovery, each (S, T), from latents (S, T, 3)."""
    out = {}
    for target, (intercept, terms) in (("hrv", _HRV_BLOCK), ("rhr", _RHR_BLOCK)):
        m = p[intercept][:, None] + 0.0 * latents[..., 0]
        for name, channel, sign in terms:
            m = m + sign * p[name][:, None] * latents[..., channel]
        out[target] = m
    out["recovery"] = (p["mu_rec"][:, None]
                       + p["g_hrv"][:, None] * (out["hrv"] - p["mu_hrv"][:, None])
                       - p["g_rhr"][:, None] * (out["rhr"] - p["mu_rhr"][:, None]))
    return out


_SIGMA = {"hrv": "sigma_hrv", "rhr": "sigma_rhr", "recovery": "sigma_rec"}
_PHI = {"hrv": "phi_hrv", "rhr": "phi_rhr", "recovery": "phi_rec"}


def _observed(series: AthleteSeries) -> dict[str, np.ndarray]:
    return {"hrv": series.hrv, "rhr": series.rhr, "recovery": series.recovery_logit}


def forecast_gaussians(p: dict[str, np.ndarray], series: AthleteSeries, origins: np.ndarray,
                       horizon: int, drift: Mapping[str, SlowDrift] | None = None
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each posterior draw's Gaussian forecast of mornings d0 .. d0+horizon−1 at each origin d0.

    Same timing as `forecast_samples` (loads of days < d0+horizon−1, observations of days < d0).
    The residual of each target is Kalman-filtered through day d0 − 1 with its `drift`
    setting (`drift.SlowDrift`; a target not in `drift` has the single AR(1) of the posterior,
    i.e. conditioned on its last observed value) and pushed forward. Returns {target:
    (mean, sd)}, each (n_origins, n_draws, horizon), on the model scale: hrv ln ms, rhr bpm,
    recovery logit. The predictive is the equally weighted mixture over draws.
    """
    origins = np.asarray(origins, dtype=int)
    drift = drift or {}
    lat = latent_states(p, series.load, series.hi_load)
    means = observation_means(p, lat)
    n_days = len(series.load)
    target_days = origins[:, None] + np.arange(horizon)[None, :]  # (O, H)
    if target_days.max(initial=-1) >= n_days or origins.min(initial=WARM_START_DAYS) < WARM_START_DAYS:
        raise ValueError(f"origins must satisfy {WARM_START_DAYS} <= d0 and "
                         f"d0 + horizon - 1 < len(series)")
    steps = target_days - (origins - 1)[:, None]
    out = {}
    for target, y in _observed(series).items():
        resid = y[None, :] - means[target]  # (S, T), NaN where unobserved
        states = filter_residuals(resid, p[_SIGMA[target]], p[_PHI[target]],
                                  drift.get(target, NO_DRIFT), days=origins.max(initial=0))
        r_mean, r_sd = forecast_residual(states, origins - 1, steps)
        mean = means[target][:, target_days].transpose(1, 0, 2)  # (O, S, H)
        out[target] = (mean + r_mean, r_sd)
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


def simulate_observations(p: dict[str, np.ndarray], load: np.ndarray, hi_load: np.ndarray,
                          rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Simulated morning ln HRV, RHR and recovery (%) of S athletes, each (S, T).

    `p`: parameters (S,) each; `load`, `hi_load`: (T,) or (S, T) in model units. The noise of
    each signal is a stationary AR(1) path with coefficient phi and marginal SD sigma.
    """
    load = np.asarray(load, dtype=float)
    hi_load = np.asarray(hi_load, dtype=float)
    n = len(p["mu_hrv"])
    if load.ndim == 1:
        lat = latent_states(p, load, hi_load)
    else:
        lat = np.concatenate([latent_states({k: v[i:i + 1] for k, v in p.items()}, load[i],
                                            hi_load[i]) for i in range(n)])
    means = observation_means(p, lat)
    out = {}
    for target, m in means.items():
        phi, sigma = p[_PHI[target]][:, None], p[_SIGMA[target]][:, None]
        e = rng.standard_normal(m.shape)
        r = np.empty_like(m)
        r[:, 0] = sigma[:, 0] * e[:, 0]
        innov = sigma[:, 0] * np.sqrt(1.0 - phi[:, 0] ** 2)
        for t in range(1, m.shape[1]):
            r[:, t] = phi[:, 0] * r[:, t - 1] + innov * e[:, t]
        y = m + r
        out[target] = logit_to_recovery(y) if target == "recovery" else y
    return out


# --------------------------------------------------------------------------------------------
# Population and personalisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """Posterior draws of the population: for each athlete parameter its location per source
    (D, n_sources) and between-athlete scale (D,), both on the unconstrained scale, and the
    AR(1) coefficients (D,)."""

    sources: tuple[str, ...]
    loc: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    phi: dict[str, np.ndarray]

    @property
    def n_draws(self) -> int:
        return len(next(iter(self.scale.values())))

    def _source_index(self, source: str | None, n: int, rng: np.random.Generator) -> np.ndarray:
        if source in self.sources:
            return np.full(n, self.sources.index(source))
        # an unknown device: a random known source per draw (a mixture over devices)
        return rng.integers(0, len(self.sources), size=n)

    def draw_unconstrained(self, n: int, rng: np.random.Generator, source: str | None = None
                           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                      dict[str, np.ndarray]]:
        """n draws of (athlete value, population loc, population scale), unconstrained."""
        raw, loc, scale, _, _ = _draw_proposals(self, n, rng, source, None)
        return raw, loc, scale


def constrained(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {name: to_constrained(name, raw[name]) for name in PARAM_NAMES}
    out.update({name: np.asarray(raw[name], dtype=float) for name in AR_PARAMS})
    return out


def _prewhiten(y: np.ndarray, x: np.ndarray, phi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AR(1) prewhitening over observed days with gaps.

    y (T,) with NaN = unobserved, x (M, p, T) regressors, phi (M,). Returns ỹ (M, n), x̃ (M, p, n)
    and log c (M, n), with ỹ_j = (y_j − φ^k y_{j−1}) / c_j, c_j = sqrt(1 − φ^{2k}) (c_1 = 1), so
    that the transformed noise is iid N(0, σ²) and log p(y) = log p(ỹ) − Σ log c. Days are the
    last axis because these element-wise products over (M, p, n) were 3-4 times slower with
    the p = 3-4 regressors innermost.
    """
    t = np.flatnonzero(~np.isnan(y))
    yo = y[t]
    xo = x if len(t) == x.shape[2] else x[:, :, t]
    # φ^k and 1/c of each distinct gap k (most series have one: k = 1), then of each day
    gaps, day_gap = np.unique(np.diff(t), return_inverse=True)
    phik_of_gap = phi[:, None] ** gaps[None, :]
    inv_c_of_gap = 1.0 / np.sqrt(np.maximum(1.0 - phik_of_gap ** 2, 1e-12))
    phik, inv_c = phik_of_gap[:, day_gap], inv_c_of_gap[:, day_gap]  # (M, n-1)
    y_t = np.empty((len(phi), len(t)))
    y_t[:, 0] = yo[0]
    y_t[:, 1:] = (yo[None, 1:] - phik * yo[None, :-1]) * inv_c
    x_t = np.empty(xo.shape)
    x_t[:, :, 0] = xo[:, :, 0]
    rest = x_t[:, :, 1:]
    np.multiply(xo[:, :, :-1], phik[:, None, :], out=rest)
    np.subtract(xo[:, :, 1:], rest, out=rest)
    rest *= inv_c[:, None, :]
    log_c = np.zeros((len(phi), len(t)))
    log_c[:, 1:] = -np.log(inv_c_of_gap)[:, day_gap]
    return y_t, x_t, log_c


def _gaussian_linear(y_t: np.ndarray, x_t: np.ndarray, log_c: np.ndarray, sigma: np.ndarray,
                     m0: np.ndarray, s0: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conjugate update of β ~ N(m0, diag(s0²)) with ỹ = x̃ᵀβ + N(0, σ²), batched over M draws
    (x̃ (M, p, n) as `_prewhiten` gives it).

    Returns posterior mean (M, p), posterior covariance (M, p, p) and the log marginal
    likelihood (M,) of the untransformed observations.
    """
    n = y_t.shape[1]
    inv_s2 = 1.0 / sigma ** 2
    prior_prec = np.eye(m0.shape[1])[None] / (s0[:, :, None] ** 2)
    # batched matmul: several times faster than einsum here
    prec = (x_t @ x_t.transpose(0, 2, 1)) * inv_s2[:, None, None] + prior_prec
    resid0 = y_t - (m0[:, None, :] @ x_t)[:, 0, :]
    b = (x_t @ resid0[:, :, None])[..., 0] * inv_s2[:, None]
    chol = np.linalg.cholesky(prec)
    cov = np.linalg.inv(prec)
    delta = (cov @ b[:, :, None])[..., 0]
    mean = m0 + delta
    logdet_prec = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    logdet_s0 = 2.0 * np.sum(np.log(s0), axis=1)
    quad = np.sum(resid0 ** 2, axis=1) * inv_s2 - np.einsum("mp,mp->m", b, delta)
    log_ml = (-0.5 * n * np.log(2 * np.pi) - n * np.log(sigma) - 0.5 * logdet_s0
              - 0.5 * logdet_prec - 0.5 * quad - np.sum(log_c, axis=1))
    return mean, cov, log_ml


@dataclass(frozen=True)
class Personalization:
    """Result of `WorldModel.personalize`: posterior draws and the quality of the weights."""

    params: dict[str, np.ndarray]
    ess: float
    n_proposals: int
    n_days: int


@dataclass(frozen=True)
class _Proposal:
    """One round's proposal (module docstring): probabilities of the (population draw,
    source) pairs (D·S,) and a Gaussian over the free nonlinear parameters (`names`) on the
    unconstrained scale."""

    draw_probs: np.ndarray
    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray


PERSONALIZE_ROUNDS = 3
"""Rounds of proposal adaptation in `personalize_series` (the first draws from the population)."""
DEFENSIVE_SHARE = 0.1
"""Share of every adapted proposal that is the population itself."""


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x - mean) / sd
    return -0.5 * z ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _index_prior(population: Population, source: str | None) -> np.ndarray:
    """Prior probability of each (population draw, source) pair, flattened (D·S,): a known
    source is certain, an unknown device is a uniform mixture over the known ones."""
    n_pop, n_src = population.n_draws, len(population.sources)
    if source in population.sources:
        prior = np.zeros((n_pop, n_src))
        prior[:, population.sources.index(source)] = 1.0 / n_pop
    else:
        prior = np.full((n_pop, n_src), 1.0 / (n_pop * n_src))
    return prior.ravel()


def _draw_proposals(population: Population, n: int, rng: np.random.Generator,
                    source: str | None, proposal: _Proposal | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                               dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """n proposals → (raw, loc, scale, (draw, source) index (n,), log prior/proposal (n,))."""
    n_src = len(population.sources)
    if proposal is None:
        d = rng.integers(0, population.n_draws, size=n)
        s = population._source_index(source, n, rng)
        log_ratio = np.zeros(n)
    else:
        prior = _index_prior(population, source)
        q = DEFENSIVE_SHARE * prior + (1.0 - DEFENSIVE_SHARE) * proposal.draw_probs
        k = rng.choice(len(q), size=n, p=q / q.sum())
        d, s = np.divmod(k, n_src)
        log_ratio = np.log(prior[k]) - np.log(q[k])
    raw, loc, scale = {}, {}, {}
    for name in PARAM_NAMES:
        loc[name] = population.loc[name][d, s]
        scale[name] = population.scale[name][d]
        raw[name] = loc[name] + scale[name] * rng.standard_normal(n)
    for name in AR_PARAMS:
        raw[name] = population.phi[name][d]
    if proposal is not None and proposal.names:
        dim = len(proposal.names)
        chol = np.linalg.cholesky(proposal.cov)
        adapted = proposal.mean + rng.standard_normal((n, dim)) @ chol.T
        from_population = rng.random(n) < DEFENSIVE_SHARE
        inv = np.linalg.inv(proposal.cov)
        _, logdet = np.linalg.slogdet(proposal.cov)
        log_prior = np.zeros(n)
        for j, name in enumerate(proposal.names):
            raw[name] = np.where(from_population, raw[name], adapted[:, j])
            log_prior += _log_normal_pdf(raw[name], loc[name], scale[name])
        u = np.stack([raw[name] for name in proposal.names], axis=1) - proposal.mean
        log_g = (-0.5 * np.einsum("np,pq,nq->n", u, inv, u) - 0.5 * logdet
                 - 0.5 * dim * np.log(2 * np.pi))
        log_q = np.logaddexp(np.log(DEFENSIVE_SHARE) + log_prior,
                             np.log(1.0 - DEFENSIVE_SHARE) + log_g)
        log_ratio = log_ratio + log_prior - log_q
    return raw, loc, scale, d * n_src + s, log_ratio


def _adapt(w: np.ndarray, index: np.ndarray, raw: dict[str, np.ndarray], n_index: int,
           free: tuple[str, ...], n_obs: int) -> _Proposal:
    """The next round's proposal from this round's normalised weights (module docstring). The
    Gaussian's SDs are kept above 1.5 / sqrt(2·n_obs), 1.5 times the posterior SD of a log
    noise SD from n_obs observations, so a few heavy weights cannot collapse it; the whole
    covariance is then widened 1.5 times (correlations kept, at most ±0.95)."""
    draw_probs = np.bincount(index, weights=w, minlength=n_index)
    if not free:
        return _Proposal(draw_probs, (), np.zeros(0), np.zeros((0, 0)))
    u = np.stack([raw[name] for name in free], axis=1)
    mean = w @ u
    centred = u - mean
    cov = (centred * w[:, None]).T @ centred
    floor = 1.5 / np.sqrt(2.0 * max(n_obs, 1))
    sd = np.sqrt(np.maximum(np.diag(cov), floor ** 2))
    corr = cov / np.outer(np.sqrt(np.maximum(np.diag(cov), 1e-300)),
                          np.sqrt(np.maximum(np.diag(cov), 1e-300)))
    corr = np.clip(np.nan_to_num(corr), -0.95, 0.95)
    np.fill_diagonal(corr, 1.0)
    # clipping entry by entry can leave a matrix that is not positive definite (a few heavy
    # weights, e.g. a 7-10 day history): floor its eigenvalues and rescale to unit diagonal
    eigenvalues, vectors = np.linalg.eigh(corr)
    if eigenvalues.min() < 1e-3:
        corr = (vectors * np.maximum(eigenvalues, 1e-3)) @ vectors.T
        d = np.sqrt(np.diag(corr))
        corr = corr / np.outer(d, d)
    return _Proposal(draw_probs, free, mean, 1.5 ** 2 * corr * np.outer(sd, sd))


def personalize_series(population: Population, series: AthleteSeries, rng: np.random.Generator,
                       n_proposals: int = 2000, n_draws: int = 400,
                       rounds: int = PERSONALIZE_ROUNDS) -> Personalization:
    """A new athlete's posterior from its history (see the module docstring for the method):
    up to `rounds` rounds of `n_proposals` proposals each; the round with the largest effective
    sample size (each round's weights are a valid estimate on their own) gives the draws and
    the reported ESS, so adapting can only help. Adapting stops as soon as a round's ESS
    reaches `n_draws`: the weights are then worth as many independent draws as are kept, and
    most 14-day histories get there in the first round (a third of the time)."""
    if rounds < 1:
        raise ValueError(f"rounds must be ≥ 1, got {rounds}")
    free = tuple(name for name in PARAM_NAMES
                 if name not in _LINEAR_PARAMS and np.all(population.scale[name] > 0))
    n_obs = int(np.sum(~np.isnan(series.hrv) | ~np.isnan(series.rhr)))
    n_index = population.n_draws * len(population.sources)
    proposal, best = None, None
    for _ in range(rounds):
        raw, loc, scale, index, log_ratio = _draw_proposals(population, n_proposals, rng,
                                                            series.source, proposal)
        w, ess, posterior, p = _weigh(raw, loc, scale, series, log_ratio)
        if best is None or ess > best[1]:
            best = (w, ess, posterior, p, loc, scale)
        if ess >= n_draws:
            break
        proposal = _adapt(w, index, raw, n_index, free, n_obs)
    w, ess, posterior, p, loc, scale = best
    pick = _systematic_resample(w, n_draws, rng)
    out = {name: p[name][pick] for name in ("tau_fat_days", "tau_gap_days", "sigma_hrv",
                                            "sigma_rhr", "sigma_rec", *AR_PARAMS)}
    for names, mean, cov in posterior.values():
        z = rng.standard_normal((n_draws, len(names)))
        beta = mean[pick] + np.einsum("npq,nq->np", np.linalg.cholesky(cov[pick]), z)
        for j, name in enumerate(names):
            # a pooled parameter (scale 0) is the population value itself, exactly
            out[name] = np.where(scale[name][pick] > 0, beta[:, j], loc[name][pick])
    return Personalization(out, ess, n_proposals, n_obs)


def _weigh(raw: dict[str, np.ndarray], loc: dict[str, np.ndarray],
           scale: dict[str, np.ndarray], series: AthleteSeries, log_ratio: np.ndarray):
    """Normalised weights, their ESS, the linear blocks' Gaussian posteriors and the
    constrained parameters of one round's proposals."""
    p = constrained(raw)
    lat = np.ascontiguousarray(latent_states(p, series.load, series.hi_load)
                               .transpose(0, 2, 1))  # (M, 3, T): see _prewhiten
    log_w = np.zeros(len(log_ratio))
    posterior = {}
    for target, (intercept, terms), y in (("hrv", _HRV_BLOCK, series.hrv),
                                         ("rhr", _RHR_BLOCK, series.rhr)):
        names = (intercept,) + tuple(t[0] for t in terms)
        x = np.empty((lat.shape[0], 1 + len(terms), lat.shape[2]))
        x[:, 0] = 1.0
        for j, (_, ch, sign) in enumerate(terms, start=1):
            np.multiply(lat[:, ch], sign, out=x[:, j])
        m0 = np.stack([loc[nm] for nm in names], axis=1)
        s0 = _prior_sd(np.stack([scale[nm] for nm in names], axis=1))
        if np.sum(~np.isnan(y)) == 0:
            posterior[target] = (names, m0, np.eye(len(names))[None] * s0[:, :, None] ** 2)
            continue
        y_t, x_t, log_c = _prewhiten(y, x, p[_PHI[target]])
        mean, cov, log_ml = _gaussian_linear(y_t, x_t, log_c, p[_SIGMA[target]], m0, s0)
        posterior[target] = (names, mean, cov)
        log_w += log_ml
    # recovery: regress on the posterior-mean deviations of HRV and RHR (plug-in)
    _, mean_h, _ = posterior["hrv"]
    _, mean_r, _ = posterior["rhr"]
    dev_h = np.einsum("mct,mc->mt", lat, mean_h[:, 1:] * np.array([+1, -1, -1]))
    dev_r = np.einsum("mct,mc->mt", lat, mean_r[:, 1:] * np.array([-1, +1, +1]))
    x = np.stack([np.ones_like(dev_h), dev_h, -dev_r], axis=1)
    names = ("mu_rec", "g_hrv", "g_rhr")
    m0 = np.stack([loc[nm] for nm in names], axis=1)
    s0 = _prior_sd(np.stack([scale[nm] for nm in names], axis=1))
    if np.sum(~np.isnan(series.recovery_logit)) > 0:
        y_t, x_t, log_c = _prewhiten(series.recovery_logit, x, p["phi_rec"])
        mean, cov, log_ml = _gaussian_linear(y_t, x_t, log_c, p["sigma_rec"], m0, s0)
        log_w += log_ml
    else:
        mean, cov = m0, np.eye(3)[None] * s0[:, :, None] ** 2
    posterior["recovery"] = (names, mean, cov)

    log_w = log_w + log_ratio
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    return w, float(effective_sample_size(w)), posterior, p


POOLED_PRIOR_SD = 1e-6
"""Prior SD that stands in for a pooled parameter's zero scale in the conjugate update (the
parameter is then fixed at its population value up to terms of order 1e-12)."""


def _prior_sd(scale: np.ndarray) -> np.ndarray:
    """Between-athlete scales as prior SDs of the linear update: a pooled parameter's 0 becomes
    `POOLED_PRIOR_SD`, so its prior precision is huge but finite."""
    return np.where(scale > 0, scale, POOLED_PRIOR_SD)


def _systematic_resample(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    positions = (rng.random() + np.arange(n)) / n
    return np.minimum(np.searchsorted(np.cumsum(w), positions), len(w) - 1)


# --------------------------------------------------------------------------------------------
# The WorldModel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldModelConfig:
    """Settings of the world model (the sampler's own settings live in `bayes.SamplerConfig`)."""

    max_days: int | None = 365
    """Fit on at most this many most recent days per athlete (bounds fit time)."""
    min_hrv_days: int = 28
    """Athletes with fewer HRV days are not used in the fit."""
    keep_draws: int = 200
    """Posterior draws kept in the saved model (thinned evenly)."""
    personalize_proposals: int = 2000
    """Population draws weighed by `personalize`."""
    personalize_draws: int = 400
    """Posterior draws returned by `personalize`."""


@dataclass
class Prediction:
    """Predictive samples of one athlete for `horizon` planned days.

    `samples[target]` (n_samples, horizon): the morning after each planned day (hrv in ln ms,
    rhr in bpm, recovery in %); `latents[name]` (n_samples, horizon): normalised states on
    those mornings; `dates`: the planned days.
    """

    dates: np.ndarray
    samples: dict[str, np.ndarray]
    latents: dict[str, np.ndarray] = field(default_factory=dict)

    def quantiles(self, qs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
        """One row per (day, variable); HRV also in ms (`hrv_ms`)."""
        rows = []
        variables = dict(self.samples)
        variables["hrv_ms"] = np.exp(self.samples["hrv"])
        variables.update(self.latents)
        for name, s in variables.items():
            q = np.quantile(s, qs, axis=0)
            for j, day in enumerate(self.dates):
                rows.append({"date": pd.Timestamp(day), "variable": name,
                             **{f"q{round(100 * x):02d}": float(q[i, j])
                                for i, x in enumerate(qs)}})
        return pd.DataFrame(rows)


class WorldModel:
    """The learned probabilistic world model of athletes' physiology (DESIGN §5).

    In the scikit-learn manner: `__init__` stores settings only; `fit` sets the fitted
    attributes (ending in `_`) and returns self; using it before `fit` or `load` raises.
    """

    def __init__(self, config: WorldModelConfig = WorldModelConfig(), sampler=None, priors=None):
        self.config = config
        self.sampler = sampler
        self.priors = priors

    # -- fitted state ------------------------------------------------------------------------
    population_: Population
    athletes_: dict[str, dict[str, np.ndarray]]
    """user_id → {parameter: (draws,)} from the NUTS posterior."""
    diagnostics_: dict
    split_: dict
    """How the fit was held out from the evaluation (seed, test users), when known."""
    fit_info_: dict
    """How the posterior was sampled: sampler, nutpie backend, sampler config, timings (s)."""
    idata_: object
    drift_: dict[str, SlowDrift]
    """Per target, the slow drift of its noise (`drift.py`, set by `fit_drift`); a target not in
    it keeps the posterior's single AR(1)."""
    residual_: TrainedResidual | None
    """The neural residual (`residual.TrainedResidual`, trained by `hybrid.fit_residual`) or
    None; `WorldModelForecaster` applies it to the targets its gate enabled."""

    calibration_: IntervalCalibration | None
    """The recalibration of a personalised athlete's predictive intervals
    (`calibration.py`, learned by `calibration.fit_calibration`) or None."""

    def interval_calibration(self, history: pd.DataFrame) -> tuple | None:
        """(calibration, measured days) for an athlete `athlete_params` personalises on
        `history`; None for an athlete in the fit or a model without a calibration."""
        table = getattr(self, "calibration_", None)
        uid = str(history["user_id"].iloc[0]) if len(history) else ""
        if table is None or uid in getattr(self, "athletes_", {}):
            return None
        from physiology_model.calibration import measured_days

        return table, measured_days(history)

    def _check_fitted(self) -> None:
        if not hasattr(self, "population_"):
            raise RuntimeError("WorldModel is not fitted: call fit() or WorldModel.load() first")

    def fit(self, frame: pd.DataFrame) -> WorldModel:
        """Fit the hierarchical model to a canonical daily frame (all athletes' rows)."""
        from physiology_model import bayes
        from physiology_model.arrays import prepare_arrays

        arrays = prepare_arrays(frame, max_days=self.config.max_days,
                                min_hrv_days=self.config.min_hrv_days)
        model = bayes.build_model(arrays, self.priors or bayes.PriorConfig())
        idata = bayes.sample(model, self.sampler or bayes.SamplerConfig())
        self._set_from_idata(idata, arrays.user_ids, arrays.sources)
        return self

    def _set_from_idata(self, idata, user_ids, sources) -> None:
        from physiology_model import bayes

        diag = bayes.diagnose(idata)
        self.diagnostics_ = diag.to_dict()
        self.fit_info_ = {
            "sampler": str(idata.attrs.get("sampler", "")),
            "nutpie_backend": str(idata.attrs.get("nutpie_backend", "")),
            "sampler_config": json.loads(idata.attrs.get("sampler_config", "{}")),
            "timings": json.loads(idata.attrs.get("timings", "{}")),
            "n_athletes": len(user_ids),
        }
        athlete = bayes.posterior_athlete_params(idata)  # name → (draws, athletes)
        pop = bayes.population_draws(idata)
        n = pop["scale"].shape[0]
        keep = np.unique(np.linspace(0, n - 1, min(n, self.config.keep_draws)).astype(int))
        index = {name: i for i, name in enumerate(pop["param_names"])}
        phi = {name: np.asarray(pop["phi"][keep, i], dtype=float)
               for i, name in enumerate(AR_PARAMS)}
        self.athletes_ = {}
        for a, uid in enumerate(user_ids):
            draws = {name: np.asarray(athlete[name][keep, a], dtype=float) for name in PARAM_NAMES}
            draws.update(phi)
            self.athletes_[str(uid)] = draws
        self.population_ = Population(
            sources=tuple(pop["sources"]),
            loc={name: np.asarray(pop["loc"][keep, :, index[name]], dtype=float)
                 for name in PARAM_NAMES},
            scale={name: np.asarray(pop["scale"][keep, index[name]], dtype=float)
                   for name in PARAM_NAMES},
            phi=phi)
        self.idata_ = idata
        self.drift_ = {}  # chosen for, and a residual trained on, another posterior no longer fit
        self.residual_ = None
        self.calibration_ = None

    # -- API ---------------------------------------------------------------------------------
    def athlete_params(self, history: pd.DataFrame, rng: np.random.Generator
                       ) -> dict[str, np.ndarray]:
        """Posterior draws for the athlete of `history`: the fitted posterior for an athlete in
        the fit, otherwise `personalize(history)`."""
        self._check_fitted()
        uid = str(history["user_id"].iloc[0]) if len(history) else ""
        if uid in self.athletes_:
            return self.athletes_[uid]
        return self.personalize(history, rng).params

    def personalize(self, history: pd.DataFrame | AthleteSeries,
                    rng: np.random.Generator | None = None, *,
                    n_proposals: int | None = None, n_draws: int | None = None,
                    rounds: int = PERSONALIZE_ROUNDS) -> Personalization:
        """Posterior of a new athlete from ≥ 7 days of its rows (HRV or RHR observed), with
        `n_proposals` proposals per round and `n_draws` kept draws (default: the config's) in
        up to `rounds` adaptive rounds (`personalize_series`). `history` is the athlete's
        daily-table rows, or its `AthleteSeries` when the caller already has the arrays (the
        planners, every morning: building a frame costs more than the update itself)."""
        self._check_fitted()
        series = history if isinstance(history, AthleteSeries) else series_from_frame(history)
        n_obs = int(np.sum(~np.isnan(series.hrv) | ~np.isnan(series.rhr)))
        if n_obs < 7:
            raise DataError("(history)", f"personalisation needs at least 7 days with HRV or "
                                         f"RHR, got {n_obs}")
        result = personalize_series(self.population_, series, rng or np.random.default_rng(0),
                                    n_proposals or self.config.personalize_proposals,
                                    n_draws or self.config.personalize_draws, rounds)
        if result.ess < 20:
            warnings.warn(f"personalisation weights are degenerate (ESS {result.ess:.1f} of "
                          f"{result.n_proposals}); the posterior is rough", stacklevel=2)
        return result

    def fit_drift(self, frame: pd.DataFrame, *, condition_days: int = 14, seed: int = 0,
                  max_draws: int = 100, grid: dict = DRIFT_GRID) -> dict[str, dict]:
        """Choose each target's slow noise drift (`drift.select_drift`) on the athletes of
        `frame` (the fit's rows: the training athletes only). Each athlete is personalised on
        its first `condition_days` calendar days, as an athlete the fit never saw would be, and
        the next-day forecasts of its later days are scored (at most `max_draws` of its
        posterior draws, for speed). An athlete with too few days to personalise on is
        skipped. Sets `drift_` and returns, per target, the setting with its CRPS, the single
        AR(1)'s CRPS and the athletes used.
        """
        self._check_fitted()
        if condition_days < WARM_START_DAYS:
            raise ValueError(f"condition_days must be ≥ {WARM_START_DAYS}, got {condition_days}")
        cases: dict[str, list[DriftCase]] = {target: [] for target in TARGETS}
        for user, rows in frame.groupby(frame["user_id"].astype(str), sort=True):
            start = rows["date"].min()
            head = rows[rows["date"] < start + pd.Timedelta(days=condition_days)]
            rng = np.random.default_rng([seed, zlib.crc32(user.encode())])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # rough weights are part of the setting
                    params = self.personalize(head, rng).params
            except DataError:
                continue
            keep = rng.choice(len(params["mu_hrv"]), size=min(max_draws, len(params["mu_hrv"])),
                              replace=False)
            params = {name: values[keep] for name, values in params.items()}
            series = series_from_frame(rows)
            means = observation_means(params, latent_states(params, series.load,
                                                            series.hi_load))
            for target, y in _observed(series).items():
                cases[target].append(DriftCase(y[None, :] - means[target],
                                               params[_SIGMA[target]], params[_PHI[target]],
                                               condition_days))
        if not cases[TARGETS[0]]:
            raise ValueError(f"no athlete has enough days to choose the noise drift on "
                             f"(personalisation needs 7 in the first {condition_days})")
        summary, drift = {}, {}
        for target, target_cases in cases.items():
            best, scores = select_drift(target_cases, grid)
            drift[target] = best
            summary[target] = {"setting": best.to_dict(), **scores,
                               "athletes": len(target_cases)}
        self.drift_ = drift
        return summary

    def sample_athletes(self, n: int, rng: np.random.Generator, source: str | None = None
                        ) -> dict[str, np.ndarray]:
        """Parameters of n new synthetic athletes drawn from the population posterior."""
        self._check_fitted()
        raw, _, _ = self.population_.draw_unconstrained(n, rng, source)
        return constrained(raw)

    def predict(self, history: pd.DataFrame, planned_loads: pd.DataFrame,
                n_samples: int = 500, rng: np.random.Generator | None = None,
                use_residual: bool = True) -> Prediction:
        """Predict the mornings after each planned day.

        `history`: one athlete's canonical rows up to today (today's row may carry this
        morning's physiology and no load yet); `planned_loads`: one row per planned day starting
        today, with `load_trimp` and optionally `z4_min`, `z5_min`, `strength_min` (missing =
        0). Returns the predictive samples for the morning after each planned day. When the
        model carries a neural residual whose gate is on for a target (and `use_residual`), that
        target's forecast is the hybrid one (`hybrid.forecast_with_residual`), as in
        `periodize model evaluate`; the other targets are the Banister forecast, bit for bit.
        """
        self._check_fitted()
        rng = rng or np.random.default_rng(0)
        if "load_trimp" not in planned_loads.columns or planned_loads["load_trimp"].isna().any():
            raise ValueError("planned_loads needs a load_trimp for every planned day")
        horizon = len(planned_loads)
        params = self.athlete_params(history, rng)
        frame, start = plan_frame(history, planned_loads)
        full = series_from_frame(frame)
        origin = start + 1  # the first morning after the first planned day
        residual = getattr(self, "residual_", None) if use_residual else None
        if residual is not None and any(residual.enabled.values()):
            from physiology_model.hybrid import forecast_with_residual

            samples = forecast_with_residual(params, residual, frame, np.array([origin]),
                                             horizon, n_samples, rng, self.drift_)
        else:
            samples = forecast_samples(params, full, np.array([origin]), horizon, n_samples, rng,
                                       self.drift_)
        calibration = self.interval_calibration(history)
        if calibration is not None:
            samples = calibration[0].apply(samples, calibration[1])
        lat = latent_states(params, full.load, full.hi_load)
        draw = rng.integers(0, lat.shape[0], size=n_samples)
        days = origin + np.arange(horizon)
        latents = {name: lat[draw][:, days, i] for i, name in enumerate(LATENTS)}
        return Prediction(dates=full.dates[start:start + horizon],
                          samples={k: v[0] for k, v in samples.items()}, latents=latents)

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the model to a directory: `posterior.nc` (InferenceData of the kept draws),
        `model.json` (config, sources, diagnostics, library versions) and, when the model has a
        neural residual, `residual/` (`TrainedResidual.save`)."""
        import arviz as az
        import xarray as xr

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        users = sorted(self.athletes_)
        draws = len(self.population_.phi[AR_PARAMS[0]])
        data = {}
        for name in PARAM_NAMES:
            data[name] = (("draw", "athlete"), np.stack(
                [self.athletes_[u][name] for u in users], axis=1) if users else np.zeros((draws, 0)))
            data[f"{name}_loc"] = (("draw", "source"), self.population_.loc[name])
            data[f"{name}_scale"] = (("draw",), self.population_.scale[name])
        for name in AR_PARAMS:
            data[name] = (("draw",), self.population_.phi[name])
        posterior = xr.Dataset(data, coords={"draw": np.arange(draws), "athlete": users,
                                             "source": list(self.population_.sources)})
        idata = az.InferenceData(posterior=posterior.expand_dims(chain=[0]))
        from physiology_model.table import atomic_write

        atomic_write(directory / "posterior.nc", lambda tmp: idata.to_netcdf(tmp))
        residual = getattr(self, "residual_", None)
        if residual is not None:
            residual.save(directory / "residual")
        calibration = getattr(self, "calibration_", None)
        if calibration is not None:
            calibration.save(directory)
        else:  # a calibration left by an earlier model in this directory is not this one's
            from physiology_model.calibration import FILE_NAME

            (directory / FILE_NAME).unlink(missing_ok=True)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "config": vars(self.config), "sources": list(self.population_.sources),
                "athletes": users, "diagnostics": _jsonable(self.diagnostics_),
                "split": _jsonable(getattr(self, "split_", {})),
                "fit": _jsonable(getattr(self, "fit_info_", {})),
                "residual": "residual" if residual is not None else None,
                "drift": {t: d.to_dict() for t, d in getattr(self, "drift_", {}).items()},
                "versions": _versions()}
        atomic_write(directory / "model.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))

    @classmethod
    def load(cls, directory: str | Path) -> WorldModel:
        """Load a model written by `save`; a model of another format version fails clearly."""
        import arviz as az

        directory = Path(directory)
        meta_path = directory / "model.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise DataError(directory, "not a saved world model (no model.json)") from None
        except json.JSONDecodeError as exc:
            raise DataError(meta_path, f"not valid JSON ({exc.msg})") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise DataError(meta_path, f"saved as {meta.get('format')} version "
                                       f"{meta.get('format_version')}; this code reads {FORMAT} "
                                       f"version {FORMAT_VERSION}: refit with `periodize model fit`")
        post = az.from_netcdf(directory / "posterior.nc").posterior.isel(chain=0)
        model = cls(WorldModelConfig(**meta["config"]))
        users = [str(u) for u in post["athlete"].values]
        model.athletes_ = {u: {name: post[name].values[:, i].astype(float)
                               for name in PARAM_NAMES} for i, u in enumerate(users)}
        model.population_ = Population(
            sources=tuple(meta["sources"]),
            loc={name: post[f"{name}_loc"].values.astype(float) for name in PARAM_NAMES},
            scale={name: post[f"{name}_scale"].values.astype(float) for name in PARAM_NAMES},
            phi={name: post[name].values.astype(float) for name in AR_PARAMS})
        for u in users:
            for name in AR_PARAMS:
                model.athletes_[u][name] = model.population_.phi[name]
        model.diagnostics_ = meta.get("diagnostics", {})
        model.split_ = meta.get("split", {})
        model.fit_info_ = meta.get("fit", {})
        try:
            model.drift_ = {str(t): SlowDrift.from_dict(d)
                            for t, d in (meta.get("drift") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(meta_path, f"unreadable drift settings ({exc})") from None
        from physiology_model.calibration import load_calibration

        model.calibration_ = load_calibration(directory)
        model.residual_ = None
        if meta.get("residual"):
            from physiology_model.residual import TrainedResidual

            model.residual_ = TrainedResidual.load(directory / "residual", device="cpu")
        return model


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("adaptive-periodization", "numpy", "pymc", "arviz", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


class WorldModelForecaster:
    """The `WorldModel` as a `forecast.Forecaster`, for the forecast evaluation protocol.

    `fit` fits the model unless it was given fitted (a model loaded from disk, fitted by
    `periodize model fit` on the protocol's training rows); `condition` returns the fitted
    posterior of an athlete in the fit, and personalises any other athlete on the rows given.
    With `use_residual` (default) the model's neural residual, if it has one, corrects the
    forecasts of the targets its gate enabled (`hybrid.forecast_with_residual`); `name` lets the
    base model alone be scored beside it (e.g. `use_residual=False, name="world_model_base"`).
    """

    name = "world_model"

    def __init__(self, model: WorldModel, seed: int = 0, use_residual: bool = True,
                 name: str = "world_model", use_calibration: bool = True):
        self.model = model
        self.seed = seed
        self.use_residual = use_residual
        self.name = name
        self.use_calibration = use_calibration

    def fit(self, train: pd.DataFrame) -> WorldModelForecaster:
        if not hasattr(self.model, "population_"):
            self.model.fit(train)
        return self

    def condition(self, athlete: pd.DataFrame) -> _ConditionedWorldModel:
        user = str(athlete["user_id"].iloc[0]).encode()
        rng = np.random.default_rng([self.seed, zlib.crc32(user)])
        residual = getattr(self.model, "residual_", None) if self.use_residual else None
        calibration = (self.model.interval_calibration(athlete) if self.use_calibration
                       else None)
        return _ConditionedWorldModel(self.model.athlete_params(athlete, rng), residual,
                                      getattr(self.model, "drift_", {}), calibration)


@dataclass(frozen=True)
class _ConditionedWorldModel:
    params: dict[str, np.ndarray]
    residual: TrainedResidual | None = None
    """A `residual.TrainedResidual` applied on top of the base forecast, or None."""
    drift: Mapping[str, SlowDrift] = field(default_factory=dict)
    calibration: tuple | None = None
    """(`calibration.IntervalCalibration`, measured days personalised on), or None."""

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int, n_samples: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.residual is None:
            samples = forecast_samples(self.params, series_from_frame(frame), origins, horizon,
                                       n_samples, rng, self.drift)
        else:
            from physiology_model.hybrid import forecast_with_residual

            samples = forecast_with_residual(self.params, self.residual, frame, origins,
                                             horizon, n_samples, rng, self.drift)
        if self.calibration is not None:
            table, n_days = self.calibration
            samples = table.apply(samples, n_days)
        return samples
