"""The world model's per-athlete parameters, their transforms and their literature priors.

One table, `ATHLETE_PARAMS`, is the single definition used by the PyMC model (`bayes.py`),
the `WorldModel` (prediction, `sample_athletes`, `personalize`) and the simulator.

Every athlete parameter θ is a transform of an unconstrained value:
`θ_u = transform(loc[source_u] + scale · z_u)` (non-centred; `loc` per data source where
`by_source`, else one population value), with `z_u ~ N(0, 1)`, `loc ~ N(loc_mean, loc_sd)` and
`scale ~ HalfNormal(scale_sd)`. So the population distribution of an athlete parameter is
fully described by (loc, scale) draws, which is what `sample_athletes` draws from.

Units and scaling (fixed here, used everywhere):

- daily load `w` = load_trimp / 100 (hundreds of Edwards TRIMP per day);
- high-intensity load `u` = (z4_min + z5_min + strength_min) / 60 (hours per day);
- the Banister states enter the observation equations normalised to EWMA form,
  `G̃ = (1 − e^{−1/τ}) · G` (the TrainingPeaks CTL/ATL convention), so a gain is "change per
  100 TRIMP/day of sustained load" whatever τ is; this decouples gains from time constants,
  which helps NUTS (DESIGN §5 notes the centring that cut leapfrog steps ~3×).

Observation equations (morning of day d, states from `banister.morning_states`):

    ln HRV_d = mu_hrv + a_fit·G̃_d − a_fat·H̃_d − a_fast·F̃_d + ε_hrv,d
    RHR_d    = mu_rhr − b_fit·G̃_d + b_fat·H̃_d + b_fast·F̃_d + ε_rhr,d
    logit(recovery_d / 100) = mu_rec + g_hrv·(m_hrv,d − mu_hrv) − g_rhr·(m_rhr,d − mu_rhr) + ε_rec,d

where m_hrv,d and m_rhr,d are the predicted means of ln HRV and RHR (recovery is a learned link
of predicted HRV and RHR relative to the athlete's baseline, as WHOOP's own score is), and each
ε follows an AR(1) process with coefficient phi (population) and marginal SD sigma (athlete).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOAD_SCALE_TRIMP = 100.0
"""`w = load_trimp / LOAD_SCALE_TRIMP`."""
HI_LOAD_SCALE_MIN = 60.0
"""`u = (z4_min + z5_min + strength_min) / HI_LOAD_SCALE_MIN`."""
TAU_FAST_DAYS = 2.0
"""Time constant of the fast fatigue channel (high-intensity/strength load). HRV is depressed
for 24-72 h after hard sessions (Stanley, Peake & Buchheit 2013, Sports Med 43:1259), longer
after HIIT than after easy work; fixed, not fitted: the data do not separate it from τ_fat."""
RECOVERY_CLIP_PCT = (1.0, 99.0)
"""Recovery scores are clipped to this range before the logit (WHOOP reports 0-100)."""


@dataclass(frozen=True)
class ParamSpec:
    """One per-athlete parameter of the world model."""

    unit: str
    transform: str
    """`identity` or `exp` (positive parameters)."""
    loc_mean: float
    """Prior mean of the population location (on the unconstrained scale)."""
    loc_sd: float
    """Prior SD of the population location."""
    scale_sd: float
    """HalfNormal SD of the between-athlete spread (on the unconstrained scale)."""
    by_source: bool
    """Whether the population location differs per data source (device effect)."""
    cite: str
    """Where the prior comes from."""


ATHLETE_PARAMS: dict[str, ParamSpec] = {
    # Time constants. τ_fit = τ_fat + τ_gap, so τ_fit > τ_fat by construction.
    "tau_fat_days": ParamSpec(
        "days", "exp", float(np.log(4.0)), 0.4, 0.3, False,
        "HRV recovers 24-72 h after single sessions and within about a week after hard blocks "
        "(Stanley et al. 2013, Sports Med 43:1259); fitted Banister fatigue τ 4-15 d "
        "(Busso 2003, Med Sci Sports Exerc 35:1188; Clarke & Skiba 2013, Adv Physiol Educ 37:134)"),
    "tau_gap_days": ParamSpec(
        "days", "exp", float(np.log(30.0)), 0.4, 0.3, False,
        "fitted Banister fitness τ 20-60 d (Clarke & Skiba 2013; Busso 2003); "
        "GoldenCheetah/TrainingPeaks use 42 d for CTL"),
    # ln HRV
    "mu_hrv": ParamSpec(
        "ln ms", "identity", float(np.log(55.0)), 0.5, 0.5, True,
        "nocturnal RMSSD of adults ~20-150 ms, between-person SD of ln RMSSD ~0.4-0.5 "
        "(Nunan et al. 2010, Pacing Clin Electrophysiol 33:1407); WHOOP and Fitbit differ"),
    "a_fit": ParamSpec(
        "ln ms per 100 TRIMP/d", "identity", 0.05, 0.05, 0.05, False,
        "aerobic training raises resting vagal activity over weeks (Plews et al. 2013, "
        "Sports Med 43:773; Buchheit 2014, Front Physiol 5:73)"),
    "a_fat": ParamSpec(
        "ln ms per 100 TRIMP/d", "identity", 0.08, 0.06, 0.05, False,
        "acute load lowers next-morning ln RMSSD by a few to ~10 % (Stanley et al. 2013; "
        "Plews et al. 2013)"),
    "a_fast": ParamSpec(
        "ln ms per h/d of Z4-5+strength", "identity", 0.05, 0.05, 0.03, False,
        "HRV recovery is slower after high-intensity than after low-intensity sessions "
        "(Stanley et al. 2013; Seiler et al. 2007, Med Sci Sports Exerc 39:1366)"),
    "sigma_hrv": ParamSpec(
        "ln ms", "exp", float(np.log(0.12)), 0.3, 0.3, True,
        "day-to-day CV of RMSSD ~7-15 % (Plews et al. 2012, Eur J Appl Physiol 112:3729)"),
    # RHR
    "mu_rhr": ParamSpec(
        "bpm", "identity", 58.0, 8.0, 8.0, True,
        "resting HR of active adults ~45-75 bpm"),
    "b_fit": ParamSpec(
        "bpm per 100 TRIMP/d", "identity", 2.0, 2.0, 1.5, False,
        "endurance training lowers resting HR by a few bpm over weeks "
        "(Buchheit 2014, Front Physiol 5:73)"),
    "b_fat": ParamSpec(
        "bpm per 100 TRIMP/d", "identity", 1.5, 1.5, 1.0, False,
        "acute load and overreaching raise morning HR by 1-5 bpm (Buchheit 2014)"),
    "b_fast": ParamSpec(
        "bpm per h/d of Z4-5+strength", "identity", 1.0, 1.0, 0.5, False,
        "as a_fast"),
    "sigma_rhr": ParamSpec(
        "bpm", "exp", float(np.log(2.5)), 0.3, 0.3, True,
        "day-to-day SD of morning resting HR ~2-3 bpm (Buchheit 2014)"),
    # recovery (logit scale)
    "mu_rec": ParamSpec(
        "logit", "identity", 0.5, 0.5, 0.5, True,
        "WHOOP recovery averages ~55-65 % in the shipped exports"),
    "g_hrv": ParamSpec(
        "logit per ln ms", "identity", 3.0, 1.5, 1.0, False,
        "WHOOP recovery is driven mainly by HRV relative to the personal baseline"),
    "g_rhr": ParamSpec(
        "logit per bpm", "identity", 0.1, 0.05, 0.05, False,
        "and by resting HR relative to the baseline"),
    "sigma_rec": ParamSpec(
        "logit", "exp", float(np.log(0.5)), 0.3, 0.3, True,
        "residual day-to-day variation of recovery beyond HRV and RHR (sleep, respiration)"),
}
"""Per-athlete parameters, in a fixed order (the order of the parameter axis everywhere)."""

AR_PARAMS: tuple[str, ...] = ("phi_hrv", "phi_rhr", "phi_rec")
"""Population AR(1) coefficients of the three observation noises, prior Beta(2, 2)."""

PARAM_NAMES: tuple[str, ...] = tuple(ATHLETE_PARAMS)


def to_constrained(name: str, raw: np.ndarray) -> np.ndarray:
    """Apply a parameter's transform to unconstrained values."""
    spec = ATHLETE_PARAMS[name]
    return np.exp(raw) if spec.transform == "exp" else np.asarray(raw, dtype=float)


def to_unconstrained(name: str, value: np.ndarray) -> np.ndarray:
    """Inverse of `to_constrained`."""
    spec = ATHLETE_PARAMS[name]
    return np.log(value) if spec.transform == "exp" else np.asarray(value, dtype=float)


def tau_fit_days(tau_fat: np.ndarray, tau_gap: np.ndarray) -> np.ndarray:
    """Fitness time constant: always longer than the fatigue one."""
    return np.asarray(tau_fat) + np.asarray(tau_gap)
