"""The observation equations of one athlete-day (DESIGN §5): latent Banister states → the means
of ln HRV, RHR and the recovery logit, the recovery link, and each signal's AR(1) noise.

Everything that turns an athlete's state into a morning reading (the fit's forecasts, the
simulator, the planner's rollouts, the MPC's belief) calls these functions.
"""

from __future__ import annotations

import numpy as np

from physiology_model.dynamics import banister
from physiology_model.dynamics.params import RECOVERY_CLIP_PCT, TAU_FAST_DAYS, state_normaliser

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
"""Parameters that enter linearly: drawn from their exact Gaussian posterior, not weighted."""


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
    for target, (intercept, terms) in (("hrv", HRV_BLOCK), ("rhr", RHR_BLOCK)):
        m = p[intercept][:, None] + 0.0 * latents[..., 0]
        for name, channel, sign in terms:
            m = m + sign * p[name][:, None] * latents[..., channel]
        out[target] = m
    out["recovery"] = (p["mu_rec"][:, None]
                       + p["g_hrv"][:, None] * (out["hrv"] - p["mu_hrv"][:, None])
                       - p["g_rhr"][:, None] * (out["rhr"] - p["mu_rhr"][:, None]))
    return out


NOISE_SIGMA = {"hrv": "sigma_hrv", "rhr": "sigma_rhr", "recovery": "sigma_rec"}
NOISE_PHI = {"hrv": "phi_hrv", "rhr": "phi_rhr", "recovery": "phi_rec"}
NOISE_SLOW_SHARE = {"hrv": "slow_hrv", "rhr": "slow_rhr", "recovery": "slow_rec"}
NOISE_PHI_SLOW = {"hrv": "phi_slow_hrv", "rhr": "phi_slow_rhr", "recovery": "phi_slow_rec"}
"""Each target's noise parameters: marginal SD σ, the fast component's coefficient φ, the slow
component's share w of σ² and its coefficient φ_s (`params.NOISE_PARAMS`)."""


def ar1_step(previous: np.ndarray, phi: np.ndarray, sigma: np.ndarray,
             innovation: np.ndarray) -> np.ndarray:
    """One day of a stationary AR(1) noise process with coefficient `phi` and marginal SD
    `sigma`: φ·r + σ·√(1 − φ²)·ε, ε a standard normal (pre-drawn, so that a caller's keyed
    streams or common random numbers decide it). The one noise update of every athlete-day."""
    return phi * previous + sigma * np.sqrt(1.0 - phi ** 2) * innovation
