"""The world model's per-athlete parameters, their transforms and their literature priors.

One table, `ATHLETE_PARAMS`, is the single definition used by the PyMC model (`bayes.py`),
the `WorldModel` (prediction, `sample_athletes`, `personalize`) and the simulator.

Every athlete parameter θ is a transform of an unconstrained value:
`θ_u = transform(loc[source_u] + scale · z_u)` (non-centred; `loc` per data source where
`by_source`, else one population value), with `z_u ~ N(0, 1)`, `loc ~ N(loc_mean, loc_sd)` and
`scale ~ HalfNormal(scale_sd)`; a `pooled` parameter has scale 0 (one value for every athlete:
its differences between athletes are not identified by the data). So the population
distribution of an athlete parameter is fully described by (loc, scale) draws, which is what
`sample_athletes` draws from.

Units and scaling (fixed here, used everywhere):

- daily load `w` = load_trimp / 100 (hundreds of Edwards TRIMP per day);
- high-intensity load `u` = (z4_min + z5_min + strength_min) / 60 (hours per day);
- the Banister states enter the observation equations normalised so that a constant daily
  load w gives the state w: the morning state M_d (loads of days < d, `banister.morning_states`)
  is scaled by (1 − e)/e with e = exp(−1/τ) (`state_normaliser`), which makes it yesterday
  evening's EWMA, X̃_d = (1 − e)·Σ_{k≥1} e^{k−1}·w_{d−k} (the TrainingPeaks CTL/ATL of day d−1).
  Its lag weights sum to 1, so a gain is "change per 100 TRIMP/day of sustained load" and,
  for a short τ, also "change after 100 TRIMP yesterday", whatever τ is. (Until version 2 of
  the saved model the scale was (1 − e), which gives e·w at steady state: for τ_fat ≈ 0.5 d the
  gain then had to grow as 1/e ≈ 7× to keep the same effect, which coupled (τ_fat, a_fat,
  b_fat) into a curved ridge and put the gains' priors on the wrong quantity; see
  docs/world_model.md.)

Observation equations (morning of day d, states from `banister.morning_states`):

    ln HRV_d = mu_hrv + a_fit·G̃_d − a_fat·H̃_d − a_fast·F̃_d + ε_hrv,d
    RHR_d    = mu_rhr − b_fit·G̃_d + b_fat·H̃_d + b_fast·F̃_d + ε_rhr,d
    logit(recovery_d / 100) = mu_rec + g_hrv·(m_hrv,d − mu_hrv) − g_rhr·(m_rhr,d − mu_rhr) + ε_rec,d

where m_hrv,d and m_rhr,d are the predicted means of ln HRV and RHR (recovery is a learned link
of predicted HRV and RHR relative to the athlete's baseline, as WHOOP's own score is), and each
ε has marginal SD sigma (athlete) and is the sum of a slow and a fast stationary AR(1) process
(population share w of the variance and coefficient φ_s for the slow one, coefficient phi for
the fast one; w = 0 is one AR(1), `SLOW_SHARE_PARAMS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

LOAD_SCALE_TRIMP = 100.0
"""`w = load_trimp / LOAD_SCALE_TRIMP`."""
HI_LOAD_SCALE_MIN = 60.0
"""`u = (z4_min + z5_min + strength_min) / HI_LOAD_SCALE_MIN`."""
TAU_FAST_DAYS = 2.0
"""Time constant of the fast fatigue channel (high-intensity/strength load). Parasympathetic
recovery takes ≥ 48 h after high-intensity sessions against ≤ 24 h after low-intensity ones
(Stanley, Peake & Buchheit 2013, Sports Med 43:1259). Fixed, not fitted: the data show no
effect of high-intensity hours beyond their TRIMP even pooled (docs/identifiability.md), so
they cannot say how long it lasts."""
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
    pooled: bool = False
    """One value shared by every athlete: no between-athlete deviate, the scale is fixed at 0
    (for a parameter whose differences between athletes the data do not identify; the fit then
    estimates only its population value, and `sample_athletes` draws it from that posterior)."""


ATHLETE_PARAMS: dict[str, ParamSpec] = {
    # Time constants (τ_fit = τ_fat + τ_gap, so τ_fit > τ_fat by construction). Both pooled:
    # one population value each, see the `pooled` field and docs/world_model.md.
    "tau_fat_days": ParamSpec(
        "days", "exp", float(np.log(0.5)), 0.4, 0.3, False,
        "cardiac parasympathetic activity recovers within 24 h of low-intensity, 24-48 h of "
        "threshold and ≥ 48 h of high-intensity sessions (Stanley, Peake & Buchheit 2013, "
        "Sports Med 43:1259): with a morning measurement 12-20 h after the session, a residual "
        "of ≤ 20 % of the effect after 24-48 h means τ ≈ 0.3-1.3 d (90 % prior interval "
        "0.26-0.97 d: most wearable users' sessions are low to moderate). Longer fitted "
        "Banister fatigue τ (4-15 d: Busso 2003, Med Sci Sports Exerc 35:1188) describe "
        "performance, not next-morning HRV", pooled=True),
    "tau_gap_days": ParamSpec(
        "days", "exp", float(np.log(10.0)), 0.7, 0.3, False,
        "fitted Banister fitness τ 20-60 d for performance (Clarke & Skiba 2013, Adv Physiol "
        "Educ 37:134; Busso 2003); the HRV 'fitness' trend follows weekly to monthly load "
        "(Plews et al. 2013, Sports Med 43:773; Chalencon et al. 2012, PLoS One 7:e52636), so "
        "the prior is wider and lower (90 % interval 3.2-32 d)", pooled=True),
    # ln HRV
    "mu_hrv": ParamSpec(
        "ln ms", "identity", float(np.log(55.0)), 0.5, 0.6, True,
        "nocturnal RMSSD of adults ~20-150 ms, between-person SD of ln RMSSD ~0.4-0.6 "
        "(Nunan et al. 2010, Pacing Clin Electrophysiol 33:1407); WHOOP and Fitbit differ"),
    "a_fit": ParamSpec(
        "ln ms per 100 TRIMP/d", "identity", 0.03, 0.05, 0.08, False,
        "aerobic training raises resting vagal activity over weeks (Plews et al. 2013; "
        "Buchheit 2014, Front Physiol 5:73)"),
    "a_fat": ParamSpec(
        "ln ms per 100 TRIMP/d", "identity", 0.05, 0.04, 0.04, False,
        "a session lowers next-morning ln RMSSD by a few to ~10 % (Stanley et al. 2013; "
        "Plews et al. 2013); an hour of moderate training is ~100-150 TRIMP. One location "
        "for all sources: per source (tried 2026-12-06, docs/world_model.md) WHOOP's rose to "
        "0.09 and overshot the next-morning response of WHOOP athletes outside the fit"),
    "a_fast": ParamSpec(
        "ln ms per h/d of Z4-5+strength", "identity", 0.02, 0.04, 0.03, False,
        "HRV recovery is slower after high-intensity than after low-intensity sessions "
        "(Stanley et al. 2013; Seiler et al. 2007, Med Sci Sports Exerc 39:1366), beyond what "
        "their TRIMP already carries; most sources have no zone minutes", pooled=True),
    "sigma_hrv": ParamSpec(
        "ln ms", "exp", float(np.log(0.2)), 0.3, 0.4, True,
        "day-to-day SD of ln RMSSD: ~0.1-0.15 in standardised morning recordings of athletes "
        "(Plews et al. 2012, Eur J Appl Physiol 112:3729; Buchheit 2014), larger in "
        "free-living wearable data (sleep, alcohol, illness, device); 90 % interval 0.12-0.33"),
    # RHR
    "mu_rhr": ParamSpec(
        "bpm", "identity", 58.0, 8.0, 8.0, True,
        "resting HR of active adults ~45-75 bpm"),
    "b_fit": ParamSpec(
        "bpm per 100 TRIMP/d", "identity", 0.5, 1.5, 1.0, False,
        "endurance training lowers resting HR by a few bpm over weeks (Buchheit 2014, Front "
        "Physiol 5:73), but with τ_fit of days rather than weeks the channel also carries "
        "accumulated fatigue, which raises it: a weak prior that allows either sign"),
    "b_fat": ParamSpec(
        "bpm per 100 TRIMP/d", "identity", 1.0, 1.0, 1.0, True,
        "a hard day and overreaching raise morning HR by ~1-5 bpm (Buchheit 2014). Per "
        "source: each source's load is converted to TRIMP from something else (WHOOP strain, "
        "TSS, Fitbit zone minutes: data/load.py) and a Fitbit's resting HR is a whole-day "
        "estimate, not a night's, so the response per TRIMP differs by source (medians of the "
        "measured hard_day_effect of the athletes outside the fit, docs/results/"
        "model_check_2026-12-06_noise_by_source.json: +2.1 bpm WHOOP, +1.8 intervals.icu, "
        "+0.3 LifeSnaps, +0.5 PMData)"),
    "b_fast": ParamSpec(
        "bpm per h/d of Z4-5+strength", "identity", 0.5, 0.7, 0.5, False,
        "as a_fast", pooled=True),
    "sigma_rhr": ParamSpec(
        "bpm", "exp", float(np.log(3.0)), 0.4, 0.3, True,
        "day-to-day SD of morning resting HR ~2-4 bpm in standardised recordings (Buchheit "
        "2014), more with consumer devices at night; 90 % interval 1.6-5.8 bpm"),
    # recovery (logit scale)
    "mu_rec": ParamSpec(
        "logit", "identity", 0.5, 0.5, 0.5, True,
        "WHOOP recovery averages ~55-65 % in the shipped exports"),
    "g_hrv": ParamSpec(
        "logit per ln ms", "identity", 3.0, 1.5, 1.0, False,
        "WHOOP recovery is driven mainly by HRV relative to the personal baseline",
        pooled=True),
    "g_rhr": ParamSpec(
        "logit per bpm", "identity", 0.1, 0.05, 0.05, False,
        "and by resting HR relative to the baseline", pooled=True),
    "sigma_rec": ParamSpec(
        "logit", "exp", float(np.log(0.7)), 0.4, 0.3, True,
        "residual day-to-day variation of recovery beyond HRV and RHR (sleep, respiration)"),
}
"""Per-athlete parameters, in a fixed order (the order of the parameter axis everywhere)."""

AR_PARAMS: tuple[str, ...] = ("phi_hrv", "phi_rhr", "phi_rec")
"""Population AR(1) coefficients of the three observation noises' fast component, prior
Beta(2, 2) (with no slow component, the whole noise's coefficient)."""

SLOW_SHARE_PARAMS: tuple[str, ...] = ("slow_hrv", "slow_rhr", "slow_rec")
"""Population share w of each observation noise's marginal variance σ² in its slow component
(the athlete's baseline wandering: season, sleep, illness, device fit). The noise is the sum of
two independent stationary AR(1) processes, slow (variance wσ², coefficient φ_s) and fast
(variance (1 − w)σ², coefficient φ, `AR_PARAMS`); w = 0 is one AR(1)."""

PHI_SLOW_PARAMS: tuple[str, ...] = ("phi_slow_hrv", "phi_slow_rhr", "phi_slow_rec")
"""Population AR(1) coefficients φ_s of the slow components."""

COUPLING_PARAMS: tuple[str, ...] = ("rho_hrv_rhr", "rho_hrv_rec", "rho_rhr_rec")
"""Correlations of the three signals' noise innovations on the same day (ln HRV with RHR, ln
HRV with recovery, RHR with recovery; the same for the slow and the fast components' innovations,
each component still its own AR(1) with its own variance): the morning's vagal state moves ln
HRV and resting HR in opposite directions, and a recovery score is computed from the morning's
HRV and resting HR. Each target's own noise, and so its likelihood, is unchanged by them; they
are estimated after the fit from the fitted noise's one-step innovations
(`model.coupling`)."""

WEEKDAY_PARAMS: dict[str, tuple[str, ...]] = {
    target: tuple(f"dow_{target}_{day}" for day in range(7)) for target in ("hrv", "rhr", "recovery")}
"""Each target's additive offset on each day of the week, Monday (0) … Sunday (6), in the
target's model units (ln ms, bpm, recovery logit), summing to 0 over the week: the weekly rhythm
of real mornings that the loads do not explain (weekend nights). The same for every athlete of
a source; estimated after the fit (`model.weekday`) and added by `observation.observation_means`
wherever the caller gives the calendar."""

WEEKDAY_NAMES: tuple[str, ...] = tuple(n for names in WEEKDAY_PARAMS.values() for n in names)

NOISE_PARAMS: tuple[str, ...] = (AR_PARAMS + SLOW_SHARE_PARAMS + PHI_SLOW_PARAMS
                                 + COUPLING_PARAMS + WEEKDAY_NAMES)
"""Every population parameter of the observation equations beyond the Banister mean (the
noise and the weekday offsets), carried with each athlete's parameters. A parameter set
without the slow ones (a model or cohort file written before they existed) has w = 0
(`NOISE_DEFAULTS`): one AR(1), as it was fitted; one without the couplings has independent
noises; one without the weekday offsets has none."""

NOISE_DEFAULTS: dict[str, float] = {**{n: 0.0 for n in SLOW_SHARE_PARAMS},
                                    **{n: 0.0 for n in PHI_SLOW_PARAMS},
                                    **{n: 0.0 for n in COUPLING_PARAMS},
                                    **{n: 0.0 for n in WEEKDAY_NAMES}}
"""Values of the slow-noise, coupling and weekday parameters where a file has none (one AR(1)
per signal, independent of the others, no weekly rhythm)."""

NOISE_POPULATION_KEYS: dict[str, tuple[str, ...]] = {
    "phi": AR_PARAMS, "slow_share": SLOW_SHARE_PARAMS, "phi_slow": PHI_SLOW_PARAMS}
"""The fit's population draws of the noise (`bayes.population_draws`: (n_draws, 3) arrays in
hrv, rhr, recovery order, the slow ones only in a fit that has them) → parameter names."""


def with_noise_defaults(p: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter dict `p` with the slow-noise, coupling and weekday parameters it lacks
    set to `NOISE_DEFAULTS` (w = 0, independent signals, no weekly rhythm: how a model or
    cohort file written before they existed behaves), shaped like its `phi_hrv`."""
    out = dict(p)
    shape = np.shape(p[AR_PARAMS[0]])
    for name, value in NOISE_DEFAULTS.items():
        if name not in out:
            out[name] = np.full(shape, value)
    return out

PARAM_NAMES: tuple[str, ...] = tuple(ATHLETE_PARAMS)


def to_constrained(name: str, raw: np.ndarray) -> np.ndarray:
    """Apply a parameter's transform to unconstrained values."""
    spec = ATHLETE_PARAMS[name]
    return np.exp(raw) if spec.transform == "exp" else np.asarray(raw, dtype=float)


def to_unconstrained(name: str, value: np.ndarray) -> np.ndarray:
    """Inverse of `to_constrained`."""
    spec = ATHLETE_PARAMS[name]
    return np.log(value) if spec.transform == "exp" else np.asarray(value, dtype=float)


def state_normaliser(decay: np.ndarray) -> np.ndarray:
    """(1 − e)/e for one-day decay factors e = exp(−1/τ): multiplies a morning Banister state so
    that a constant daily load w maps to w (see the module docstring). Works on numpy arrays,
    torch tensors and pytensor variables (plain arithmetic)."""
    return (1.0 - decay) / decay


def tau_fit_days(tau_fat: np.ndarray, tau_gap: np.ndarray) -> np.ndarray:
    """Fitness time constant: always longer than the fatigue one."""
    return np.asarray(tau_fat) + np.asarray(tau_gap)
