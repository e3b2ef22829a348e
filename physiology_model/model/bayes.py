"""The hierarchical Bayesian Banister model of HRV, RHR and recovery (DESIGN §5), in PyMC.

Spec, build and sample are separate (STYLE.md): `PriorConfig` holds the priors (defaults from
`params.ATHLETE_PARAMS`), `SamplerConfig` the sampler; `build_model(arrays, priors)` returns a
`pm.Model` and samples nothing; `sample(model, config)` runs the sampler and returns an
`az.InferenceData` whose attrs carry both configs, the sampler actually used, timings, library
versions and the convergence diagnostics (`diagnose`), which are also printed and, when they fail,
raised as a warning.

The model (notation and units of `params.py`; A athletes, T days, S sources, P parameters)
-------------------------------------------------------------------------------------------
Population → athlete, non-centred: for each parameter p and athlete a,

    θ[a, p] = transform_p(loc[source_a, p] + scale[p] · z[a, p]),   z ~ N(0, 1)
    loc[s, p] ~ N(loc_mean_p, loc_sd_p)   (one value shared by all sources unless by_source)
    scale[p] ~ HalfNormal(scale_sd_p)

except for a `pooled` parameter (`params.ParamSpec.pooled`: the time constants, the fast-channel
and recovery-link gains), which has one population value and scale 0: θ[a, p] = loc[p].

States: fitness G and fatigue H by `banister.pytensor_states` (one scan over days, batched over
athletes) with τ_fit = τ_fat + τ_gap (so τ_fit > τ_fat by construction), the fast channel F with
the fixed `params.TAU_FAST_DAYS` (precomputed with `banister.morning_states`, since no parameter
enters it), each started at the steady state of the athlete's mean load and normalised by
`params.state_normaliser`, X̃ = (1 − e)/e·X with e = e^{−1/τ} (yesterday evening's EWMA of the
load: X̃ = w at a constant load w). Observation means (morning of day d):

    m_hrv = mu_hrv + a_fit·G̃ − a_fat·H̃ − a_fast·F̃
    m_rhr = mu_rhr − b_fit·G̃ + b_fat·H̃ + b_fast·F̃
    m_rec = mu_rec + g_hrv·(m_hrv − mu_hrv) − g_rhr·(m_rhr − mu_rhr)

with recovery on the logit scale of clip(recovery, `params.RECOVERY_CLIP_PCT`) / 100.

Noise: each signal's residual r = y − m is a stationary AR(1) with coefficient φ (population,
Beta(2, 2)) and marginal SD σ (per athlete). Missing days are left out, not imputed: only
observed entries enter the likelihood, and a residual k days after the previous observed one of
the same athlete has the exact k-step conditional

    r_t | r_{t−k} ~ N(φ^k · r_{t−k}, σ² (1 − φ^{2k})),     the first one ~ N(0, σ²).

Performance and injury are not part of this fit (no data for them here).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from physiology_model.dynamics import banister, params
from physiology_model.dynamics.observation import TARGETS, component_sds, noise_step
from physiology_model.jsonio import package_versions
from physiology_model.model.arrays import REFERENCE_TAUS_DAYS, AthleteArrays, stack_series

POPULATION_LOC = "loc"
POPULATION_SCALE = "scale"
VARYING_SCALE = "scale_varying"
ATHLETE_RAW = "athlete_raw"
ATHLETE_Z = "z"

SAMPLERS: tuple[str, ...] = ("nutpie", "pymc", "advi", "pathfinder")
"""`nutpie` and `pymc` are NUTS (the answer); `advi` and `pathfinder` are fast previews only
(mean-field ADVI was biased by 20-50 % on gains and τ in DESIGN §5's measurements)."""

PREVIEW_SAMPLERS: tuple[str, ...] = ("advi", "pathfinder")

TAILS: tuple[str, ...] = ("normal", "student")
"""The innovation distributions `PriorConfig.tails` can name."""


def _default_params() -> Mapping[str, params.ParamSpec]:
    return MappingProxyType(dict(params.ATHLETE_PARAMS))


@dataclass(frozen=True)
class PriorConfig:
    """Priors of the hierarchical model. Defaults are `params.ATHLETE_PARAMS` (cited there)."""

    params: Mapping[str, params.ParamSpec] = field(default_factory=_default_params)
    """One `ParamSpec` per name of `params.PARAM_NAMES` (population loc/scale priors, transform,
    whether the location differs per source)."""
    ar_alpha: float = 2.0
    """Beta(α, β) prior of the AR(1) coefficients φ_hrv, φ_rhr, φ_rec: α."""
    ar_beta: float = 2.0
    """... and β. Beta(2, 2) keeps φ away from 0 and 1 without favouring either."""
    slow_noise: bool = False
    """Each target's noise is the sum of a slow and a fast AR(1) (`params.SLOW_SHARE_PARAMS`)
    in the likelihood: the athlete's baseline wanders over weeks (season, sleep debt, illness,
    device fit) on top of the day-to-day noise. False (the default while this likelihood's fit
    is several times slower, docs/world_model.md): one AR(1), the share w fixed at 0, and
    `fit_world_model` chooses the slow component after the fit (`drift.select_drift`)."""
    slow_alpha: float = 1.5
    """Beta(α, β) prior of the slow share w of each target's noise variance: α ..."""
    slow_beta: float = 2.0
    """... and β (mean 0.43, 90 % interval 0.07-0.85: weakly informative)."""
    tau_slow_min_days: float = 7.0
    """The slow component's time constant τ_s = −1/ln φ_s is at least this long, which keeps it
    apart from the fast component (whose φ has a Beta(2, 2) prior, τ under a week for φ < 0.87)
    so that the two cannot swap labels."""
    tau_slow_extra_days: float = 20.0
    """Prior median of τ_s − `tau_slow_min_days` (lognormal): the drift studies of
    docs/world_model.md chose φ_s 0.97-0.99 (τ_s 33-100 d) on the training athletes; an
    athlete's HRV baseline follows weekly to monthly load and season (Plews et al. 2013, Sports
    Med 43:773)."""
    tau_slow_sd: float = 0.8
    """Log-scale SD of that lognormal (τ_s 90 % interval ≈ 12-80 d)."""
    noise_by_source: bool = True
    """Each target's AR(1) coefficient φ is one per data source (independent Beta(`ar_alpha`,
    `ar_beta`) priors), not one for all: how long a day's deviation persists is partly the
    device's own processing. Measured on 63 athletes outside the 2026-12-06 fit
    (docs/results/model_check_2026-12-06.json): the lag-1 autocorrelation of resting HR is
    0.80-0.83 in Fitbit exports (LifeSnaps, PMData), whose resting HR is a daily estimate from
    the whole day's heart rate, against 0.21-0.27 for WHOOP, Garmin, Oura and intervals.icu's
    nightly values; one φ for all gave 0.40-0.53 to every device. An athlete of a device the
    fit never saw is personalised over a mixture of the known ones (`personalize`), whose
    weights then favour the devices whose φ fits the athlete's days. False is the one φ of
    models fitted before."""
    tails: str = "normal"
    """The one-step innovations' distribution: `normal`, or `student` (a Student-t with a
    degrees-of-freedom parameter per target, prior Gamma(2, 0.1), Juárez & Steel 2010, J Bus
    Econ Stat 28:52), for the occasional night far from the athlete's usual range; chosen by
    leave-athletes-out ELPD (benchmarks/noise_elpd.py)."""
    scale_prior: str = "rayleigh"
    """Prior of the between-athlete SD s of each baseline level (mu_hrv, mu_rhr, mu_rec) and
    each load gain that varies between athletes (a_fit, a_fat, b_fit, b_fat): `rayleigh` (the
    HalfNormal(`scale_sd`) density times s, i.e. a Rayleigh with scale `scale_sd`: zero
    density at s = 0, mode at `scale_sd`) or `halfnormal`. People's baselines differ (ln HRV
    by about ±0.5, resting HR by about ±8 bpm between athletes: the posterior scales in
    docs/world_model.md) and so does their response to the same training (Mann, Lamberts &
    Lambert 2014, Sports Med 44:1113), so s near 0 is not a value the data could want; but a
    scale that few athletes identify (recovery is measured in 12 of the 58 athletes of the
    2026-12 fit data; b_fit's posterior scale spans 0.12-1.9) reaches s ≈ 0 now and then, and
    with athletes whose data pin their own value down (sampled centred, `_centring_plan`)
    that is the neck of a funnel (measured: with the HalfNormal one chain sat at scale(mu_rec)
    ≈ 0.001, 1,500 of 1,500 draws divergent; with it on the levels only, the divergences of
    three whole fits sat at the lowest 0-3 % of scale(b_fit)'s draws). A boundary-avoiding
    prior for a hierarchical SD: Chung et al. 2013, Psychometrika 78:685. The noise SDs' scales
    keep the HalfNormal (sigma_rec's is 0.10 against a prior SD of 0.3: the data want it
    small). `halfnormal` is the prior of models fitted before (`from_dict` reads a record
    without the field so)."""

    def __post_init__(self) -> None:
        if tuple(self.params) != params.PARAM_NAMES:
            raise ValueError(f"PriorConfig.params must hold exactly params.PARAM_NAMES in order "
                             f"{params.PARAM_NAMES}, got {tuple(self.params)}")
        for name, spec in self.params.items():
            if spec.transform not in ("identity", "exp"):
                raise ValueError(f"{name}: unknown transform {spec.transform!r}")
            if spec.loc_sd <= 0 or spec.scale_sd <= 0:
                raise ValueError(f"{name}: loc_sd and scale_sd must be positive")
        if min(self.ar_alpha, self.ar_beta, self.slow_alpha, self.slow_beta) <= 0:
            raise ValueError("ar_alpha, ar_beta, slow_alpha and slow_beta must be positive")
        if self.tau_slow_min_days <= 0 or self.tau_slow_extra_days <= 0 or self.tau_slow_sd <= 0:
            raise ValueError("tau_slow_min_days, tau_slow_extra_days and tau_slow_sd must be "
                             "positive")
        if self.tails not in TAILS:
            raise ValueError(f"tails must be one of {TAILS}, got {self.tails!r}")
        if self.scale_prior not in ("rayleigh", "halfnormal"):
            raise ValueError(f"scale_prior must be 'rayleigh' or 'halfnormal', got "
                             f"{self.scale_prior!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def override(self, name: str, **changes: Any) -> PriorConfig:
        """A copy with some fields of one parameter's `ParamSpec` changed, e.g.
        `PriorConfig().override("tau_fat_days", loc_sd=0.2)`."""
        if name not in self.params:
            raise KeyError(f"unknown parameter {name!r}; expected one of {params.PARAM_NAMES}")
        specs = dict(self.params)
        specs[name] = replace(specs[name], **changes)
        return replace(self, params=specs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in `idata.attrs`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["params"] = {k: asdict(v) for k, v in self.params.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriorConfig:
        """Inverse of `to_dict`. A record written before the slow noise existed has one AR(1)."""
        specs = {k: params.ParamSpec(**v) for k, v in data["params"].items()}
        rest = {k: v for k, v in data.items() if k != "params"}
        rest.setdefault("slow_noise", False)
        rest.setdefault("scale_prior", "halfnormal")
        rest.setdefault("noise_by_source", False)
        return cls(params=specs, **rest)


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample the posterior."""

    sampler: str = "nutpie"
    """One of `SAMPLERS`. `nutpie` (default; falls back to `pymc` NUTS with a warning when
    nutpie is missing or fails), `pymc` (PyMC's NUTS), `advi` / `pathfinder` (fast previews,
    never the answer: labelled so in the result)."""
    draws: int = 500
    """Posterior draws per chain (NUTS), or in all (ADVI / pathfinder)."""
    tune: int = 500
    """Warm-up iterations per chain (NUTS); ADVI iterations are `advi_iterations`."""
    chains: int = 4
    """Independent chains (NUTS). R-hat needs at least 2; 4 is the usual standard."""
    cores: int | None = None
    """Processes/threads for the chains (None = min(chains, CPU count))."""
    target_accept: float = 0.9
    """NUTS target acceptance rate (higher = smaller steps, fewer divergences)."""
    seed: int = 0
    """Root seed of the sampler."""
    advi_iterations: int = 20_000
    """Optimisation steps of ADVI."""
    progress_bar: bool = False
    """Show the sampler's progress bar."""
    low_rank_mass_matrix: bool = True
    """nutpie only: adapt a diagonal plus low-rank mass matrix (nutpie's
    `low_rank_modified_mass_matrix`; the `pymc` sampler ignores it), which follows the
    correlations a diagonal one cannot: the pooled τ_gap moves every athlete's fitness state,
    so its draws are correlated with several athletes' a_fit (up to 0.78) and with a_fit's
    population scale (0.67). Measured on the 58 athletes of the shipped data
    (benchmarks/sampler_probe.py, one chain, 300 + 300): lag-1 autocorrelation of τ_gap 0.45
    against 0.73 with the diagonal one; the whole fit (2 chains × (1,000 + 1,500)) passed its
    checks with it (min bulk ESS 557, 0 divergences) where the diagonal one left ESS 311
    (docs/world_model.md)."""
    nutpie_backend: str = "jax"
    """nutpie's compiler: `jax` (default) or `numba`. numba compiles for minutes (its type
    inference of nutpie's C callbacks), jax for seconds at about the same cost per gradient,
    so jax is faster for any fit shorter than about an hour (measured: docs/world_model.md,
    "Speed"). Without the jax package, `jax` falls back to `numba` (recorded in
    the fit's attrs)."""

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.draws < 1 or self.tune < 0 or self.chains < 1:
            raise ValueError("draws ≥ 1, tune ≥ 0 and chains ≥ 1 are required")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError("target_accept must lie in (0, 1)")
        if self.nutpie_backend not in ("numba", "jax"):
            raise ValueError(f"nutpie_backend must be 'numba' or 'jax', got {self.nutpie_backend!r}")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence checks of one fit (ArviZ; Vehtari et al. 2021, Bayesian Anal 16:667)."""

    max_r_hat: float
    """Largest rank-normalised split R-hat over every posterior quantity."""
    min_ess_bulk: float
    """Smallest bulk effective sample size (all chains together)."""
    min_ess_tail: float
    """Smallest tail effective sample size."""
    divergences: int
    """Divergent transitions after warm-up (all chains)."""
    n_draws: int
    """Posterior draws in all (chains × draws)."""
    sampler: str
    """The sampler that produced the draws."""
    worst: str = ""
    """The quantity with the largest R-hat (for the message)."""
    max_r_hat_allowed: float = 1.01
    min_ess_allowed: float = 400.0

    @property
    def is_mcmc(self) -> bool:
        return self.sampler not in PREVIEW_SAMPLERS

    @property
    def ok(self) -> bool:
        """R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no divergences, and NUTS (a preview never
        passes)."""
        return (self.is_mcmc and self.max_r_hat <= self.max_r_hat_allowed
                and self.min_ess_bulk >= self.min_ess_allowed
                and self.min_ess_tail >= self.min_ess_allowed and self.divergences == 0)

    def describe(self) -> str:
        """One paragraph saying whether the fit passed, and why not."""
        if not self.is_mcmc:
            return (f"FIT IS A PREVIEW ({self.sampler}): {self.n_draws} draws from an "
                    f"approximation, not MCMC; no convergence checks apply and the posterior may "
                    f"be biased. Use sampler='nutpie' or 'pymc' for the answer.")
        problems = []
        if self.max_r_hat > self.max_r_hat_allowed:
            problems.append(f"max R-hat {self.max_r_hat:.3f} > {self.max_r_hat_allowed} "
                            f"(worst: {self.worst})")
        if self.min_ess_bulk < self.min_ess_allowed:
            problems.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {self.min_ess_allowed:.0f}")
        if self.min_ess_tail < self.min_ess_allowed:
            problems.append(f"min tail ESS {self.min_ess_tail:.0f} < {self.min_ess_allowed:.0f}")
        if self.divergences:
            problems.append(f"{self.divergences} divergent transitions")
        head = "FIT FAILED ITS CONVERGENCE CHECKS: " + "; ".join(problems) if problems else \
            "fit passed its convergence checks"
        return (f"{head} [{self.sampler}, {self.n_draws} draws: max R-hat {self.max_r_hat:.3f}, "
                f"min ESS bulk {self.min_ess_bulk:.0f} / tail {self.min_ess_tail:.0f}, "
                f"{self.divergences} divergences]")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# ----------------------------------------------------------------------------------------------
# Build


@dataclass(frozen=True)
class _Observations:
    """The observed entries of one target, flattened, with the AR(1) links between them."""

    athlete: np.ndarray
    """(N,) athlete index of each observation."""
    flat: np.ndarray
    """(N,) index into the flattened (A·T) grid."""
    value: np.ndarray
    """(N,) observed value on the model's scale (ln ms, bpm, logit)."""
    previous: np.ndarray
    """(N,) position (in these arrays) of the same athlete's previous observation; 0 for a first
    observation (masked by `gap` = 0)."""
    gap: np.ndarray
    """(N,) days since that previous observation (≥ 1), or 0 for an athlete's first one."""


def observed_values(arrays: AthleteArrays, target: str) -> np.ndarray:
    """A target on the model's scale, (A, T), NaN = missing: ln HRV and RHR as stored, recovery
    as logit(clip(recovery, `params.RECOVERY_CLIP_PCT`) / 100)."""
    values = arrays.target(target)
    if target == "recovery":
        lo, hi = params.RECOVERY_CLIP_PCT
        p = np.clip(values, lo, hi) / 100.0
        values = np.log(p) - np.log1p(-p)
    return np.where(arrays.valid, values, np.nan)


def gather_observations(arrays: AthleteArrays, target: str) -> _Observations:
    """Flatten a target's observed entries (athlete-major, then day) and link each one to the
    same athlete's previous observation (see the AR(1) likelihood in the module docstring)."""
    values = observed_values(arrays, target)
    athlete, day = np.nonzero(np.isfinite(values))  # row-major: sorted by athlete, then day
    n = len(athlete)
    first = np.ones(n, dtype=bool)
    first[1:] = athlete[1:] != athlete[:-1]
    previous = np.where(first, 0, np.arange(n) - 1)
    gap = np.where(first, 0, day - np.concatenate([[0], day[:-1]]))
    return _Observations(
        athlete=athlete, flat=athlete * arrays.n_days + day, value=values[athlete, day],
        previous=previous, gap=gap,
    )


def fast_fatigue_ewma(arrays: AthleteArrays) -> np.ndarray:
    """The normalised fast-fatigue state F̃ (A, T) for τ = `params.TAU_FAST_DAYS`, started
    at the steady state of each athlete's mean high-intensity load. No fitted parameter enters
    it, so the fit treats it as data."""
    # The fitness/fatigue channels computed alongside are unused here; arrays.initial_state's
    # fast channel is the steady state at the mean high-intensity load for TAU_FAST_DAYS.
    ref = REFERENCE_TAUS_DAYS
    decays = banister.decay_factors(ref["tau_fit"], ref["tau_fat"], params.TAU_FAST_DAYS)
    states = banister.morning_states(arrays.load, arrays.hi_load, decays, arrays.initial_state)
    return (params.state_normaliser(decays[banister.FAST_FATIGUE])
            * states[..., banister.FAST_FATIGUE])


def _param_layout(priors: PriorConfig) -> tuple[list[str], list[str]]:
    """Parameter names without and with a per-source location."""
    shared = [n for n, s in priors.params.items() if not s.by_source]
    by_source = [n for n, s in priors.params.items() if s.by_source]
    return shared, by_source


LEVEL_TARGETS: dict[str, str] = {"mu_hrv": "hrv", "mu_rhr": "rhr", "mu_rec": "recovery"}
"""The baseline (level) parameter of each target."""
SIGMA_TARGETS: dict[str, str] = {"sigma_hrv": "hrv", "sigma_rhr": "rhr", "sigma_rec": "recovery"}
"""The noise-SD parameter of each target."""


LOADING_TERMS: dict[str, tuple[str, int, float]] = {
    "a_fit": ("hrv", banister.FITNESS, +1.0), "a_fat": ("hrv", banister.FATIGUE, -1.0),
    "a_fast": ("hrv", banister.FAST_FATIGUE, -1.0), "b_fit": ("rhr", banister.FITNESS, -1.0),
    "b_fat": ("rhr", banister.FATIGUE, +1.0), "b_fast": ("rhr", banister.FAST_FATIGUE, +1.0),
}
"""Each load gain of ln HRV / RHR: (target, state channel, sign in the observation equation)."""

RAYLEIGH_SCALES: tuple[str, ...] = (*LEVEL_TARGETS, *LOADING_TERMS)
"""The parameters whose between-athlete SD gets `PriorConfig.scale_prior` (when not pooled)."""


def reference_states(arrays: AthleteArrays) -> np.ndarray:
    """The normalised morning states (A, T, 3: fitness, fatigue, fast fatigue) at the
    prior-median time constants `REFERENCE_TAUS_DAYS` (numpy; for the centring plan)."""
    ref = REFERENCE_TAUS_DAYS
    decays = banister.decay_factors(ref["tau_fit"], ref["tau_fat"], ref["tau_fast"])
    states = banister.morning_states(arrays.load, arrays.hi_load, decays, arrays.initial_state)
    return params.state_normaliser(decays[:3]) * states[..., :3]


def _loading_estimates(arrays: AthleteArrays, observations: dict[str, Any], names: list[str],
                       min_obs: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-athlete least-squares gains and their standard errors, {name: (estimate (A,),
    SE (A,))}, from y = c + Σ sign·gain·state at the reference time constants; NaN where an
    athlete has fewer than `min_obs` observations or a state without variation."""
    states = reference_states(arrays)
    out = {n: (np.full(arrays.n_athletes, np.nan), np.full(arrays.n_athletes, np.nan))
           for n in names if n in LOADING_TERMS}
    for target in ("hrv", "rhr"):
        gains = [n for n in out if LOADING_TERMS[n][0] == target]
        obs = observations[target]
        for a in range(arrays.n_athletes):
            rows = obs.athlete == a
            if rows.sum() < max(min_obs, len(gains) + 3):
                continue
            day = obs.flat[rows] - a * arrays.n_days
            x = np.column_stack([np.ones(len(day))] + [
                LOADING_TERMS[n][2] * states[a, day, LOADING_TERMS[n][1]] for n in gains])
            spread = x[:, 1:].std(axis=0)
            keep = np.concatenate([[True], spread > 1e-6])
            xk = x[:, keep]
            gram = xk.T @ xk
            if np.linalg.cond(gram) > 1e10:
                continue
            beta = np.linalg.solve(gram, xk.T @ obs.value[rows])
            resid = obs.value[rows] - xk @ beta
            sigma2 = resid @ resid / max(len(day) - xk.shape[1], 1)
            se = np.sqrt(np.diag(np.linalg.inv(gram)) * sigma2)
            for j, (n, kept) in enumerate(zip(gains, keep[1:])):
                if kept:
                    k = int(keep[1:j + 2].sum())  # column of gain j in xk
                    out[n][0][a], out[n][1][a] = beta[k], se[k]
    return out


def _observed_day_weights(arrays: AthleteArrays, obs: _Observations) -> np.ndarray:
    """(A, T) weights 1/n_a on athlete a's observed days of a target (n_a of them), else 0: a
    masked mean over the observed days as one dense product."""
    weights = np.zeros((arrays.n_athletes, arrays.n_days))
    counts = np.bincount(obs.athlete, minlength=arrays.n_athletes)
    weights.flat[obs.flat] = 1.0 / counts[obs.athlete]
    return weights


HALFNORMAL_MEDIAN = 0.6745
"""The median of a HalfNormal(1): a gain is centred where its standard error is below the
prior median of its population scale (`_centring_plan`)."""


def _centring_plan(arrays: AthleteArrays, names: list[str], observations: dict[str, Any],
                   centre_min_obs: int | None,
                   specs: Mapping[str, params.ParamSpec] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which (athlete, parameter) entries are sampled centred, and their offset and step.

    Levels and noise SDs of an athlete with at least `centre_min_obs` observations of the
    target are pinned down by the data; non-centred, they would move in lock-step with their
    population location (the funnel's opposite: Betancourt & Girolami 2015, "Hamiltonian Monte
    Carlo for hierarchical models"), so they are sampled centred around a data-based anchor
    (the athlete's observed mean / log SD) instead. A load gain is centred (around its
    per-athlete least-squares estimate, `_loading_estimates`) where its standard error is below
    the prior median of the between-athlete scale (`HALFNORMAL_MEDIAN` × `scale_sd` of
    `specs`), i.e. where the athlete's own data say more than the population would (with the
    HalfNormal's SD itself as the bar, 11 athletes' b_fit with standard errors of 0.41-0.90
    were centred in the 58-athlete fit while the posterior scale of b_fit reached down to 0.4,
    and the fit diverged where that scale was low); a non-centred gain that the data pin down
    makes a funnel in its population scale (measured: one chain stuck at scale(b_fat) ≈ 0.1,
    the other at 2.3). Every other entry is non-centred. Returns (centred (A, P) bool, anchor
    (A, P), step (P,)).
    """
    n_athletes = arrays.n_athletes
    centred = np.zeros((n_athletes, len(names)), dtype=bool)
    anchor = np.zeros((n_athletes, len(names)))
    step = np.ones(len(names))
    if centre_min_obs is None:
        return centred, anchor, step
    for p, name in enumerate(names):
        target = LEVEL_TARGETS.get(name) or SIGMA_TARGETS.get(name)
        if target is None:
            continue
        obs = observations[target]
        counts = np.bincount(obs.athlete, minlength=n_athletes)
        sums = np.bincount(obs.athlete, obs.value, minlength=n_athletes)
        squares = np.bincount(obs.athlete, obs.value**2, minlength=n_athletes)
        mean = sums / np.maximum(counts, 1)
        sd = np.sqrt(np.maximum(squares / np.maximum(counts, 1) - mean**2, 1e-12))
        centred[:, p] = counts >= max(centre_min_obs, 2)
        if name in LEVEL_TARGETS:
            anchor[:, p] = mean
            step[p] = float(np.median(sd)) / 4.0
        else:
            anchor[:, p] = np.log(np.maximum(sd, 1e-6))
            step[p] = 0.1
    if specs is not None:
        estimates = _loading_estimates(arrays, observations, names, max(centre_min_obs, 2))
        for name, (estimate, se) in estimates.items():
            p = names.index(name)
            identified = np.isfinite(se) & (se < HALFNORMAL_MEDIAN * specs[name].scale_sd)
            centred[:, p] = identified
            anchor[:, p] = np.where(identified, estimate, 0.0)
            if identified.any():
                step[p] = float(np.median(se[identified]))
    return centred, anchor, step


LOGLIK_PREFIX = "loglik_"
"""Deterministics `loglik_<target>` (athlete): each athlete's log-likelihood of a target, for
leave-athletes-out ELPD (`athlete_log_likelihood`); `sample` moves them into the
`log_likelihood` group, out of the posterior and its diagnostics."""


def padded_layout(obs: _Observations, n_athletes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A target's observations as (K, A) arrays for the Kalman filter's scan over each
    athlete's k-th observation: the position in `obs` (0 where padded), whether there is one,
    and the days since the athlete's previous one (0 for the first: a stationary start)."""
    counts = np.bincount(obs.athlete, minlength=n_athletes)
    n_steps = max(int(counts.max(initial=0)), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(obs.athlete)) - starts[obs.athlete]
    position = np.zeros((n_steps, n_athletes), dtype=np.int64)
    present = np.zeros((n_steps, n_athletes), dtype=bool)
    gap = np.zeros((n_steps, n_athletes))
    position[rank, obs.athlete] = np.arange(len(obs.athlete))
    present[rank, obs.athlete] = True
    gap[rank, obs.athlete] = obs.gap
    return position, present, gap


@dataclass(frozen=True)
class NoisePart:
    """One target's residuals and noise parameters (pytensor) for `noise_log_likelihoods`."""

    obs: _Observations
    residual: Any
    """(N,) observed value − Banister mean."""
    sigma: Any
    """(A,) marginal SDs."""
    phi: Any
    """(A,) each athlete's (fast) AR(1) coefficient."""
    share: Any
    """The slow share w; the number 0 for one AR(1)."""
    phi_slow: Any
    df: Any = None
    """Student-t degrees of freedom, None = Gaussian."""


def noise_log_likelihoods(parts: Mapping[str, NoisePart], n_athletes: int) -> dict[str, Any]:
    """Each target's per-athlete log-likelihood (A,) of its residuals under the two-component
    noise, as pytensor graphs.

    The residual is r = ℓ + a, ℓ a stationary AR(1) with variance w·σ² and coefficient φ_s, a
    one with (1 − w)·σ² and φ (σ per athlete; w, φ_s, φ per target). A Kalman filter over the
    athlete's observed days (a gap of k days moves the state by φ^k and adds the k-day
    variance; missing days are not imputed) gives the exact marginal likelihood as the
    product of the one-step innovation densities (Harvey 1989, *Forecasting, Structural Time
    Series Models and the Kalman Filter*, §3.4). With w = 0 each term is the AR(1) k-step
    conditional N(φ^k r_prev, σ²(1 − φ^{2k})) of the one-AR(1) model, computed so in
    closed form when every part's `share` is the number 0. Student-t innovations (`df`) keep
    the filter's Gaussian update (a robust-likelihood approximation). The filter runs as one
    JAX Op over every target and athlete at once (`kalman_op.py`; its cost against a pytensor
    scan: docs/world_model.md).
    """
    import pytensor.tensor as pt

    from physiology_model.model.kalman_op import KalmanLogLik

    if all(isinstance(p.share, (int, float)) and p.share == 0.0 for p in parts.values()):
        return {target: _ar1_log_likelihood(part, n_athletes) for target, part in parts.items()}
    layouts = {t: padded_layout(p.obs, n_athletes) for t, p in parts.items()}
    n_steps = max(position.shape[0] for position, _, _ in layouts.values())

    def pad(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.zeros((n_steps - a.shape[0],) + a.shape[1:], a.dtype)])

    present = np.concatenate([pad(layouts[t][1]) for t in parts], axis=1)
    gap = np.concatenate([pad(layouts[t][2]) for t in parts], axis=1)
    residual = pt.concatenate([
        pt.where(pad(layouts[t][1]), p.residual[pad(layouts[t][0])], 0.0)
        for t, p in parts.items()], axis=1)  # (K, targets · A)

    def per_athlete(value: Any) -> Any:
        return pt.ones(n_athletes) * value

    students = {p.df is not None for p in parts.values()}
    if len(students) > 1:
        raise ValueError("every target's innovations must be Gaussian, or every one Student-t")
    total = KalmanLogLik(present, gap, student=students.pop())(
        residual,
        pt.concatenate([p.sigma for p in parts.values()]),
        *(pt.concatenate([per_athlete(getattr(p, name)) for p in parts.values()])
          for name in ("phi", "share", "phi_slow")),
        pt.concatenate([per_athlete(0.0 if p.df is None else p.df) for p in parts.values()]))
    return {t: total[k * n_athletes:(k + 1) * n_athletes] for k, t in enumerate(parts)}


def _ar1_log_likelihood(part: NoisePart, n_athletes: int) -> Any:
    """One AR(1): each term N(φ^k r_prev, σ²(1 − φ^{2k})) in closed form, summed per athlete."""
    import pytensor.tensor as pt

    obs, df = part.obs, part.df
    linked = obs.gap > 0
    phi_k = pt.where(linked, part.phi[obs.athlete] ** np.maximum(obs.gap, 1).astype(float),
                     0.0)
    mean = phi_k * part.residual[obs.previous]
    sd = part.sigma[obs.athlete] * pt.sqrt(1.0 - phi_k ** 2)
    z = (part.residual - mean) / sd
    if df is None:
        terms = -0.5 * np.log(2.0 * np.pi) - pt.log(sd) - 0.5 * z ** 2
    else:
        terms = (pt.gammaln((df + 1.0) / 2.0) - pt.gammaln(df / 2.0)
                 - 0.5 * pt.log(df * np.pi) - pt.log(sd) - (df + 1.0) / 2.0 * pt.log1p(z ** 2 / df))
    return pt.inc_subtensor(pt.zeros(n_athletes)[obs.athlete], terms)


def build_model(arrays: AthleteArrays, priors: PriorConfig = PriorConfig(), *,
                centre_min_obs: int | None = 14, centre_min_athletes: int = 10) -> Any:
    """The hierarchical PyMC model of `arrays` (see the module docstring); nothing is sampled.

    Coords: `athlete` (user ids), `day` (0..T−1), `source`, `param` (`params.PARAM_NAMES`),
    `param_shared` / `param_by_source` (the parameters without/with a per-source location),
    `param_varying` (the parameters that are not pooled) and `obs_hrv` / `obs_rhr` /
    `obs_recovery` (observed entries). Free variables: `loc_shared` (param_shared),
    `loc_by_source` (source, param_by_source), `scale_varying` (param_varying), `athlete_raw`
    (athlete, param_varying), `phi_hrv`, `phi_rhr`, `phi_rec` (source, with
    `priors.noise_by_source`; scalars without). Deterministics: `loc` (source, param), `scale`
    (param; 0 for pooled parameters), `z` (athlete, param: the standardised deviate
    (θ_unconstrained − loc)/scale, 0 for pooled parameters) and one per parameter, named as in
    `params.PARAM_NAMES`, dims (athlete,), on the constrained scale. Likelihood:
    `hrv_obs`, `rhr_obs`, `recovery_obs` (observed) on the scales of `observed_values`.

    Parametrisation (same posterior, better geometry for NUTS): an entry of `athlete_raw` is the
    non-centred deviate z of the parameter, except where the athlete's own data pin the
    parameter down (`_centring_plan`; `centre_min_obs` None = all non-centred): the levels and
    noise SDs of an athlete with ≥ `centre_min_obs` observations of that target, and the load
    gains whose per-athlete least-squares standard error is below the prior between-athlete
    scale. A centred level is sampled as the athlete's mean of the target over its observed
    days, c = mu + mean(load effect), and mu = c − mean(load effect) is derived (the centring of
    DESIGN §5, which cut leapfrog steps ~3× there); the population prior N(loc, scale) is
    applied to the parameter itself (a shift, Jacobian 1), so the model is unchanged. With fewer
    than `centre_min_athletes` athletes the population SDs are too loosely identified for
    centred entries (they funnel: a 4-athlete fit had 64 divergences), so then every entry is
    non-centred.

    The graph uses one-dimensional gathers only and one masked mean per centred level: measured
    on the shipped fit (38 athletes × 365 days, pytensor C backend), a row gather of a matrix
    made the gradient ~3× slower. With pooled time constants, normalised states and centred
    gains (docs/world_model.md), 2 chains × (800 + 800) iterations reached max R-hat 1.013, min
    bulk ESS 215 and no divergences at ~21 leapfrog steps per draw (before: R-hat 1.48, ESS 4).
    """
    import pymc as pm
    import pytensor.tensor as pt

    shared, by_source = _param_layout(priors)
    specs = priors.params
    names = list(specs)
    varying = [n for n in names if not specs[n].pooled]
    pooled = np.array([specs[n].pooled for n in names])
    coords = {
        "athlete": list(arrays.user_ids),
        "day": np.arange(arrays.n_days),
        "source": list(arrays.sources),
        "param": names,
        "param_shared": shared,
        "param_by_source": by_source,
        "param_varying": varying,
    }
    observations = {t: gather_observations(arrays, t) for t in TARGETS}
    for target, obs in observations.items():
        coords[f"obs_{target}"] = np.arange(len(obs.value))
    if arrays.n_athletes < centre_min_athletes:
        centre_min_obs = None
    centred, anchor, step = _centring_plan(arrays, names, observations, centre_min_obs, specs)
    centred[:, pooled] = False  # a pooled parameter has no athlete entry to centre

    with pm.Model(coords=coords) as model:
        load = pm.Data("load", arrays.load, dims=("athlete", "day"))
        mean_load = pm.Data("mean_load", arrays.mean_load, dims="athlete")

        def vector(attr: str, subset: list[str]) -> np.ndarray:
            return np.array([getattr(specs[n], attr) for n in subset], dtype=float)

        loc_shared = pm.Normal("loc_shared", vector("loc_mean", shared),
                               vector("loc_sd", shared), dims="param_shared")
        loc_by_source = pm.Normal(
            "loc_by_source", vector("loc_mean", by_source), vector("loc_sd", by_source),
            dims=("source", "param_by_source"))
        # Pooled parameters have no athlete deviate: their scale is 0 and their raw column 0.
        vary = np.array([names.index(n) for n in varying], dtype=int)
        scale_varying = pm.HalfNormal(VARYING_SCALE, vector("scale_sd", varying),
                                      dims="param_varying")
        avoided = [varying.index(n) for n in RAYLEIGH_SCALES if n in varying]
        if priors.scale_prior == "rayleigh" and avoided:
            # HalfNormal(σ) density × s = Rayleigh(σ) for these scales (PriorConfig.scale_prior)
            pm.Potential("scale_rayleigh", pt.sum(pt.log(scale_varying[avoided])))
        scale = pm.Deterministic(POPULATION_SCALE, pt.set_subtensor(
            pt.zeros(len(names))[vary], scale_varying), dims="param")
        raw_varying = pm.Normal(ATHLETE_RAW, 0.0, 1.0, dims=("athlete", "param_varying"))
        raw = pt.set_subtensor(pt.zeros((arrays.n_athletes, len(names)))[:, vary], raw_varying)
        n_sources = len(arrays.sources)
        columns = []
        for name in names:
            if name in shared:
                columns.append(pt.repeat(loc_shared[shared.index(name)][None], n_sources))
            else:
                columns.append(loc_by_source[:, by_source.index(name)])
        loc = pm.Deterministic(POPULATION_LOC, pt.stack(columns, axis=1),
                               dims=("source", "param"))
        athlete_loc = loc[arrays.source_index]  # (A, P)
        # Unconstrained value of each entry; for centred levels this is the level c, not mu.
        sampled = pt.where(centred, anchor + step[None, :] * raw,
                           athlete_loc + scale[None, :] * raw)
        is_exp = np.array([specs[n].transform == "exp" for n in names])

        def to_constrained(unconstrained: Any) -> Any:
            # exp only where the transform says so (identity columns never pass through exp)
            return pt.where(is_exp[None, :], pt.exp(pt.where(is_exp[None, :], unconstrained, 0.0)),
                            unconstrained)

        held = to_constrained(sampled)  # (A, P): gains and τ's as sampled (levels still c)
        index = {name: p for p, name in enumerate(names)}
        tau_fat = held[:, index["tau_fat_days"]]
        tau_fit = tau_fat + held[:, index["tau_gap_days"]]
        e_fit, e_fat = pt.exp(-1.0 / tau_fit), pt.exp(-1.0 / tau_fat)
        # Steady morning state at the mean load: e·w̄/(1−e) (banister.steady_morning_state).
        initial = pt.stack([e_fit / (1.0 - e_fit) * mean_load,
                            e_fat / (1.0 - e_fat) * mean_load], axis=-1)
        states = banister.pytensor_states(load, tau_fit, tau_fat, initial=initial)
        # Normalised states (A, T, 3): fitness, fatigue, fast fatigue (params.state_normaliser).
        normalised = pt.stack([
            params.state_normaliser(e_fit)[:, None] * states[..., banister.FITNESS],
            params.state_normaliser(e_fat)[:, None] * states[..., banister.FATIGUE],
            pt.as_tensor_variable(fast_fatigue_ewma(arrays))], axis=-1)
        # Each target's load effect is Σ_c coef[a, c]·state_c: the coefficients per athlete (A, 3).
        column = {name: held[:, index[name]] for name in names}
        coefficients = {
            "hrv": pt.stack([column["a_fit"], -column["a_fat"], -column["a_fast"]], axis=1),
            "rhr": pt.stack([-column["b_fit"], column["b_fat"], column["b_fast"]], axis=1),
        }
        coefficients["recovery"] = (column["g_hrv"][:, None] * coefficients["hrv"]
                                    - column["g_rhr"][:, None] * coefficients["rhr"])
        flat_states = [normalised[..., c].flatten() for c in range(3)]

        def effect_at(target: str, obs: _Observations) -> Any:
            # One-dimensional gathers only: the gradient of a row gather of a matrix runs in
            # Python in pytensor's C backend (measured 5× slower per gradient).
            return sum(coefficients[target][:, c][obs.athlete] * flat_states[c][obs.flat]
                       for c in range(3))

        # The means are formed at the observed entries only, never on the full (A, T) grid.
        effects = {t: effect_at(t, obs) for t, obs in observations.items()}
        # Levels sampled centred are the mean of the target over the athlete's observed days:
        # mu = c − (mean load effect over those days), with the mean state from a masked mean.
        theta_raw = sampled
        for name, target in LEVEL_TARGETS.items():
            p = index[name]
            if not centred[:, p].any():
                continue
            weights = _observed_day_weights(arrays, observations[target])  # (A, T)
            mean_states = pt.sum(normalised * weights[..., None], axis=1)  # (A, 3)
            mean_effect = pt.sum(coefficients[target] * mean_states, axis=1)
            theta_raw = pt.set_subtensor(theta_raw[:, p], pt.where(
                centred[:, p], sampled[:, p] - mean_effect, sampled[:, p]))
        safe_scale = pt.where(pooled, 1.0, scale)
        standardised = pm.Deterministic(
            ATHLETE_Z, pt.where(pooled[None, :], 0.0, (theta_raw - athlete_loc) / safe_scale),
            dims=("athlete", "param"))
        if centred.any():
            # Centred entries: replace the N(0, 1) base density of `athlete_raw` by the population
            # prior N(loc, scale) of the parameter itself (the step's Jacobian is constant).
            prior = -0.5 * standardised**2 - pt.log(safe_scale)[None, :] + 0.5 * raw**2
            pm.Potential("centred_prior", pt.sum(pt.where(centred, prior, 0.0)))
        theta_all = to_constrained(theta_raw)
        for p, name in enumerate(names):
            pm.Deterministic(name, theta_all[:, p], dims="athlete")

        parts: dict[str, NoisePart] = {}
        for (level, target), sigma, phi_name, share_name, phi_slow_name in zip(
                LEVEL_TARGETS.items(), SIGMA_TARGETS, params.AR_PARAMS,
                params.SLOW_SHARE_PARAMS, params.PHI_SLOW_PARAMS):
            if priors.noise_by_source:
                phi = pm.Beta(phi_name, priors.ar_alpha, priors.ar_beta, dims="source")
                phi_athlete = phi[arrays.source_index]
            else:
                phi = pm.Beta(phi_name, priors.ar_alpha, priors.ar_beta)
                phi_athlete = pt.ones(arrays.n_athletes) * phi
            if priors.slow_noise:
                share = pm.Beta(share_name, priors.slow_alpha, priors.slow_beta)
                log_extra = pm.Normal(f"log_tau_slow_{phi_slow_name[9:]}",
                                      np.log(priors.tau_slow_extra_days), priors.tau_slow_sd)
                phi_slow = pm.Deterministic(phi_slow_name, pt.exp(
                    -1.0 / (priors.tau_slow_min_days + pt.exp(log_extra))))
            else:
                share, phi_slow = 0.0, 0.0
            df = (pm.Gamma(f"nu_{phi_name[4:]}", 2.0, 0.1) if priors.tails == "student"
                  else None)
            obs = observations[target]
            if len(obs.value) == 0:
                continue
            mean = theta_all[:, index[level]][obs.athlete] + effects[target]
            parts[target] = NoisePart(obs, obs.value - mean, theta_all[:, index[sigma]],
                                      phi_athlete, share, phi_slow, df)
        for target, per_athlete in noise_log_likelihoods(parts, arrays.n_athletes).items():
            pm.Potential(f"{target}_obs", pt.sum(per_athlete))
            pm.Deterministic(f"{LOGLIK_PREFIX}{target}", per_athlete, dims="athlete")
    return model


# ----------------------------------------------------------------------------------------------
# Sample


def _sample_nutpie(model: Any, config: SamplerConfig, cores: int) -> tuple[Any, dict[str, float]]:
    import nutpie

    start = time.perf_counter()
    backend = config.nutpie_backend
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        warnings.warn("nutpie_backend='jax' needs the jax package; compiling with numba instead "
                      "(minutes longer)", stacklevel=3)
        backend = "numba"
    compiled = nutpie.compile_pymc_model(model, backend=backend, gradient_backend=(
        "jax" if backend == "jax" else "pytensor"))
    compiled_at = time.perf_counter()
    idata = nutpie.sample(
        compiled, draws=config.draws, tune=config.tune, chains=config.chains, cores=cores,
        seed=config.seed, target_accept=config.target_accept, progress_bar=config.progress_bar,
        save_warmup=False, low_rank_modified_mass_matrix=config.low_rank_mass_matrix,
    )
    done = time.perf_counter()
    idata.attrs["nutpie_backend"] = backend
    return idata, {"compile_s": compiled_at - start, "sample_s": done - compiled_at}


def _sample_pymc(model: Any, config: SamplerConfig, cores: int) -> tuple[Any, dict[str, float]]:
    import pymc as pm

    start = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=config.draws, tune=config.tune, chains=config.chains, cores=cores,
            random_seed=config.seed, target_accept=config.target_accept,
            progressbar=config.progress_bar, compute_convergence_checks=False,
        )
    return idata, {"sample_s": time.perf_counter() - start}


def _sample_advi(model: Any, config: SamplerConfig) -> tuple[Any, dict[str, float]]:
    import pymc as pm

    start = time.perf_counter()
    with model:
        approx = pm.fit(config.advi_iterations, method="advi", random_seed=config.seed,
                        progressbar=config.progress_bar)
        fitted = time.perf_counter()
        idata = approx.sample(config.draws, random_seed=config.seed)
    return idata, {"fit_s": fitted - start, "sample_s": time.perf_counter() - fitted}


def _sample_pathfinder(model: Any, config: SamplerConfig) -> tuple[Any, dict[str, float]]:
    try:
        pmx = importlib.import_module("pymc_extras")
    except ImportError:
        raise ImportError("sampler='pathfinder' needs the pymc-extras package "
                          "(pip install pymc-extras); use 'advi' for a preview without it") from None
    start = time.perf_counter()
    with model:
        idata = pmx.fit(method="pathfinder", num_draws=config.draws, random_seed=config.seed)
    return idata, {"sample_s": time.perf_counter() - start}


def sample(model: Any, config: SamplerConfig = SamplerConfig()) -> Any:
    """Sample the posterior of `model` and check it.

    Returns an `az.InferenceData` with `posterior` (chain, draw, ...), `sample_stats`,
    `observed_data`, `constant_data`, and attrs: `sampler_config` (JSON), `sampler` (the one
    actually used), `preview` (1 for ADVI/pathfinder), `timings` (JSON, seconds),
    `versions` (JSON), `diagnostics` (JSON of `Diagnostics.to_dict`). `nutpie` falls back to
    PyMC's NUTS when nutpie is not installed or fails (with a warning naming the reason).
    Diagnostics are printed; failing ones are also raised as a `UserWarning`.
    """
    cores = config.cores or max(1, min(config.chains, os.cpu_count() or 1))
    used = config.sampler
    fallback_reason = ""
    start = time.perf_counter()
    if used == "nutpie":
        try:
            idata, timings = _sample_nutpie(model, config, cores)
        except Exception as exc:  # noqa: BLE001 - any nutpie failure (import, compile, run) falls back
            fallback_reason = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"nutpie unavailable or failed ({fallback_reason}); falling back to "
                          f"PyMC NUTS", stacklevel=2)
            used = "pymc"
    if used == "pymc":
        idata, timings = _sample_pymc(model, config, cores)
    elif used == "advi":
        idata, timings = _sample_advi(model, config)
    elif used == "pathfinder":
        idata, timings = _sample_pathfinder(model, config)
    timings["total_s"] = time.perf_counter() - start
    attrs = {
        "sampler_config": json.dumps(asdict(config)),
        "sampler": used,
        "sampler_fallback_reason": fallback_reason,
        "preview": int(used in PREVIEW_SAMPLERS),
        "timings": json.dumps(timings),
        "versions": json.dumps(package_versions(("numpy", "pymc", "pytensor", "arviz", "nutpie", "numba"))),
    }
    idata.attrs.update(attrs)
    _move_log_likelihood(idata)
    for group in ("posterior",):
        if hasattr(idata, group):
            getattr(idata, group).attrs.update(attrs)
    diagnostics = diagnose(idata)
    record_diagnostics(idata, diagnostics)
    report_diagnostics(diagnostics)
    return idata


def _move_log_likelihood(idata: Any) -> None:
    """Move the per-athlete log-likelihood deterministics (`LOGLIK_PREFIX`) from the posterior
    to the `log_likelihood` group, named by target, where ArviZ's `loo`/`compare` find them."""
    if not hasattr(idata, "posterior"):
        return
    names = [n for n in idata.posterior.data_vars if str(n).startswith(LOGLIK_PREFIX)]
    if not names:
        return
    group = idata.posterior[names].rename({n: str(n)[len(LOGLIK_PREFIX):] for n in names})
    idata.posterior = idata.posterior.drop_vars(names)
    if hasattr(idata, "log_likelihood"):
        del idata.log_likelihood
    idata.add_groups({"log_likelihood": group})


def athlete_log_likelihood(idata: Any, targets: tuple[str, ...] = TARGETS) -> Any:
    """An InferenceData whose `log_likelihood` group holds one variable, `athletes` (chain,
    draw, athlete): each athlete's log-likelihood summed over `targets`, so that
    `az.loo`/`az.compare` leave one athlete out at a time (the question a new user asks: how
    well does the model predict a person it has not seen)."""
    import arviz as az

    group = idata.log_likelihood
    total = sum(group[t] for t in targets if t in group)
    return az.InferenceData(posterior=idata.posterior,
                            log_likelihood=total.to_dataset(name="athletes"))


# ----------------------------------------------------------------------------------------------
# Check and read


def diagnose(idata: Any, var_names: list[str] | None = None) -> Diagnostics:
    """R-hat, bulk/tail ESS and divergences of a fit (every posterior variable unless
    `var_names`). A preview (ADVI/pathfinder, attrs `preview` = 1) gets NaN statistics and
    never passes."""
    import arviz as az

    sampler = str(idata.attrs.get("sampler", "unknown"))
    posterior = idata.posterior
    n_draws = int(posterior.sizes["chain"] * posterior.sizes["draw"])
    if int(idata.attrs.get("preview", 0)) or sampler in PREVIEW_SAMPLERS:
        return Diagnostics(np.nan, np.nan, np.nan, 0, n_draws, sampler)
    names = var_names or list(posterior.data_vars)
    rhat = az.rhat(posterior, var_names=names)
    bulk = az.ess(posterior, var_names=names, method="bulk")
    tail = az.ess(posterior, var_names=names, method="tail")

    def extreme(ds: Any, pick: Any) -> tuple[float, str]:
        best, where = None, ""
        for name, da in ds.data_vars.items():
            values = np.asarray(da.values, dtype=float).ravel()
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            v = float(pick(values))
            if best is None or pick([best, v]) == v:
                best, where = v, str(name)
        return (np.nan if best is None else best), where

    max_rhat, worst = extreme(rhat, np.max)
    min_bulk, _ = extreme(bulk, np.min)
    min_tail, _ = extreme(tail, np.min)
    divergences = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return Diagnostics(max_rhat, min_bulk, min_tail, divergences, n_draws, sampler, worst)


def record_diagnostics(idata: Any, diagnostics: Diagnostics) -> None:
    """Store the diagnostics in `idata.attrs["diagnostics"]` (JSON)."""
    idata.attrs["diagnostics"] = json.dumps(diagnostics.to_dict())


def report_diagnostics(diagnostics: Diagnostics) -> None:
    """Print the diagnostics; warn loudly when the fit failed them or is only a preview."""
    text = diagnostics.describe()
    print(text, flush=True)
    if not diagnostics.ok:
        warnings.warn(text, UserWarning, stacklevel=3)


def _stacked(da: Any) -> np.ndarray:
    """(chain, draw, ...) → (chain·draw, ...) as numpy."""
    values = np.asarray(da.values)
    return values.reshape((-1,) + values.shape[2:])


def posterior_athlete_params(idata: Any) -> dict[str, np.ndarray]:
    """Each athlete parameter's draws on the constrained scale: name (`params.PARAM_NAMES`) →
    array (n_draws, n_athletes), draws = chains × draws flattened chain-major; athletes in the
    order of the fit's `athlete` coord (= `AthleteArrays.user_ids`)."""
    posterior = idata.posterior
    return {name: _stacked(posterior[name]) for name in params.PARAM_NAMES}


def population_draws(idata: Any) -> dict[str, Any]:
    """The population posterior, per draw (chains × draws flattened chain-major):

    - `loc`: (n_draws, n_sources, n_params) on the unconstrained scale (a shared parameter's
      value is repeated across sources);
    - `scale`: (n_draws, n_params) between-athlete SD on the unconstrained scale;
    - `phi`: (n_draws, n_sources, 3) AR(1) coefficients of hrv, rhr, recovery
      (`params.AR_PARAMS` order; the same for every source in a fit without
      `PriorConfig.noise_by_source`);
    - `slow_share`, `phi_slow`: (n_draws, n_sources, 3) the slow noise components' variance
      shares and coefficients (`params.SLOW_SHARE_PARAMS`, `PHI_SLOW_PARAMS`), only when the
      fit had them;
    - `sources`: tuple of source names (axis 1 of `loc`), `param_names`: `params.PARAM_NAMES`.

    A new athlete of source s: θ = transform(loc[d, s] + scale[d] · z), z ~ N(0, 1).
    """
    posterior = idata.posterior
    n_sources = posterior[POPULATION_LOC].sizes["source"]

    def per_source(names: tuple[str, ...]) -> np.ndarray:
        out = []
        for name in names:
            values = _stacked(posterior[name])  # (n_draws,) or (n_draws, n_sources)
            out.append(values if values.ndim == 2 else
                       np.repeat(values[:, None], n_sources, axis=1))
        return np.stack(out, axis=-1)

    return {
        "loc": _stacked(posterior[POPULATION_LOC]),
        "scale": _stacked(posterior[POPULATION_SCALE]),
        "phi": per_source(params.AR_PARAMS),
        **({"slow_share": per_source(params.SLOW_SHARE_PARAMS),
            "phi_slow": per_source(params.PHI_SLOW_PARAMS)}
           if params.SLOW_SHARE_PARAMS[0] in posterior else {}),
        "sources": tuple(str(s) for s in posterior[POPULATION_LOC].coords["source"].values),
        "param_names": tuple(str(p) for p in posterior[POPULATION_LOC].coords["param"].values),
    }


def fit_diagnostics(idata: Any) -> Diagnostics:
    """The diagnostics stored with a fit (recomputed if absent)."""
    stored = idata.attrs.get("diagnostics")
    if stored:
        data = json.loads(stored)
        data.pop("ok", None)
        return Diagnostics(**data)
    return diagnose(idata)


# ----------------------------------------------------------------------------------------------
# Simulation from known parameters (parameter recovery, benchmarks)


@dataclass(frozen=True)
class SimulationConfig:
    """A synthetic cohort for parameter-recovery checks and benchmarks."""

    n_athletes: int = 4
    """Athletes in the cohort."""
    n_days: int = 100
    """Days per athlete."""
    missing_share: float = 0.2
    """Share of days without any physiology (non-wear), in runs (mean run `missing_run_days`)."""
    missing_run_days: float = 2.0
    """Mean length of a run of missing days."""
    scale_fraction: float = 0.7
    """True between-athlete SD of each parameter = this × its prior `scale_sd` (the HalfNormal
    prior's mean is 0.8 × scale_sd), 0 for a pooled parameter; the true population location is
    the prior `loc_mean`."""
    phi: tuple[float, float, float] = (0.4, 0.4, 0.3)
    """True AR(1) coefficients of the hrv, rhr and recovery noise (its fast component)."""
    slow_share: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """True share of each noise's variance in its slow component (0: one AR(1))."""
    phi_slow: tuple[float, float, float] = (0.98, 0.98, 0.98)
    """True AR(1) coefficients of the slow components."""
    source: str = "simulated"
    """The `source` of every simulated athlete."""


def simulate_cohort(config: SimulationConfig, rng: np.random.Generator,
                    priors: PriorConfig = PriorConfig()) -> tuple[AthleteArrays, dict[str, Any]]:
    """Simulate athletes from known parameters with numpy: loads → `banister.morning_states` →
    the observation equations of `params.py` → slow + fast AR(1) noise → missing days.

    Loads (hundreds of TRIMP per day): each athlete has a habitual level (log-normal around
    1.2), a 3-weeks-up / 1-week-down periodisation, ~25 % rest days and gamma-distributed
    sessions; high-intensity hours on ~30 % of training days. Loads are all known. Parameters:
    θ = transform(loc_mean + scale_fraction·scale_sd·z), z ~ N(0, 1) (see `SimulationConfig`).

    Returns the arrays (as `prepare_arrays` would give) and the truth: every name of
    `params.PARAM_NAMES` → (A,) constrained values, plus `phi`, `slow_share`, `phi_slow` (3,),
    `loc` (P,) and `scale` (P,) on the unconstrained scale.
    """

    a_n, t_n = config.n_athletes, config.n_days
    specs = priors.params
    names = list(specs)
    loc = np.array([specs[n].loc_mean for n in names])
    scale = np.array([0.0 if specs[n].pooled else config.scale_fraction * specs[n].scale_sd
                      for n in names])
    raw = loc + scale * rng.standard_normal((a_n, len(names)))
    truth: dict[str, Any] = {n: params.to_constrained(n, raw[:, p]) for p, n in enumerate(names)}
    truth.update(phi=np.array(config.phi), slow_share=np.array(config.slow_share),
                 phi_slow=np.array(config.phi_slow), loc=loc, scale=scale)

    habitual = np.exp(np.log(1.2) + 0.4 * rng.standard_normal(a_n))
    week = np.arange(t_n) // 7
    block = np.where(week % 4 == 3, 0.6, 1.0 + 0.15 * (week % 4))  # 3 up, 1 down
    phase = rng.integers(0, 4, a_n)
    block = np.stack([np.roll(block, 7 * k) for k in phase])
    training = rng.random((a_n, t_n)) > 0.25
    load = training * block * rng.gamma(2.0, habitual[:, None] / 2.0 / 0.75, (a_n, t_n))
    hard = training & (rng.random((a_n, t_n)) < 0.3)
    hi_load = hard * rng.gamma(2.0, 0.25, (a_n, t_n))

    tau_fat = truth["tau_fat_days"]
    tau_fit = params.tau_fit_days(tau_fat, truth["tau_gap_days"])
    decays = banister.decay_factors(tau_fit, tau_fat, params.TAU_FAST_DAYS)
    initial = banister.steady_morning_state(load.mean(axis=1), hi_load.mean(axis=1), decays)
    states = banister.morning_states(load, hi_load, decays, initial)
    ewma = params.state_normaliser(decays[:, None, :3]) * states[..., :3]
    fit, fat, fast = (ewma[..., c] for c in (banister.FITNESS, banister.FATIGUE,
                                              banister.FAST_FATIGUE))

    def col(name: str) -> np.ndarray:
        return truth[name][:, None]

    hrv_load = col("a_fit") * fit - col("a_fat") * fat - col("a_fast") * fast
    rhr_load = -col("b_fit") * fit + col("b_fat") * fat + col("b_fast") * fast
    means = {"hrv": col("mu_hrv") + hrv_load, "rhr": col("mu_rhr") + rhr_load,
             "recovery": col("mu_rec") + col("g_hrv") * hrv_load - col("g_rhr") * rhr_load}
    sigmas = {"hrv": truth["sigma_hrv"], "rhr": truth["sigma_rhr"],
              "recovery": truth["sigma_rec"]}
    values = {}
    # The slow components' innovations come from their own stream, so that a cohort without
    # them draws exactly the numbers it always did.
    slow_rng = (np.random.default_rng(rng.integers(2**63)) if any(config.slow_share)
                else None)
    for k, target in enumerate(TARGETS):
        # Unit marginal variance, the two stationary components stepped by the simulator's
        # own noise update (`observation.noise_step`).
        phi, share, phi_slow = config.phi[k], config.slow_share[k], config.phi_slow[k]
        sd_fast, sd_slow = component_sds(1.0, share)
        fast, slow = np.empty((a_n, t_n)), np.zeros((a_n, t_n))
        fast[:, 0] = sd_fast * rng.standard_normal(a_n)
        if share > 0:
            slow[:, 0] = sd_slow * slow_rng.standard_normal(a_n)
        for t in range(1, t_n):
            fast[:, t], slow[:, t] = noise_step(
                fast[:, t - 1], slow[:, t - 1], phi, phi_slow, 1.0, share,
                rng.standard_normal(a_n), slow_rng.standard_normal(a_n) if share > 0 else None)
        noise = fast + slow
        values[target] = means[target] + sigmas[target][:, None] * noise

    # Non-wear days: a two-state Markov chain with the requested share and mean run length.
    leave = 1.0 / config.missing_run_days
    enter = leave * config.missing_share / max(1.0 - config.missing_share, 1e-9)
    missing = np.empty((a_n, t_n), dtype=bool)
    missing[:, 0] = rng.random(a_n) < config.missing_share
    for t in range(1, t_n):
        u = rng.random(a_n)
        missing[:, t] = np.where(missing[:, t - 1], u >= leave, u < enter)
    recovery_logit = np.where(missing, np.nan, values["recovery"])
    start = np.datetime64("2024-01-01")
    series = []
    for a in range(a_n):
        series.append({
            "user_id": f"sim-{a:04d}", "source": config.source,
            "dates": start + np.arange(t_n).astype("timedelta64[D]"),
            "load": load[a], "load_known": np.ones(t_n, bool),
            "hi_load": hi_load[a], "hi_load_known": np.ones(t_n, bool),
            "hrv": np.where(missing[a], np.nan, values["hrv"][a]),
            "rhr": np.where(missing[a], np.nan, values["rhr"][a]),
            # percent; stays inside RECOVERY_CLIP_PCT almost always, so the logit round-trips
            "recovery": 100.0 / (1.0 + np.exp(-recovery_logit[a])),
        })
    return stack_series(series), truth
