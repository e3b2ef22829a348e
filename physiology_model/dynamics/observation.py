"""The observation equations of one athlete-day (DESIGN §5): latent Banister states → the means
of ln HRV, RHR and the recovery logit, the recovery link, and each signal's AR(1) noise.

Everything that turns an athlete's state into a morning reading (the fit's forecasts, the
simulator, the planner's rollouts, the MPC's belief) calls these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physiology_model.dynamics import banister
from physiology_model.dynamics.params import (
    RECOVERY_CLIP_PCT,
    TAU_FAST_DAYS,
    WEEKDAY_NAMES,
    WEEKDAY_PARAMS,
    state_normaliser,
)

TARGETS: tuple[str, ...] = ("hrv", "rhr", "recovery")
"""Forecast targets: ln RMSSD (ln ms), resting HR (bpm), recovery (%)."""

LATENTS: tuple[str, ...] = ("fitness", "fatigue", "fast_fatigue")
"""Latent states reported by `predict`, normalised by `params.state_normaliser` (yesterday
evening's EWMA of the daily load: 100 TRIMP/day; fast: h/day)."""

# The linear blocks of the observation equations: (target, intercept, loadings with signs).
HRV_BLOCK = ("mu_hrv", (("a_fit", 0, +1.0), ("a_fat", 1, -1.0), ("a_fast", 2, -1.0)))
RHR_BLOCK = ("mu_rhr", (("b_fit", 0, -1.0), ("b_fat", 1, +1.0), ("b_fast", 2, +1.0)))
LINEAR_PARAMS = frozenset(("mu_hrv", "a_fit", "a_fat", "a_fast", "mu_rhr", "b_fit", "b_fat",
                            "b_fast", "mu_rec", "g_hrv", "g_rhr"))
"""Parameters that enter linearly: drawn from their exact Gaussian posterior, not weighted;
except the recovery gains g_hrv and g_rhr, which multiply the HRV and RHR loadings in the
recovery equation: the personalisation weighs them (`personalize.RECOVERY_GAINS`)."""


def recovery_to_logit(recovery_pct: np.ndarray) -> np.ndarray:
    lo, hi = RECOVERY_CLIP_PCT
    p = np.clip(np.asarray(recovery_pct, dtype=float), lo, hi) / 100.0
    return np.log(p) - np.log1p(-p)


def logit_to_recovery(logit: np.ndarray) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-np.asarray(logit, dtype=float)))


WARM_START_DAYS = 7
"""The Banister states start at the steady state of the mean load of the first days (the
athlete trained before the data began); forecasts need origins at or after this day, so that
they never see a load of a day they forecast past. Equal to `arrays.LOAD_FILL_HEAD_DAYS`."""


def channel_decays(p: dict[str, np.ndarray]) -> np.ndarray:
    """Daily decay factors of the fitness, fatigue and fast-fatigue channels, (S, 3), of S
    parameter draws (τ_fit = τ_fat + τ_gap; the fast channel's τ is `TAU_FAST_DAYS`). The
    world model, the simulator and the planners all step their states with these."""
    tau_fat = p["tau_fat_days"]
    tau_fit = tau_fat + p["tau_gap_days"]
    return banister.decay_factors(tau_fit, tau_fat, np.full_like(tau_fat, TAU_FAST_DAYS))


def latent_states(p: dict[str, np.ndarray], load: np.ndarray, hi_load: np.ndarray) -> np.ndarray:
    """Normalised morning fitness, fatigue and fast fatigue (`params.state_normaliser`: a
    constant daily load w gives w), (S, T, 3), for S parameter draws of one athlete's loads
    `load`, `hi_load` (T,), or of each draw's own (S, T) (several athletes' draws stacked).

    The series starts at the steady state of the mean load of its first `WARM_START_DAYS` days
    (a trained start).
    """
    decays = channel_decays(p)  # (S, C)
    initial = banister.steady_morning_state(np.mean(load[..., :WARM_START_DAYS], axis=-1),
                                            np.mean(hi_load[..., :WARM_START_DAYS], axis=-1),
                                            decays)
    shape = decays.shape[:1] + load.shape[-1:]
    states = banister.morning_states(np.broadcast_to(load, shape),
                                     np.broadcast_to(hi_load, shape), decays, initial)
    return states[..., :3] * state_normaliser(decays[:, None, :3])


def observation_means(p: dict[str, np.ndarray], latents: np.ndarray,
                      weekday: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Means of ln HRV, RHR and logit recovery, each (S, T), from latents (S, T, 3), plus each
    target's weekday offset (`weekday_offsets`) when the calendar `weekday` (T,) or (S, T)
    (0 = Monday) is given. The recovery logit's offset is its own (the weekly rhythm of the
    score as measured), not the HRV and RHR offsets through the gains."""
    out = {}
    for target, (intercept, terms) in (("hrv", HRV_BLOCK), ("rhr", RHR_BLOCK)):
        m = p[intercept][:, None] + 0.0 * latents[..., 0]
        for name, channel, sign in terms:
            m = m + sign * p[name][:, None] * latents[..., channel]
        out[target] = m
    out["recovery"] = (p["mu_rec"][:, None]
                       + p["g_hrv"][:, None] * (out["hrv"] - p["mu_hrv"][:, None])
                       - p["g_rhr"][:, None] * (out["rhr"] - p["mu_rhr"][:, None]))
    if weekday is not None and has_weekday(p):
        for target in TARGETS:
            table = weekday_table(p, target)[:, None, :]  # (S, 1, 7)
            out[target] = out[target] + weekday_offsets(
                table, np.broadcast_to(weekday, out[target].shape))
    return out


def has_weekday(p: Any) -> bool:
    """Whether the parameters `p` carry a weekly rhythm (any weekday offset ≠ 0). A parameter
    set that caches it (`step.AthleteParams.weekday_tables`, None without a rhythm) answers from
    its cache."""
    if hasattr(p, "weekday_tables"):
        return p.weekday_tables is not None
    return any(name in p and np.any(np.asarray(p[name]) != 0) for name in WEEKDAY_NAMES)


def weekday_table(p: Any, target: str) -> np.ndarray:
    """The target's seven offsets (`params.WEEKDAY_PARAMS`, Monday … Sunday) of parameters of
    batch shape B: B + (7,) (zeros where `p` has none; from the cache of a parameter set that
    keeps one, `step.AthleteParams.weekday_tables`)."""
    cached = getattr(p, "weekday_tables", None)
    if cached is not None:
        return cached[..., TARGETS.index(target), :]
    names = WEEKDAY_PARAMS[target]
    if names[0] not in p:
        return np.zeros(np.shape(p["mu_hrv"]) + (7,))
    return np.stack([np.asarray(p[n], dtype=float) for n in names], axis=-1)


def weekday_offsets(table: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Elementwise offsets: `table` (…, 7) from `weekday_table` and the day of the week
    (0 = Monday) of each element, broadcast together."""
    weekday = np.asarray(weekday, dtype=np.int64)
    shape = np.broadcast_shapes(table.shape[:-1], weekday.shape)
    return np.take_along_axis(np.broadcast_to(table, shape + (7,)),
                              np.broadcast_to(weekday, shape)[..., None], axis=-1)[..., 0]


NOISE_SIGMA = {"hrv": "sigma_hrv", "rhr": "sigma_rhr", "recovery": "sigma_rec"}
NOISE_PHI = {"hrv": "phi_hrv", "rhr": "phi_rhr", "recovery": "phi_rec"}
NOISE_SLOW_SHARE = {"hrv": "slow_hrv", "rhr": "slow_rhr", "recovery": "slow_rec"}
NOISE_PHI_SLOW = {"hrv": "phi_slow_hrv", "rhr": "phi_slow_rhr", "recovery": "phi_slow_rec"}
"""Each target's noise parameters: marginal SD σ, the fast component's coefficient φ, the slow
component's share w of σ² and its coefficient φ_s (`params.NOISE_PARAMS`)."""


NOISE_COUPLING: tuple[tuple[str, str, str], ...] = (
    ("hrv", "rhr", "rho_hrv_rhr"), ("hrv", "recovery", "rho_hrv_rec"),
    ("rhr", "recovery", "rho_rhr_rec"))
"""The pairs of targets whose same-day noise innovations are correlated, and the parameter
that holds the correlation (`params.COUPLING_PARAMS`)."""


def correlation_factor(r12: np.ndarray, r13: np.ndarray, r23: np.ndarray) -> np.ndarray:
    """A square root M (..., 3, 3) of the correlation matrices [[1, r12, r13], [r12, 1, r23],
    [r13, r23, 1]] (M·Mᵀ = R; ln HRV, RHR, recovery): the Cholesky factor taken in the order
    ln HRV, recovery, RHR, so that the recovery row uses the ln HRV and recovery normals only,
    r13·z₁ + √(1 − r13²)·z₃, which is also the pair's own factor: the planner's scenarios,
    which draw those two signals alone, correlate the same normals into the same numbers.
    Closed form; the matrices must be positive definite (`coupling_problem` checks where values
    come from a file)."""
    r12, r13, r23 = np.broadcast_arrays(*(np.asarray(r, dtype=float) for r in (r12, r13, r23)))
    out = np.zeros(r12.shape + (3, 3))
    rec = np.sqrt(1.0 - r13 ** 2)
    rhr_on_rec = (r23 - r12 * r13) / rec
    out[..., 0, 0] = 1.0
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = (
        r12, np.sqrt(1.0 - r12 ** 2 - rhr_on_rec ** 2), rhr_on_rec)
    out[..., 2, 0], out[..., 2, 2] = r13, rec
    return out


def coupling_problem(r12: np.ndarray, r13: np.ndarray, r23: np.ndarray) -> str | None:
    """What is wrong with these correlations (None: each in (−1, 1) and every matrix
    positive definite)."""
    values = [np.asarray(r, dtype=float) for r in (r12, r13, r23)]
    if any(not np.all(np.isfinite(v)) or np.any(np.abs(v) >= 1.0) for v in values):
        return "correlations outside (-1, 1)"
    a, b, c = values
    if np.any(1.0 + 2.0 * a * b * c - a ** 2 - b ** 2 - c ** 2 <= 1e-9):
        return "correlations that no three signals can have (the matrix is not positive definite)"
    return None


def stationary_coupling(rho: tuple[np.ndarray, np.ndarray, np.ndarray], phi: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same-day correlations of three stationary AR(1) processes with coefficients `phi`
    (..., 3) whose innovations have correlations `rho` (r12, r13, r23):
    ρ_ij·√(1 − φ_i²)·√(1 − φ_j²) / (1 − φ_i·φ_j) (the start of a simulated athlete)."""
    def one(r: np.ndarray, i: int, j: int) -> np.ndarray:
        pi, pj = phi[..., i], phi[..., j]
        return r * np.sqrt((1.0 - pi ** 2) * (1.0 - pj ** 2)) / (1.0 - pi * pj)
    return one(rho[0], 0, 1), one(rho[1], 0, 2), one(rho[2], 1, 2)


def correlate(z: np.ndarray, factor: np.ndarray | None) -> np.ndarray:
    """Standard normals z (..., 3) made correlated by the factor L (`correlation_factor`,
    broadcast against z's leading shape): L·z; `factor` None leaves z as it is."""
    if factor is None:
        return z
    # column by column: 1.6x faster than einsum at 16,384 athletes, the env's batch
    return (factor[..., 0] * z[..., 0, None] + factor[..., 1] * z[..., 1, None]
            + factor[..., 2] * z[..., 2, None])


def ar1_step(previous: np.ndarray, phi: np.ndarray, sigma: np.ndarray,
             innovation: np.ndarray) -> np.ndarray:
    """One day of a stationary AR(1) noise process with coefficient `phi` and marginal SD
    `sigma`: φ·r + σ·√(1 − φ²)·ε, ε a standard normal (pre-drawn, so that a caller's keyed
    streams or common random numbers decide it). The one noise update of every athlete-day."""
    return phi * previous + sigma * np.sqrt(1.0 - phi ** 2) * innovation


def component_sds(sigma: np.ndarray, slow_share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marginal SDs (fast, slow) of the two noise components of a target whose whole noise
    has marginal SD `sigma` and a share `slow_share` = w of its variance in the slow
    component: √(1 − w)·σ and √w·σ (with w = 0, exactly σ and 0: one AR(1))."""
    return np.sqrt(1.0 - slow_share) * sigma, np.sqrt(slow_share) * sigma


def noise_step(fast: np.ndarray, slow: np.ndarray, phi: np.ndarray, phi_slow: np.ndarray,
               sigma: np.ndarray, slow_share: np.ndarray, innovation: np.ndarray,
               slow_innovation: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One day of a target's two-component noise (`params.SLOW_SHARE_PARAMS`): each component
    stepped by `ar1_step` from its own pre-drawn standard normals. `slow_innovation` None: the
    slow component only decays (allowed where its share is 0, when it stays 0)."""
    sd_fast, sd_slow = component_sds(sigma, slow_share)
    fast = ar1_step(fast, phi, sd_fast, innovation)
    if slow_innovation is None:
        return fast, phi_slow * slow
    return fast, ar1_step(slow, phi_slow, sd_slow, slow_innovation)


def split_residual(observed: np.ndarray, slow: np.ndarray, fast: np.ndarray, cov: np.ndarray,
                   phi: np.ndarray, phi_slow: np.ndarray, sigma: np.ndarray,
                   slow_share: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One day of the Kalman filter that splits a target's observed noise into its slow and
    fast components (the same filter as `model.drift.filter_residuals`, one day at a time).

    `slow`, `fast` (...,): yesterday's filtered means; `cov` (..., 3): their (Var slow,
    Var fast, Cov); `observed` (...,): today's residual (reading − predicted mean), NaN when
    not measured (then the components only decay). Returns today's (slow, fast, cov). The
    reading is exact (the noise is all in the process), so the filtered components sum to
    the observed residual; with w = 0 the slow component is 0 and the fast one is the
    residual itself, bit for bit.
    """
    var_fast, var_slow = (sd ** 2 for sd in component_sds(sigma, slow_share))
    slow, fast = phi_slow * slow, phi * fast
    p_ss = phi_slow ** 2 * cov[..., 0] + var_slow * (1.0 - phi_slow ** 2)
    p_ff = phi ** 2 * cov[..., 1] + var_fast * (1.0 - phi ** 2)
    p_sf = phi_slow * phi * cov[..., 2]
    seen = np.isfinite(observed)
    c_s, c_f = p_ss + p_sf, p_ff + p_sf
    total = np.maximum(p_ss + p_sf + p_ff + p_sf, 1e-300)
    k_s, k_f = c_s / total, c_f / total
    innovation = np.where(seen, observed, 0.0) - slow - fast
    slow = np.where(seen, slow + k_s * innovation, slow)
    fast = np.where(seen, observed - slow, fast)
    cov = np.empty(p_ss.shape + (3,))  # unseen days keep the predicted covariance
    cov[..., 0] = np.where(seen, p_ss - k_s * c_s, p_ss)
    cov[..., 1] = np.where(seen, p_ff - k_f * c_f, p_ff)
    cov[..., 2] = np.where(seen, p_sf - k_s * c_f, p_sf)
    return slow, fast, cov
