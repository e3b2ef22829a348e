"""One athlete-day, written once (DESIGN §2, §5-6), and whole simulated calendars of it.

Everything that steps an athlete calls these: the simulator's `Simulation` (single and batched
env, twins, replay), the planner's rollout model (`simulator.rollout`), the MPC's belief and
the oracles (`agents.mpc`), and the synthetic calendars of the fit's checks (`simulate`,
`simulate_observations`):

- `AthleteParams`: a batch of athletes' world-model parameters (each field an array, batch
  axes first; `from_mapping` / `to_mapping` convert the parameter dicts of model and cohort
  files at the boundaries, filling the slow-noise parameters an old file lacks);
- `AthleteState`: a batch of athletes' mornings: the Banister physiology and performance
  states and each signal's two noise components (slow and fast, `params.SLOW_SHARE_PARAMS`);
- `transition(state, params, loads, noise)`: the day's loads move the states to the next
  morning (banister.py's morning-state timing) and each noise component takes one AR(1) step
  (`observation.noise_step`, `observation.ar1_step`) from PRE-DRAWN standard normals
  (`DayNoise`), so that the env's keyed streams and the planner's common random numbers both
  fit;
- `observe(state, params)`: the morning's ln HRV, RHR and recovery logit, the observation
  equations (`morning_means`) plus the noise;
- `simulate(params, loads, rng)`: whole calendars of readings under given loads.

The planner scores plans in closed form (`rollout.observation_response`: the means are affine
in the loads); tests/test_mpc.py holds it equal to these functions, and tests/test_dynamics.py
holds `simulate` equal to a calendar of `transition` + `observe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from physiology_model.dynamics import banister
from physiology_model.dynamics.observation import (
    NOISE_PHI,
    NOISE_PHI_SLOW,
    NOISE_SIGMA,
    NOISE_SLOW_SHARE,
    TARGETS,
    channel_decays,
    component_sds,
    correlate,
    correlation_factor,
    latent_states,
    logit_to_recovery,
    noise_step,
    observation_means,
    stationary_coupling,
)
from physiology_model.dynamics.params import (
    AR_PARAMS,
    NOISE_PARAMS,
    PARAM_NAMES,
    WEEKDAY_PARAMS,
    state_normaliser,
    with_noise_defaults,
)
from physiology_model.dynamics.performance import PerformanceParams


@dataclass(frozen=True, eq=False)
class AthleteParams:
    """World-model parameters of a batch of athletes (or parameter draws): each field an array
    of the batch shape ((N,) athletes, (N, S) athletes × scenarios, ...), in the units of
    `params.ATHLETE_PARAMS`; the noise parameters `params.NOISE_PARAMS`; and optionally the
    performance model's parameters (`PerformanceParams`, batch shape of its own: the MPC's
    belief has S physiology scenarios and D performance draws per athlete).

    Read-only mapping access (`p["mu_hrv"]`, `keys`, `items`) lets the observation equations
    take either this or a parameter dict (the fit's own draws)."""

    tau_fat_days: np.ndarray
    tau_gap_days: np.ndarray
    mu_hrv: np.ndarray
    a_fit: np.ndarray
    a_fat: np.ndarray
    a_fast: np.ndarray
    sigma_hrv: np.ndarray
    mu_rhr: np.ndarray
    b_fit: np.ndarray
    b_fat: np.ndarray
    b_fast: np.ndarray
    sigma_rhr: np.ndarray
    mu_rec: np.ndarray
    g_hrv: np.ndarray
    g_rhr: np.ndarray
    sigma_rec: np.ndarray
    phi_hrv: np.ndarray
    """The fast noise component's AR(1) coefficient (the whole noise's when w = 0)."""
    phi_rhr: np.ndarray
    phi_rec: np.ndarray
    slow_hrv: np.ndarray
    """w: the slow component's share of the noise variance σ²."""
    slow_rhr: np.ndarray
    slow_rec: np.ndarray
    phi_slow_hrv: np.ndarray
    """φ_s: the slow component's AR(1) coefficient."""
    phi_slow_rhr: np.ndarray
    phi_slow_rec: np.ndarray
    rho_hrv_rhr: np.ndarray
    """Correlation of the ln HRV and RHR noises' innovations on the same day
    (`params.COUPLING_PARAMS`; 0: independent)."""
    rho_hrv_rec: np.ndarray
    rho_rhr_rec: np.ndarray
    dow_hrv_0: np.ndarray
    """Offset of ln HRV on Mondays (… `_6`: Sundays; `params.WEEKDAY_PARAMS`, 0: no weekly
    rhythm); `dow_rhr_*` RHR's, `dow_recovery_*` the recovery logit's."""
    dow_hrv_1: np.ndarray
    dow_hrv_2: np.ndarray
    dow_hrv_3: np.ndarray
    dow_hrv_4: np.ndarray
    dow_hrv_5: np.ndarray
    dow_hrv_6: np.ndarray
    dow_rhr_0: np.ndarray
    dow_rhr_1: np.ndarray
    dow_rhr_2: np.ndarray
    dow_rhr_3: np.ndarray
    dow_rhr_4: np.ndarray
    dow_rhr_5: np.ndarray
    dow_rhr_6: np.ndarray
    dow_recovery_0: np.ndarray
    dow_recovery_1: np.ndarray
    dow_recovery_2: np.ndarray
    dow_recovery_3: np.ndarray
    dow_recovery_4: np.ndarray
    dow_recovery_5: np.ndarray
    dow_recovery_6: np.ndarray
    performance: PerformanceParams | None = None

    @classmethod
    def from_mapping(cls, p: Mapping[str, Any],
                     performance: PerformanceParams | None = None) -> AthleteParams:
        """From a parameter dict (`params.PARAM_NAMES` + `AR_PARAMS`, optionally the slow
        noise's `SLOW_SHARE_PARAMS` and `PHI_SLOW_PARAMS`): a dict without the slow ones (a
        model or cohort file written before they existed) gets `NOISE_DEFAULTS` (w = 0: one
        AR(1)). Arrays are taken as they are (no copy)."""
        missing = [k for k in PARAM_NAMES + AR_PARAMS if k not in p]
        if missing:
            raise ValueError(f"athlete parameters lack {missing}")
        full = with_noise_defaults(p)
        values = {k: np.asarray(full[k], dtype=float) for k in PARAM_NAMES + NOISE_PARAMS}
        return cls(**values, performance=performance)

    def to_mapping(self) -> dict[str, np.ndarray]:
        """The parameter dict (`PARAM_NAMES` + `NOISE_PARAMS`), the arrays themselves."""
        return {k: getattr(self, k) for k in PARAM_NAMES + NOISE_PARAMS}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in _PARAM_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in _PARAM_FIELDS

    def keys(self) -> tuple[str, ...]:
        return _PARAM_FIELDS

    def items(self) -> list[tuple[str, np.ndarray]]:
        return [(k, getattr(self, k)) for k in _PARAM_FIELDS]

    def map(self, fn: Any) -> AthleteParams:
        """The same parameters with `fn` applied to every physiology array (indexing,
        reshaping, repeating); the performance parameters are kept."""
        return replace(self, **{k: fn(getattr(self, k)) for k in _PARAM_FIELDS})

    def take(self, index: Any) -> AthleteParams:
        """The athletes `index` picks (an index array, a slice) of the physiology arrays."""
        return self.map(lambda v: v[index])

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.mu_hrv)

    @cached_property
    def decays(self) -> np.ndarray:
        """Daily decay factors of the physiology channels, batch shape + (N_CHANNELS,)."""
        return channel_decays(self)

    @cached_property
    def performance_decays(self) -> np.ndarray:
        if self.performance is None:
            raise ValueError("these athlete parameters have no performance model")
        return self.performance.decays()

    @cached_property
    def weekday_tables(self) -> np.ndarray | None:
        """The weekday offsets stacked, batch shape + (3, 7) (`observation.TARGETS` ×
        Monday … Sunday), kept for the simulator's every morning; None when every offset is 0
        (no weekly rhythm: the observation equations then skip them)."""
        tables = np.stack([np.stack([getattr(self, n) for n in WEEKDAY_PARAMS[t]], axis=-1)
                           for t in TARGETS], axis=-2)
        return tables if np.any(tables != 0) else None

    @cached_property
    def innovation_factor(self) -> np.ndarray | None:
        """The square root (batch shape + (3, 3), `observation.correlation_factor`) that
        correlates the three signals' same-day noise innovations (`observation.correlate`);
        None when they are independent."""
        rho = (self.rho_hrv_rhr, self.rho_hrv_rec, self.rho_rhr_rec)
        if not any(np.any(r != 0) for r in rho):
            return None
        return correlation_factor(*rho)

    def stationary_factor(self, phi: np.ndarray) -> np.ndarray | None:
        """The factor that correlates the signals' stationary noise components of AR(1)
        coefficients `phi` (batch shape + (3,)): a simulated athlete's first morning."""
        if self.innovation_factor is None:
            return None
        return correlation_factor(*stationary_coupling(
            (self.rho_hrv_rhr, self.rho_hrv_rec, self.rho_rhr_rec), phi))

    def noise(self, name: str) -> np.ndarray:
        """One noise parameter of the three targets stacked, batch shape + (3,): `sigma`,
        `phi` (fast), `slow_share` (w) or `phi_slow`, in `observation.TARGETS` order."""
        names = {"sigma": NOISE_SIGMA, "phi": NOISE_PHI, "slow_share": NOISE_SLOW_SHARE,
                 "phi_slow": NOISE_PHI_SLOW}[name]
        return np.stack([getattr(self, names[t]) for t in TARGETS], axis=-1)

    @property
    def has_slow_noise(self) -> bool:
        """Whether any athlete's noise has a slow component (w > 0)."""
        return any(np.any(np.asarray(getattr(self, NOISE_SLOW_SHARE[t])) > 0) for t in TARGETS)


_PARAM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AthleteParams)
                                       if f.name != "performance")
assert set(_PARAM_FIELDS) == set(PARAM_NAMES + NOISE_PARAMS)


@dataclass(frozen=True)
class AthleteState:
    """A batch of athletes' mornings (batch shapes as their `AthleteParams`): the Banister
    physiology states `banister` (..., N_CHANNELS), the performance states `performance`
    (..., N_CHANNELS; None where nobody tracks performance) and each signal's noise in its
    two components, `noise_fast` and `noise_slow` (..., 3), ln HRV, RHR and recovery logit
    (`observation.TARGETS`); the reading's noise is their sum."""

    banister: np.ndarray
    performance: np.ndarray | None
    noise_fast: np.ndarray
    noise_slow: np.ndarray

    @property
    def noise(self) -> np.ndarray:
        """The noise of each signal this morning, (..., 3)."""
        return self.noise_fast + self.noise_slow


class DayNoise(NamedTuple):
    """Pre-drawn standard normals of one day's noise innovations, each (..., 3) in
    `observation.TARGETS` order: `fast` for the fast components, `slow` for the slow ones (its
    own stream, so that the fast draws are the same whatever the slow share)."""

    fast: np.ndarray
    slow: np.ndarray


def stationary_noise(params: AthleteParams, noise: DayNoise) -> tuple[np.ndarray, np.ndarray]:
    """(fast, slow) noise components drawn from their stationary distributions (the start of
    a simulated athlete), from standard normals, each (..., 3); correlated across the signals
    as their innovations are (`AthleteParams.stationary_factor`)."""
    sd_fast, sd_slow = component_sds(params.noise("sigma"), params.noise("slow_share"))
    return (sd_fast * correlate(noise.fast, params.stationary_factor(params.noise("phi"))),
            sd_slow * correlate(noise.slow, params.stationary_factor(params.noise("phi_slow"))))


def transition(state: AthleteState, params: AthleteParams,
               loads: tuple[np.ndarray, np.ndarray | None], noise: DayNoise | None
               ) -> AthleteState:
    """The next morning after a day of load `w` (TRIMP / `LOAD_SCALE_TRIMP`) with
    high-intensity/strength load `u` (None: none), `loads = (w, u)`: each Banister state
    stepped by `banister.step_state` with its own decays (the performance states only where
    `state.performance` is tracked), and each noise component by one AR(1) step from the
    pre-drawn `noise` (None: the noise is not stepped, e.g. an unobserved burn-in or a belief
    that reads the noise from the readings), its standard normals correlated across the
    signals (`AthleteParams.innovation_factor`). Shapes broadcast."""
    w, u = loads
    physiology = banister.step_state(state.banister, w, u, params.decays)
    performance = (None if state.performance is None
                   else banister.step_state(state.performance, w, None,
                                            params.performance_decays))
    fast, slow = state.noise_fast, state.noise_slow
    if noise is not None:
        factor = params.innovation_factor
        fast, slow = noise_step(fast, slow, params.noise("phi"), params.noise("phi_slow"),
                                params.noise("sigma"), params.noise("slow_share"),
                                correlate(noise.fast, factor), correlate(noise.slow, factor))
    return AthleteState(physiology, performance, fast, slow)


def observe(state: AthleteState, params: AthleteParams, weekday: np.ndarray | None = None
            ) -> dict[str, np.ndarray]:
    """This morning's ln HRV, RHR and recovery logit, each of the batch shape: the
    observation equations on the Banister states (with the weekday offsets when this
    morning's `weekday`, 0 = Monday, broadcastable to the batch shape, is given) plus each
    signal's noise (the noise is part of the state; its pre-drawn innovations enter through
    `transition`)."""
    batch = np.shape(state.banister)[:-1]
    flat = params if len(batch) == 1 else params.map(lambda v: np.reshape(v, -1))
    means = morning_means(flat, np.reshape(state.banister, (-1, banister.N_CHANNELS)),
                          np.reshape(params.decays, (-1, banister.N_CHANNELS)),
                          None if weekday is None
                          else np.reshape(np.broadcast_to(weekday, batch), (-1, 1)))
    noise = state.noise
    return {t: np.reshape(means[t][:, 0], batch) + noise[..., i]
            for i, t in enumerate(TARGETS)}


def simulate(params: AthleteParams, loads: tuple[np.ndarray, np.ndarray],
             rng: np.random.Generator, weekday: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
    """Simulated morning ln HRV, RHR and recovery (%) of S athletes, each (S, T).

    `params`: batch shape (S,); `loads = (load, hi_load)`: (T,) or (S, T) in model units;
    `weekday`: the calendar, (T,) or (S, T), 0 = Monday (None: no weekday offsets). The
    Banister states of the calendar come from `observation.latent_states` (a trained start:
    the steady state of the first week's mean load; the same recursion as `transition`,
    tests/test_dynamics.py), the noise of each signal is its two stationary components
    stepped by `observation.noise_step` from standard normals of `rng`: all the fast
    components' first (target by target, a (S, T) block each), then, only when some athlete
    has a slow component, the slow ones'; each day's normals are correlated across the
    signals as `transition` correlates them (`AthleteParams.innovation_factor`).
    """
    load = np.asarray(loads[0], dtype=float)
    hi_load = np.asarray(loads[1], dtype=float)
    n = len(params.mu_hrv)
    if load.ndim == 1:
        lat = latent_states(params, load, hi_load)
    else:
        lat = np.concatenate([latent_states(params.take(slice(i, i + 1)), load[i],
                                            hi_load[i]) for i in range(n)])
    means = observation_means(params, lat, weekday)
    z_fast = np.stack([rng.standard_normal(m.shape) for m in means.values()], axis=-1)
    z_slow = (np.stack([rng.standard_normal(m.shape) for m in means.values()], axis=-1)
              if params.has_slow_noise else None)
    fast, slow = stationary_noise(params, DayNoise(
        z_fast[:, 0], np.zeros_like(z_fast[:, 0]) if z_slow is None else z_slow[:, 0]))
    noise = np.empty(z_fast.shape)
    noise[:, 0] = fast + slow
    noise[:, 1:] = _stepped_noise(params, fast, slow, z_fast[:, 1:],
                                  None if z_slow is None else z_slow[:, 1:])
    out = {}
    for k, (target, m) in enumerate(means.items()):
        y = m + noise[..., k]
        out[target] = logit_to_recovery(y) if target == "recovery" else y
    return out


def _stepped_noise(params: AthleteParams, fast: np.ndarray, slow: np.ndarray,
                   z_fast: np.ndarray, z_slow: np.ndarray | None) -> np.ndarray:
    """Each signal's noise (S, n, 3) on the n mornings after a day whose (fast, slow)
    components are given, (S, 3) each: both stepped by `observation.noise_step` from the
    standard normals (S, n, 3), correlated across the signals as `transition` correlates them
    (`z_slow` None: the slow components only decay, where their share is 0)."""
    factor = params.innovation_factor
    factor = None if factor is None else factor[:, None]
    z_fast = correlate(z_fast, factor)
    z_slow = None if z_slow is None else correlate(z_slow, factor)
    phi, phi_slow = params.noise("phi"), params.noise("phi_slow")
    sigma, share = params.noise("sigma"), params.noise("slow_share")
    out = np.empty(z_fast.shape)
    for t in range(z_fast.shape[1]):
        fast, slow = noise_step(fast, slow, phi, phi_slow, sigma, share, z_fast[:, t],
                                None if z_slow is None else z_slow[:, t])
        out[:, t] = fast + slow
    return out


def continue_noise(params: AthleteParams, fast: np.ndarray, slow: np.ndarray, n_days: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Each signal's noise on the `n_days` mornings after a day whose (fast, slow) components
    are given, (S, 3) each (`_stepped_noise`), from standard normals of `rng`: the fast
    components' first, (S, n_days, 3), then the slow ones'. Returns (S, n_days, 3), the sum of
    the two components (a twin's future from the state its history left)."""
    shape = (len(params.mu_hrv), n_days, len(TARGETS))
    z_fast = rng.standard_normal(shape)
    return _stepped_noise(params, fast, slow, z_fast, rng.standard_normal(shape))


def simulate_observations(p: Mapping[str, np.ndarray], load: np.ndarray, hi_load: np.ndarray,
                          rng: np.random.Generator, weekday: np.ndarray | None = None
                          ) -> dict[str, np.ndarray]:
    """`simulate` for a parameter dict (S,) each (`AthleteParams.from_mapping`)."""
    return simulate(AthleteParams.from_mapping(p), (load, hi_load), rng, weekday)


def morning_means(params: Mapping[str, np.ndarray], state: np.ndarray, decays: np.ndarray,
                  weekday: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Means of ln HRV, RHR and the recovery logit on a morning whose Banister states are
    `state` (M, C), for M athletes (or draws) with parameters `params` (M,) and channel decays
    (M, C): each (M, 1); with the weekday offsets of that morning's `weekday` (M, 1) when
    given."""
    latents = state[..., :3] * state_normaliser(decays[..., :3])
    return observation_means(params, latents.reshape(-1, 1, 3), weekday)
