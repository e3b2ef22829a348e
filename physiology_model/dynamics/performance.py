"""Latent performance, the saturating dose-response, and its check against a real series.

Performance is not observed in wearable data (DESIGN §5); the simulator's rewards and the
planner's objective need it anyway, so it is a latent quantity computed from the Banister states
of `banister.py` with `banister.performance` (the one place the equation is written):

    P_d = p0 + k1·G_d − k2·H_d − k3·V_d        (morning of day d, states from loads < d)

- Linear (Banister et al. 1975, Aust J Sports Med 7:57): k3 = 0. Its steady-state performance
  under a constant daily load w is p0 + (k1·g_fit − k2·g_fat)·w, with g = e/(1 − e) and
  e = exp(−1/τ): a straight line, so "more load is always better" whenever k1·g_fit > k2·g_fat.
  An optimiser exploits exactly that (Ceddia et al. 2025, cited in DESIGN §5).
- Variable dose-response (Busso 2003, Med Sci Sports Exerc 35:1188): k2 = 0 and the fatigue
  gain grows with recent load, k2(i) = k3·K_i (the `dose_gain` channel, time constant τ_gain).
  Sustained load then costs fatigue ∝ w², and steady-state performance
  p0 + k1·g_fit·w − k3·g_fat·w²/(1 − e_gain) is an inverted U with its top at
  `optimal_steady_load`.

Units. Loads are `w = load_trimp / 100` (params.py). Performance is in the units of `baseline`;
the priors use **% of the athlete's baseline** (p0 = 100), so gains are "% per load unit".

Priors (`PERFORMANCE_PRIORS`). Published fits give time constants of order τ_fit 30-60 d and
τ_fat 5-15 d with k2/k1 of order 1.5-3 (reviewed by Clarke & Skiba 2013, Adv Physiol Educ
37:134), but with very wide individual confidence intervals and strongly correlated estimates
(Hellard et al. 2006, J Sports Sci 24:509: τ_fit 38 (17-59) d, τ_fat 19 (6-32) d in elite
swimmers). Busso's (2003) τ_gain is of order a few days. The absolute size of k1 has no
portable literature value (its units are the study's performance and load units), so the prior
is put on a unit-free quantity instead: the **fitness effect**, the steady-state fitness
contribution of a sustained load of 1 (100 TRIMP/day) in % of baseline, k1·g_fit·100/p0. Busso's
untrained subjects improved by 30 ± 7 % in 15 weeks; trained athletes change by a few to ~10 %
over a season, hence a median of 10 % with a wide spread (order of magnitude, not a measured
value). k3 is set from k2 by requiring that, at the athlete's habitual load w_ref, the variable
model's fatigue gain equals the linear one: k3·w_ref/(1 − e_gain) = k2, which puts the optimum
steady load at g_fit·w_ref/(2·(k2/k1)·g_fat), near the habitual load. That placement is a prior
assumption, not something any shipped series identifies (docs/identifiability.md).

Relation to the physiology model. DESIGN §5 writes P with the same G and H as the HRV/RHR
equations. Here performance carries its own time constants (`PerformanceParams`), drawn from the
performance literature, because the physiological ones answer a different question: HRV and
resting HR recover from a session within days (fitted fatigue τ of ~1-5 d on the shipped data,
docs/identifiability.md), while the fatigue that masks performance in Banister fits lasts of
order 5-15 d. A simulator that prefers one latent state can pass the athlete's physiological
τ's with `dataclasses.replace`; the optimum load then moves (it scales with g_fit/g_fat).
Simulated athletes should start trained: `banister.steady_morning_state(habitual load, 0,
params.decays())` as the initial state, and `reference_load` = the habitual load.

`check_against_couzens` fits both variants to the one real performance series (Alan Couzens'
run efficiency factor) and compares the fits with these priors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy.stats import chi2

from physiology_model.data.load import tss_to_trimp
from physiology_model.dynamics import banister
from physiology_model.dynamics.params import LOAD_SCALE_TRIMP

ArrayLike: TypeAlias = float | np.ndarray
"""A scalar, or one value per athlete (shape (n_athletes,))."""

DEFAULT_COUZENS_FOLDER = Path("data/real/couzens/u01")


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prior:
    """A one-dimensional prior: `normal` (center = mean, spread = SD) or `lognormal`
    (center = median, spread = SD of the log)."""

    family: str
    """`normal` or `lognormal`."""
    center: float
    """Mean (normal) or median (lognormal), in `unit`."""
    spread: float
    """SD (normal) or SD of ln(value) (lognormal)."""
    unit: str
    cite: str
    """Where the prior comes from; "order of" marks an approximate reading of the literature."""

    def __post_init__(self) -> None:
        if self.family not in ("normal", "lognormal"):
            raise ValueError(f"unknown prior family {self.family!r}")
        if self.spread <= 0 or (self.family == "lognormal" and self.center <= 0):
            raise ValueError("spread must be > 0 and a lognormal median > 0")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` independent draws, shape (n,)."""
        z = rng.standard_normal(n)
        if self.family == "normal":
            return self.center + self.spread * z
        return self.center * np.exp(self.spread * z)

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """The prior's quantile(s) q in (0, 1)."""
        from scipy.stats import norm

        z = norm.ppf(q)
        if self.family == "normal":
            return np.asarray(self.center + self.spread * z)
        return np.asarray(self.center * np.exp(self.spread * z))

    def interval(self, mass: float = 0.9) -> tuple[float, float]:
        """Central interval holding `mass` of the prior."""
        lo, hi = self.quantile(np.array([(1 - mass) / 2, (1 + mass) / 2]))
        return float(lo), float(hi)


PERFORMANCE_PRIORS: dict[str, Prior] = {
    "tau_fit_days": Prior(
        "lognormal", 42.0, 0.25, "days",
        "order of 30-60 d in published Banister fits (Clarke & Skiba 2013, Adv Physiol Educ "
        "37:134; Hellard et al. 2006, J Sports Sci 24:509: 38 (17-59) d); 42 d is the "
        "TrainingPeaks/GoldenCheetah CTL constant"),
    "tau_fat_days": Prior(
        "lognormal", 9.0, 0.35, "days",
        "order of 5-15 d (Clarke & Skiba 2013; Busso 2003; Hellard et al. 2006: 19 (6-32) d)"),
    "tau_gain_days": Prior(
        "lognormal", 3.5, 0.4, "days",
        "Busso (2003) variable dose-response: the fatigue gain follows recent load with a time "
        "constant of order a few days (2-5 d)"),
    "fatigue_ratio": Prior(
        "lognormal", 2.0, 0.3, "k2/k1",
        "fatigue gain exceeds fitness gain, k2/k1 of order 1.5-3 in published fits "
        "(Clarke & Skiba 2013); at the habitual load for the Busso variant"),
    "fitness_effect_pct": Prior(
        "lognormal", 10.0, 0.6, "% of baseline per 100 TRIMP/day sustained",
        "order of magnitude only: trained athletes change performance by a few to ~10 % over a "
        "season; Busso's (2003) untrained subjects gained 30 ± 7 % in 15 weeks"),
    "reference_load": Prior(
        "lognormal", 1.0, 0.4, "load units (100 TRIMP/day)",
        "habitual daily load at which the Busso fatigue gain equals k2; ~90 TRIMP/day is a "
        "moderately active adult (features.POPULATION_REFERENCE); pass the athlete's own mean "
        "load where known"),
}
"""Literature priors of the performance parameters (see the module docstring)."""


# --------------------------------------------------------------------------------------------
# Parameters and the model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceParams:
    """Parameters of the latent performance model, scalars or one value per athlete (n,).

    The equation is `banister.performance` with these fields as its gains; the Busso channels
    are on when `tau_gain_days` is given.
    """

    fitness_gain: ArrayLike
    """k1: performance units per load unit of the fitness state."""
    fatigue_gain: ArrayLike
    """k2: performance units per load unit of the (linear) fatigue state; 0 in Busso's model."""
    variable_fatigue_gain: ArrayLike
    """k3: performance units per load unit² of the variable fatigue state; 0 in the linear one."""
    tau_fit_days: ArrayLike
    """Fitness time constant (days), > tau_fat_days."""
    tau_fat_days: ArrayLike
    """Fatigue time constant (days); also the decay of Busso's variable fatigue."""
    tau_gain_days: ArrayLike | None = None
    """Busso's dose-gain time constant (days); None = linear Banister model."""
    baseline: ArrayLike = 100.0
    """p0: performance of an untrained athlete (100 = the priors' % scale)."""

    @property
    def is_variable(self) -> bool:
        """Whether this is Busso's variable dose-response model (the Busso channels are on)."""
        return self.tau_gain_days is not None

    @property
    def n(self) -> int | None:
        """Number of athletes (None for a single scalar parameter set)."""
        sizes = {np.size(v) for v in asdict(self).values() if v is not None and np.ndim(v) > 0}
        if len(sizes) > 1:
            raise ValueError(f"parameter arrays have different lengths {sorted(sizes)}")
        return sizes.pop() if sizes else None

    def decays(self) -> np.ndarray:
        """One-day decay factors per channel, shape (..., banister.N_CHANNELS)."""
        return banister.decay_factors(self.tau_fit_days, self.tau_fat_days, None,
                                      self.tau_gain_days)

    def evaluate(self, states: np.ndarray) -> np.ndarray:
        """Performance of morning `states` (..., N_CHANNELS); parameters shaped like the
        leading axes of the states (per athlete (n,), or per athlete and draw (n, d))
        broadcast against states shaped (n, [d,] ..., N_CHANNELS)."""

        def per_athlete(value: ArrayLike) -> np.ndarray:
            value = np.asarray(value, dtype=float)
            extra = np.ndim(states) - 1 - value.ndim  # axes between them and the channels
            return value.reshape(value.shape + (1,) * max(extra, 0)) if value.ndim else value

        return banister.performance(
            states, per_athlete(self.baseline), per_athlete(self.fitness_gain),
            per_athlete(self.fatigue_gain),
            variable_fatigue_gain=per_athlete(self.variable_fatigue_gain))


def build_performance_params(
    tau_fit_days: ArrayLike,
    tau_fat_days: ArrayLike,
    fatigue_ratio: ArrayLike,
    fitness_effect_pct: ArrayLike,
    tau_gain_days: ArrayLike | None = None,
    reference_load: ArrayLike = 1.0,
    baseline: ArrayLike = 100.0,
) -> PerformanceParams:
    """Gains from the unit-free quantities the priors describe (module docstring).

    k1 = fitness_effect_pct/100 · p0 / g_fit with g = e/(1 − e) (the morning state of a
    sustained load of 1); linear: k2 = fatigue_ratio·k1, k3 = 0; Busso (`tau_gain_days` given):
    k2 = 0 and k3 = fatigue_ratio·k1·(1 − e_gain)/reference_load, so that at the steady
    `reference_load` (load units/day) both variants have the same fatigue gain and performance.
    """
    e_fit = banister.decay_from_tau(tau_fit_days)
    g_fit = e_fit / (1.0 - e_fit)
    k1 = np.asarray(fitness_effect_pct, float) / 100.0 * np.asarray(baseline, float) / g_fit
    k2 = np.asarray(fatigue_ratio, float) * k1
    if tau_gain_days is None:
        return PerformanceParams(k1, k2, 0.0 * k1, tau_fit_days, tau_fat_days, None, baseline)
    e_gain = banister.decay_from_tau(tau_gain_days)
    k3 = k2 * (1.0 - e_gain) / np.asarray(reference_load, float)
    return PerformanceParams(k1, 0.0 * k1, k3, tau_fit_days, tau_fat_days, tau_gain_days,
                             baseline)


def sample_performance_params(
    n: int,
    rng: np.random.Generator,
    *,
    variable_dose: bool = True,
    reference_load: ArrayLike | None = None,
    baseline: ArrayLike = 100.0,
) -> PerformanceParams:
    """`n` parameter sets drawn from `PERFORMANCE_PRIORS`, each field shape (n,).

    `variable_dose` True gives Busso's saturating model (the world model's default), False the
    linear Banister model. `reference_load`: the athletes' habitual load (load units/day),
    scalar or (n,); None draws it from its prior. τ_fat < τ_fit is enforced by redrawing the
    (rare) violating pairs.
    """
    priors = PERFORMANCE_PRIORS
    tau_fit = priors["tau_fit_days"].sample(n, rng)
    tau_fat = priors["tau_fat_days"].sample(n, rng)
    bad = tau_fat >= tau_fit
    while bad.any():
        tau_fit[bad] = priors["tau_fit_days"].sample(int(bad.sum()), rng)
        tau_fat[bad] = priors["tau_fat_days"].sample(int(bad.sum()), rng)
        bad = tau_fat >= tau_fit
    ratio = priors["fatigue_ratio"].sample(n, rng)
    effect = priors["fitness_effect_pct"].sample(n, rng)
    tau_gain = priors["tau_gain_days"].sample(n, rng)
    if reference_load is None:
        reference_load = priors["reference_load"].sample(n, rng)
    return build_performance_params(
        tau_fit, tau_fat, ratio, effect, tau_gain if variable_dose else None,
        np.broadcast_to(np.asarray(reference_load, float), (n,)).copy(),
        np.broadcast_to(np.asarray(baseline, float), (n,)).copy())


def typical_performance_params(
    *, variable_dose: bool = True, reference_load: float | None = None,
    baseline: float = 100.0,
) -> PerformanceParams:
    """The prior medians of `PERFORMANCE_PRIORS` as one (scalar) parameter set."""
    p = {name: prior.center for name, prior in PERFORMANCE_PRIORS.items()}
    return build_performance_params(
        p["tau_fit_days"], p["tau_fat_days"], p["fatigue_ratio"], p["fitness_effect_pct"],
        p["tau_gain_days"] if variable_dose else None,
        p["reference_load"] if reference_load is None else reference_load, baseline)


def linear_counterpart(params: PerformanceParams, reference_load: ArrayLike) -> PerformanceParams:
    """The linear Banister model that agrees with a Busso `params` at a steady
    `reference_load`: k2 = k3·reference_load/(1 − e_gain), k3 = 0 (inverse of the mapping in
    `build_performance_params`). A linear `params` is returned unchanged."""
    if not params.is_variable:
        return params
    e_gain = banister.decay_from_tau(params.tau_gain_days)
    k2 = (np.asarray(params.variable_fatigue_gain, float) * np.asarray(reference_load, float)
          / (1.0 - e_gain)) + np.asarray(params.fatigue_gain, float)
    return replace(params, fatigue_gain=k2, variable_fatigue_gain=0.0 * k2, tau_gain_days=None)


def simulate_performance(
    loads: np.ndarray,
    params: PerformanceParams,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Morning performance on each day of a load series.

    `loads`: (T,) or (n, T) in load units (w); per-athlete `params` have shape (n,). `initial`:
    the day-0 morning state (..., N_CHANNELS), e.g. `banister.steady_morning_state` at the
    habitual load; None = untrained. Returns (n, T) (or (T,) for scalar params and (T,) loads).
    """
    decays = params.decays()
    states = banister.morning_states(np.asarray(loads, float), None, decays, initial)
    return params.evaluate(states)


def steady_performance(load: ArrayLike, params: PerformanceParams) -> np.ndarray:
    """Performance once a constant daily `load` (load units) has been held for ever (closed
    form, `banister.steady_morning_state`). `load` and the parameters broadcast like numpy
    arrays: for a grid of L loads against n athletes' parameters pass `load[:, None]` → (L, n)."""
    state = banister.steady_morning_state(load, 0.0, params.decays())
    return banister.performance(state, params.baseline, params.fitness_gain, params.fatigue_gain,
                                variable_fatigue_gain=params.variable_fatigue_gain)


def optimal_steady_load(params: PerformanceParams) -> np.ndarray:
    """The constant daily load (load units) that maximises `steady_performance`.

    Steady performance is p0 + a·w − b·w² with a = k1·S_fit(1) − k2·S_fat(1) and
    b = k3·S_var(1), where S(1) is the steady morning state of a load of 1
    (`banister.steady_morning_state`; S_var scales with w²). So w* = a/(2b) for Busso's model;
    0 when a ≤ 0 (load only costs); +inf when b = 0 and a > 0 (the linear model: more is
    always better). Shape: the parameters' broadcast shape.
    """
    unit = banister.steady_morning_state(1.0, 0.0, params.decays())
    a = (np.asarray(params.fitness_gain, float) * unit[..., banister.FITNESS]
         - np.asarray(params.fatigue_gain, float) * unit[..., banister.FATIGUE])
    b = np.asarray(params.variable_fatigue_gain, float) * unit[..., banister.VARIABLE_FATIGUE]
    a, b = np.broadcast_arrays(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        best = np.where(b > 0, a / (2.0 * b), np.inf)
    return np.where(a <= 0, 0.0, best)


# --------------------------------------------------------------------------------------------
# Fitting a Banister regression to one observed series (least squares, τ on a grid)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceFit:
    """A least-squares fit of y = p0 + k1·G − k2·H (linear) or p0 + k1·G − k3·V (Busso), with the
    gains constrained ≥ 0 and the time constants on a grid.

    Profile intervals: the grid values whose best SSE satisfies
    n_eff·ln(SSE/SSE_min) ≤ χ²₁(0.95), the profile-likelihood 95 % region of each τ for Gaussian
    errors, with n_eff the number of fitted observations shrunk for the residuals' lag-1
    autocorrelation (n·(1 − ρ)/(1 + ρ), ρ ≥ 0): an approximation that makes the region honest
    when errors are serially correlated.
    """

    params: PerformanceParams
    sse: float
    n_obs: int
    n_eff: float
    profile: dict[str, tuple[float, float, bool]]
    """τ name → (low, high, touches the grid's edge) of the 95 % profile region."""


def _banister_features(loads: np.ndarray, tau_fit: np.ndarray, tau_fat: np.ndarray,
                       tau_gain: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Morning fitness (len(tau_fit), T) and fatigue (len(tau_fat), T) or, with `tau_gain`,
    variable fatigue (len(tau_fat), len(tau_gain), T); each series starts at the steady state of
    the mean load (so it does not begin untrained)."""
    mean = float(np.mean(loads))
    fit_decays = banister.decay_factors(tau_fit, 1.0)
    fit = banister.morning_states(loads, None, fit_decays,
                                  banister.steady_morning_state(mean, 0.0, fit_decays))
    if tau_gain is None:
        fat_decays = banister.decay_factors(1.0, tau_fat)
        fat = banister.morning_states(loads, None, fat_decays,
                                      banister.steady_morning_state(mean, 0.0, fat_decays))
        return fit[..., banister.FITNESS], fat[..., banister.FATIGUE]
    var_decays = banister.decay_factors(1.0, tau_fat[:, None], None, tau_gain[None, :])
    var = banister.morning_states(loads, None, var_decays,
                                  banister.steady_morning_state(mean, 0.0, var_decays))
    return fit[..., banister.FITNESS], var[..., banister.VARIABLE_FATIGUE]


def _nonnegative_two_column(x1: np.ndarray, x2: np.ndarray, y: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares y ≈ c + g1·x1 + g2·x2 with g1, g2 ≥ 0 and c free, for many column pairs.

    `x1` (n_fit, 1, ..., N) and `x2` (1, ..., N): every pair of a fitness and a fatigue column
    of the τ grid at once (`_grid_columns`); `y` (N,). The intercept is profiled out by centring; the 2-variable NNLS is solved in
    closed form: the unconstrained solution when both gains are ≥ 0, else the better of the two
    one-column solutions (the optimum of a convex quadratic on the quadrant lies on a face).
    Returns the gains g1, g2 and the SSE, each of the broadcast batch shape.
    """
    yc = y - y.mean()
    c1 = x1 - x1.mean(axis=-1, keepdims=True)
    c2 = x2 - x2.mean(axis=-1, keepdims=True)
    yy = float(yc @ yc)
    a11 = np.einsum("...n,...n->...", c1, c1)
    a22 = np.einsum("...n,...n->...", c2, c2)
    b1 = c1 @ yc
    b2 = c2 @ yc
    a11, a22, b1, b2 = np.broadcast_arrays(a11, a22, b1, b2)
    a12 = _pairwise_dot(c1, c2, a11.shape)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = (a22 * b1 - a12 * b2) / det
        g2 = (a11 * b2 - a12 * b1) / det
        both = (g1 >= 0) & (g2 >= 0) & (det > 1e-12 * a11 * a22)
        sse_both = np.where(both, yy - g1 * b1 - g2 * b2, np.inf)
        only1 = np.where(a11 > 0, np.maximum(b1, 0.0) / a11, 0.0)
        only2 = np.where(a22 > 0, np.maximum(b2, 0.0) / a22, 0.0)
    sse1 = yy - only1 * b1
    sse2 = yy - only2 * b2
    pick = np.argmin(np.stack([sse_both, sse1, sse2]), axis=0)
    gain1 = np.choose(pick, [np.where(both, g1, 0.0), only1, np.zeros_like(only1)])
    gain2 = np.choose(pick, [np.where(both, g2, 0.0), np.zeros_like(only2), only2])
    sse = np.choose(pick, [sse_both, sse1, sse2])
    return gain1, gain2, np.maximum(sse, 0.0)


def _pairwise_dot(c1: np.ndarray, c2: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Σ_n c1·c2 over the last axis for the τ-grid layout of `_grid_columns`: `c1` (n_fit, 1, ...,
    N) against `c2` (1, ..., N) → (n_fit, ...), as one matrix product (no broadcast copy)."""
    n = c1.shape[-1]
    flat = c1.reshape(c1.shape[0], n) @ c2.reshape(-1, n).T
    return flat.reshape(shape)


def _lag1_autocorrelation(resid: np.ndarray, days: np.ndarray) -> float:
    """Lag-1 autocorrelation of residuals over pairs of consecutive observed days, ≥ 0."""
    pairs = np.flatnonzero(np.diff(days) == 1)
    if pairs.size < 10:
        return 0.0
    r = resid - resid.mean()
    rho = float(np.sum(r[pairs] * r[pairs + 1]) / np.sum(r * r) * len(r) / pairs.size)
    return float(np.clip(rho, 0.0, 0.95))


def _grid_columns(loads: np.ndarray, days: np.ndarray, tau_fit_grid: np.ndarray,
                  tau_fat_grid: np.ndarray, tau_gain_grid: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Fitness columns shaped (n_fit, 1[, 1], N) and fatigue columns (1, n_fat[, n_gain], N) on
    the fitted days, so that they broadcast to the full τ grid."""
    fit_x, fat_x = _banister_features(loads, tau_fit_grid, tau_fat_grid, tau_gain_grid)
    fit_x, fat_x = fit_x[..., days], fat_x[..., days]
    if tau_gain_grid is None:
        return fit_x[:, None, :], fat_x[None, :, :], (len(tau_fit_grid), len(tau_fat_grid))
    shape = (len(tau_fit_grid), len(tau_fat_grid), len(tau_gain_grid))
    return fit_x[:, None, None, :], fat_x[None], shape


def fit_banister_series(
    y: np.ndarray,
    loads: np.ndarray,
    fit_days: np.ndarray,
    *,
    tau_fit_grid: np.ndarray,
    tau_fat_grid: np.ndarray,
    tau_gain_grid: np.ndarray | None = None,
) -> PerformanceFit:
    """Fit a Banister (or, with `tau_gain_grid`, Busso) regression to one daily series.

    `y` (T,) observations (NaN = not observed), `loads` (T,) finite daily loads (load units),
    `fit_days`: integer day indices used for the fit (observed ones). τ_fit > τ_fat is enforced.
    Gains ≥ 0 (a fitness effect that raises y, a fatigue effect that lowers it; fit −y for a
    series that moves the other way, e.g. resting HR). Every grid point is solved exactly
    (closed-form NNLS, vectorised). Returns the best grid point, its SSE and the 95 % profile
    regions of the τ's (`PerformanceFit`).
    """
    loads = np.asarray(loads, float)
    days = np.asarray(fit_days, int)
    y_fit = np.asarray(y, float)[days]
    if np.isnan(y_fit).any() or days.size < 5:
        raise ValueError("fit_days must select at least 5 observed (non-NaN) days")
    tau_fit_grid, tau_fat_grid = np.asarray(tau_fit_grid, float), np.asarray(tau_fat_grid, float)
    gain_grid = None if tau_gain_grid is None else np.asarray(tau_gain_grid, float)
    fit_x, fat_x, shape = _grid_columns(loads, days, tau_fit_grid, tau_fat_grid, gain_grid)
    k1, k_fat, sse = _nonnegative_two_column(fit_x, -fat_x, y_fit)
    k1, k_fat, sse = (np.broadcast_to(v, shape) for v in (k1, k_fat, sse))
    valid = tau_fat_grid[None, :] < tau_fit_grid[:, None]
    if gain_grid is not None:
        valid = valid[..., None]
    sse = np.where(np.broadcast_to(valid, shape), sse, np.inf)
    best = tuple(int(b) for b in np.unravel_index(int(np.argmin(sse)), shape))
    gain1, gain2 = float(k1[best]), float(k_fat[best])
    fit_col = fit_x[(best[0],) + (0,) * (fit_x.ndim - 2)]
    fat_col = fat_x[(0,) + best[1:]]
    p0 = float(y_fit.mean() - gain1 * fit_col.mean() + gain2 * fat_col.mean())
    tau_gain = None if gain_grid is None else float(gain_grid[best[2]])
    params = PerformanceParams(
        fitness_gain=gain1, fatigue_gain=0.0 if tau_gain is not None else gain2,
        variable_fatigue_gain=gain2 if tau_gain is not None else 0.0,
        tau_fit_days=float(tau_fit_grid[best[0]]), tau_fat_days=float(tau_fat_grid[best[1]]),
        tau_gain_days=tau_gain, baseline=p0)
    resid = y_fit - predict_banister_series(params, loads)[days]
    rho = _lag1_autocorrelation(resid, days)
    n_eff = days.size * (1.0 - rho) / (1.0 + rho)
    grids = {"tau_fit_days": tau_fit_grid, "tau_fat_days": tau_fat_grid}
    if gain_grid is not None:
        grids["tau_gain_days"] = gain_grid
    profile = {}
    for axis, (name, grid) in enumerate(grids.items()):
        other = tuple(a for a in range(len(shape)) if a != axis)
        region = profile_region(grid, sse.min(axis=other), n_eff)
        profile[name] = region
    return PerformanceFit(params, float(sse.min()), int(days.size), float(n_eff), profile)


def profile_region(grid: np.ndarray, profile_sse: np.ndarray, n_eff: float
                   ) -> tuple[float, float, bool]:
    """(low, high, touches an edge of the grid) of the grid values whose profile SSE passes
    n_eff·ln(SSE/SSE_min) ≤ χ²₁(0.95): a 95 % profile-likelihood region for Gaussian errors."""
    best = max(float(np.min(profile_sse)), 1e-300)  # an exact fit (SSE 0) is not a 0/0
    with np.errstate(divide="ignore"):
        inside = n_eff * np.log(np.maximum(profile_sse, 0.0) / best) <= float(chi2.ppf(0.95, 1))
    values = np.asarray(grid)[inside]
    return float(values.min()), float(values.max()), bool(inside[0] or inside[-1])


def profile_fatigue_ratio(
    y: np.ndarray,
    loads: np.ndarray,
    fit_days: np.ndarray,
    ratio_grid: np.ndarray,
    *,
    tau_fit_grid: np.ndarray,
    tau_fat_grid: np.ndarray,
    tau_gain_grid: np.ndarray | None = None,
    reference_load: float = 1.0,
    n_eff: float | None = None,
) -> dict[str, Any]:
    """Profile SSE of the fatigue-to-fitness ratio k2/k1 (linear) or, for Busso, of the ratio
    at a steady `reference_load`, k3·reference_load/(1 − e_gain)/k1 (the quantity the
    `fatigue_ratio` prior describes).

    For each ratio r the model y = p0 + k1·(G − r·c·H) with c = 1 (linear) or
    c = (1 − e_gain)/reference_load (Busso, H the variable fatigue) has one gain k1 ≥ 0; the
    τ's are profiled out over their grids. Returns the ratio grid, its profile SSE, the best
    ratio and the 95 % region (`profile_region`, with `n_eff` observations; default: the number
    of fitted days, i.e. no correction for serial correlation).
    """
    loads = np.asarray(loads, float)
    days = np.asarray(fit_days, int)
    y_fit = np.asarray(y, float)[days]
    tau_fit_grid, tau_fat_grid = np.asarray(tau_fit_grid, float), np.asarray(tau_fat_grid, float)
    gain_grid = None if tau_gain_grid is None else np.asarray(tau_gain_grid, float)
    fit_x, fat_x, shape = _grid_columns(loads, days, tau_fit_grid, tau_fat_grid, gain_grid)
    if gain_grid is None:
        scale = np.ones(shape[1:])
    else:
        scale = np.broadcast_to((1.0 - banister.decay_from_tau(gain_grid))[None, :]
                                / reference_load, shape[1:])
    valid = tau_fat_grid[None, :] < tau_fit_grid[:, None]
    if gain_grid is not None:
        valid = valid[..., None]
    valid = np.broadcast_to(valid, shape)
    # One-column fits from inner products: x = G − r·c·H, so x·x and x·y are quadratic in r.
    yc = y_fit - y_fit.mean()
    gc = fit_x - fit_x.mean(axis=-1, keepdims=True)
    hc = fat_x - fat_x.mean(axis=-1, keepdims=True)
    gg = np.einsum("...n,...n->...", gc, gc)
    hh = np.einsum("...n,...n->...", hc, hc)
    gh = _pairwise_dot(gc, hc, shape)
    gy, hy = gc @ yc, hc @ yc
    yy = float(yc @ yc)
    best_sse = []
    for r in np.asarray(ratio_grid, float):
        c = r * scale
        xy = gy - c * hy
        xx = gg - 2.0 * c * gh + c * c * hh
        with np.errstate(divide="ignore", invalid="ignore"):
            k1 = np.where(xx > 0, np.maximum(xy, 0.0) / xx, 0.0)
        sse = np.where(valid, yy - k1 * xy, np.inf)
        best_sse.append(float(sse.min()))
    best_sse = np.array(best_sse)
    n = float(days.size if n_eff is None else n_eff)
    low, high, edge = profile_region(ratio_grid, best_sse, n)
    return {"ratio_grid": [float(r) for r in ratio_grid], "profile_sse": best_sse.tolist(),
            "best": float(np.asarray(ratio_grid)[np.argmin(best_sse)]),
            "low_95": low, "high_95": high, "at_grid_edge": edge, "n_eff": n}


def predict_banister_series(params: PerformanceParams, loads: np.ndarray) -> np.ndarray:
    """Fitted values of a `fit_banister_series` result on every day of `loads` (T,), starting
    from the steady state of the mean load as the fit does."""
    loads = np.asarray(loads, float)
    decays = params.decays()
    initial = banister.steady_morning_state(float(np.mean(loads)), 0.0, decays)
    return params.evaluate(banister.morning_states(loads, None, decays, initial))


# --------------------------------------------------------------------------------------------
# The check against Couzens' run efficiency factor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CouzensCheckConfig:
    """Settings of `check_against_couzens`."""

    holdout_fraction: float = 0.2
    """The last this share of the days *with a run EF* is held out (the EF is recorded on 539 of
    2,362 days, mostly in 2013 and 2017-2019, so the last 20 % of calendar days would hold out
    most of the series)."""
    tau_fit_grid: tuple[float, ...] = tuple(np.round(np.geomspace(5.0, 200.0, 36), 2))
    """Grid of fitness time constants (days)."""
    tau_fat_grid: tuple[float, ...] = tuple(np.round(np.geomspace(1.0, 40.0, 28), 2))
    """Grid of fatigue time constants (days)."""
    tau_gain_grid: tuple[float, ...] = tuple(np.round(np.geomspace(0.5, 30.0, 16), 2))
    """Grid of Busso's dose-gain time constants (days)."""
    ctl_tau_days: float = 42.0
    """Time constant of the CTL-only baseline model (TrainingPeaks' CTL)."""
    n_prior_draws: int = 400
    """Prior draws for the prior-predictive comparison."""
    seed: int = 20251126
    """Seed of the prior draws."""


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    """1 − SSE/SST with SST around the mean of `y` itself (scikit-learn's r2_score)."""
    resid = y - pred
    total = y - y.mean()
    return float(1.0 - (resid @ resid) / (total @ total))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def _scores(y: np.ndarray, pred: np.ndarray, train: np.ndarray, test: np.ndarray
            ) -> dict[str, float]:
    return {"r2_train": _r2(y[train], pred[train]), "rmse_train": _rmse(y[train], pred[train]),
            "r2_test": _r2(y[test], pred[test]), "rmse_test": _rmse(y[test], pred[test])}


def _describe_params(params: PerformanceParams, mean_load: float) -> dict[str, Any]:
    """Fitted parameters and the unit-free quantities the priors speak about."""
    p0 = float(params.baseline)
    unit = banister.steady_morning_state(1.0, 0.0, params.decays())
    out: dict[str, Any] = {
        "tau_fit_days": float(params.tau_fit_days), "tau_fat_days": float(params.tau_fat_days),
        "baseline": p0, "fitness_gain": float(params.fitness_gain),
        "fatigue_gain": float(params.fatigue_gain),
        "variable_fatigue_gain": float(params.variable_fatigue_gain),
        "fitness_effect_pct": float(100.0 * params.fitness_gain * unit[banister.FITNESS] / p0),
    }
    if params.is_variable:
        out["tau_gain_days"] = float(params.tau_gain_days)
        e_gain = banister.decay_from_tau(params.tau_gain_days)
        # the linear k2 the Busso fit implies at the athlete's habitual (mean) load
        k2_equivalent = float(params.variable_fatigue_gain) * mean_load / (1.0 - e_gain)
        out["fatigue_ratio_at_mean_load"] = (float(k2_equivalent / params.fitness_gain)
                                             if params.fitness_gain > 0 else float("inf"))
        out["optimal_steady_load"] = float(optimal_steady_load(params))
    else:
        out["fatigue_ratio"] = (float(params.fatigue_gain) / float(params.fitness_gain)
                                if params.fitness_gain > 0 else float("inf"))
    return out


def _within_prior(name: str, value: float) -> dict[str, Any]:
    prior = PERFORMANCE_PRIORS[name]
    lo, hi = prior.interval(0.9)
    from scipy.stats import norm

    z = ((value - prior.center) if prior.family == "normal"
         else (np.log(value) - np.log(prior.center))) / prior.spread if value > 0 else -np.inf
    return {"fitted": value, "prior_90": [lo, hi], "inside_90": bool(lo <= value <= hi),
            "prior_quantile": float(norm.cdf(z))}


def check_against_couzens(
    folder: str | Path = DEFAULT_COUZENS_FOLDER,
    config: CouzensCheckConfig = CouzensCheckConfig(),
) -> dict[str, Any]:
    """Fit the linear Banister and the Busso model to Couzens' run EF given his daily TSS.

    Loads: w = `load.tss_to_trimp`(TSS)/100 (params.py units), every day from 2013-04-01 to
    2019-09-18 (the log is complete). The EF of day d is compared with the morning state of d
    (loads of days < d; the run happens during day d). Fits use the first
    1 − `holdout_fraction` of the EF days; scores are reported on them (in-sample) and on the
    held-out last EF days, for four models: a constant (the training mean), CTL-only
    (EF = a + b·CTL, CTL the EWMA of load with `ctl_tau_days`, ordinary least squares), the
    linear Banister and the Busso fit (`fit_banister_series`), plus the typical prior draw of
    each variant with only its level and scale fitted (`prior_typical_*`). R² is 1 − SSE/SST around each
    set's own mean, so a model that only gets the held-out level wrong scores below 0.

    Returns a JSON-ready dict: data summary, per-model parameters and scores, 95 % profile
    regions of the τ's, and the comparison with `PERFORMANCE_PRIORS` (is each fitted value
    inside the prior's 90 % interval; how the prior-predicted performance swings compare with
    the fitted ones).
    """
    from physiology_model.data.loaders.couzens import load_couzens_performance

    frame = load_couzens_performance(folder)
    tss = frame["tss"].to_numpy(float)
    if np.isnan(tss).any():  # not in the shipped data; the convention for a gap in a load log
        tss = np.where(np.isnan(tss), np.nanmedian(tss), tss)
    return check_performance_series(frame["date"], tss_to_trimp(tss),
                                    frame["run_ef"].to_numpy(float), config, source=str(folder))


def check_performance_series(dates_in: pd.Series, load_trimp: np.ndarray,
                             performance: np.ndarray,
                             config: CouzensCheckConfig = CouzensCheckConfig(), *,
                             source: str = "") -> dict[str, Any]:
    """`check_against_couzens` for any daily load (TRIMP, no gaps) and performance series (NaN on
    days without one; higher is better), e.g. intervals.icu's daily eFTP
    (`benchmarks/intervals_eftp_performance.py`). The result's `ef_*` keys describe the
    performance series whatever it is."""
    folder = source
    frame = pd.DataFrame({"date": pd.to_datetime(pd.Series(dates_in)).reset_index(drop=True)})
    loads = np.asarray(load_trimp, dtype=float) / LOAD_SCALE_TRIMP
    ef = np.asarray(performance, dtype=float)
    observed = np.flatnonzero(~np.isnan(ef))
    n_train = round(len(observed) * (1.0 - config.holdout_fraction))
    train, test = observed[:n_train], observed[n_train:]
    dates = frame["date"].dt.strftime("%Y-%m-%d").to_numpy()
    mean_load = float(loads.mean())

    models: dict[str, dict[str, Any]] = {}
    constant = np.full_like(ef, ef[train].mean())
    models["constant"] = {"params": {"mean": float(ef[train].mean())},
                          **_scores(ef, constant, train, test)}

    ctl_decays = banister.decay_factors(config.ctl_tau_days, 1.0)
    ctl_states = banister.morning_states(
        loads, None, ctl_decays, banister.steady_morning_state(mean_load, 0.0, ctl_decays))
    ctl = (1.0 - ctl_decays[banister.FITNESS]) * ctl_states[:, banister.FITNESS]  # EWMA form
    design = np.column_stack([np.ones(len(train)), ctl[train]])
    (a, b), *_ = np.linalg.lstsq(design, ef[train], rcond=None)
    models["ctl_only"] = {"params": {"intercept": float(a), "slope_per_load": float(b),
                                     "ctl_tau_days": config.ctl_tau_days},
                          **_scores(ef, a + b * ctl, train, test)}

    grids = {"tau_fit_grid": np.asarray(config.tau_fit_grid),
             "tau_fat_grid": np.asarray(config.tau_fat_grid)}
    fits = {
        "banister_linear": fit_banister_series(ef, loads, train, **grids),
        "busso": fit_banister_series(ef, loads, train, **grids,
                                     tau_gain_grid=np.asarray(config.tau_gain_grid)),
    }
    for name, fit in fits.items():
        pred = predict_banister_series(fit.params, loads)
        models[name] = {"params": _describe_params(fit.params, mean_load),
                        "profile_95": {k: {"low": v[0], "high": v[1], "at_grid_edge": v[2]}
                                       for k, v in fit.profile.items()},
                        "n_eff": fit.n_eff, **_scores(ef, pred, train, test)}

    # How well do the data pin down the fatigue/fitness balance the `fatigue_ratio` prior sets?
    ratio_grid = np.concatenate([[0.0], np.geomspace(0.05, 20.0, 48)])
    for name, gain_grid in (("banister_linear", None),
                            ("busso", np.asarray(config.tau_gain_grid))):
        models[name]["fatigue_ratio_profile"] = {
            k: v for k, v in profile_fatigue_ratio(
                ef, loads, train, ratio_grid, **grids, tau_gain_grid=gain_grid,
                reference_load=mean_load, n_eff=fits[name].n_eff).items()
            if k not in ("ratio_grid", "profile_sse")}

    # The prior's typical shape, only rescaled: EF = a + c·(P_typical − 100), c by least squares.
    # Tells whether the prior's balance of fitness and fatigue fits this series at all.
    for name, variable in (("prior_typical_linear", False), ("prior_typical_busso", True)):
        typical = typical_performance_params(variable_dose=variable, reference_load=mean_load)
        shape = predict_banister_series(typical, loads) - float(typical.baseline)
        design = np.column_stack([np.ones(len(train)), shape[train]])
        (a, c), *_ = np.linalg.lstsq(design, ef[train], rcond=None)
        models[name] = {"params": {"intercept": float(a), "scale": float(c),
                                   **_describe_params(typical, mean_load)},
                        "corr_train": float(np.corrcoef(shape[train], ef[train])[0, 1]),
                        **_scores(ef, a + c * shape, train, test)}

    lin = models["banister_linear"]["params"]
    bus = models["busso"]["params"]
    prior_check = {
        "linear.tau_fit_days": _within_prior("tau_fit_days", lin["tau_fit_days"]),
        "linear.tau_fat_days": _within_prior("tau_fat_days", lin["tau_fat_days"]),
        "linear.fatigue_ratio": _within_prior("fatigue_ratio", lin["fatigue_ratio"]),
        "linear.fitness_effect_pct": _within_prior("fitness_effect_pct",
                                                   lin["fitness_effect_pct"]),
        "busso.tau_fit_days": _within_prior("tau_fit_days", bus["tau_fit_days"]),
        "busso.tau_fat_days": _within_prior("tau_fat_days", bus["tau_fat_days"]),
        "busso.tau_gain_days": _within_prior("tau_gain_days", bus["tau_gain_days"]),
        "busso.fatigue_ratio_at_mean_load": _within_prior(
            "fatigue_ratio", bus["fatigue_ratio_at_mean_load"]),
        "busso.fitness_effect_pct": _within_prior("fitness_effect_pct",
                                                  bus["fitness_effect_pct"]),
    }
    for name in ("banister_linear", "busso"):
        profile = models[name]["fatigue_ratio_profile"]
        lo, hi = PERFORMANCE_PRIORS["fatigue_ratio"].interval(0.9)
        prior_check[f"{name}.fatigue_ratio_95_region_overlaps_prior_90"] = {
            "region": [profile["low_95"], profile["high_95"]], "prior_90": [lo, hi],
            "overlaps": bool(profile["low_95"] <= hi and profile["high_95"] >= lo)}

    # Prior predictive: how much do prior draws make performance swing over the EF days, and
    # does the fitted curve's swing lie inside that range?
    rng = np.random.default_rng(config.seed)
    draws = sample_performance_params(config.n_prior_draws, rng, reference_load=mean_load)
    initial = banister.steady_morning_state(mean_load, 0.0, draws.decays())
    prior_perf = simulate_performance(np.broadcast_to(loads, (config.n_prior_draws, len(loads))),
                                      draws, initial)[:, train]
    swing = prior_perf.std(axis=1) / prior_perf.mean(axis=1) * 100.0
    corr = np.array([np.corrcoef(p, ef[train])[0, 1] for p in prior_perf])
    fitted_swing = {}
    for name in ("banister_linear", "busso"):
        pred = predict_banister_series(fits[name].params, loads)[train]
        fitted_swing[name] = float(pred.std() / pred.mean() * 100.0)
    q = [5, 50, 95]
    prior_predictive = {
        "n_draws": config.n_prior_draws,
        "swing_pct_sd_quantiles_5_50_95": [float(v) for v in np.percentile(swing, q)],
        "fitted_swing_pct_sd": fitted_swing,
        "observed_ef_sd_pct_of_mean": float(ef[train].std() / ef[train].mean() * 100.0),
        "corr_with_observed_quantiles_5_50_95": [float(v) for v in np.percentile(corr, q)],
        "share_of_draws_with_positive_corr": float(np.mean(corr > 0)),
        "fitted_swing_inside_prior_90": {
            k: bool(np.percentile(swing, 5) <= v <= np.percentile(swing, 95))
            for k, v in fitted_swing.items()},
    }

    return {
        "data": {
            "folder": str(folder), "days": len(loads),
            "first_day": str(dates[0]), "last_day": str(dates[-1]),
            "ef_days": len(observed), "train_ef_days": len(train),
            "test_ef_days": len(test),
            "train_span": [str(dates[train[0]]), str(dates[train[-1]])],
            "test_span": [str(dates[test[0]]), str(dates[test[-1]])],
            "mean_load": mean_load, "load_unit": "100 TRIMP/day (TSS × load.TRIMP_PER_TSS / 100)",
            "ef_mean": float(np.nanmean(ef)), "ef_sd": float(np.nanstd(ef)),
        },
        "models": models,
        "prior_check": prior_check,
        "prior_predictive": prior_predictive,
        "config": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in asdict(config).items()},
    }


__all__ = [
    "PERFORMANCE_PRIORS",
    "PerformanceFit",
    "CouzensCheckConfig",
    "PerformanceParams",
    "Prior",
    "build_performance_params",
    "check_against_couzens",
    "check_performance_series",
    "fit_banister_series",
    "linear_counterpart",
    "optimal_steady_load",
    "predict_banister_series",
    "profile_fatigue_ratio",
    "profile_region",
    "sample_performance_params",
    "simulate_performance",
    "steady_performance",
    "typical_performance_params",
]
