"""The Banister fitness-fatigue impulse-response core, written once (DESIGN §5).

Every part of the project that needs latent fitness and fatigue calls this module: the PyMC
model (`pytensor_states`), the simulator and its batched env (`step_state`, numpy, thousands of
athletes at once) and the MPC planner (`morning_states` on numpy arrays or torch tensors, so it
can plan through the model with gradients, on CUDA where present).

The model
---------
Banister et al. (1975, Aust J Sports Med 7:57) describe performance as a baseline plus a
fitness and a fatigue effect, each an exponentially decaying sum of past daily loads w (we use
the notation of Busso 2003, Med Sci Sports Exerc 35:1188):

    G_t = G_{t-1}·exp(-1/τ_fit)  + w_t        fitness          (load units, e.g. TRIMP)
    H_t = H_{t-1}·exp(-1/τ_fat)  + w_t        fatigue
    F_t = F_{t-1}·exp(-1/τ_fast) + u_t        fast fatigue, driven by the high-intensity and
                                              strength load u (Z4-5 + strength minutes), because
                                              HIIT and lifting fatigue more than their TRIMP says
                                              (DESIGN §4)

and, for Busso's (2003) variable dose-response, two more channels: the fatigue gain grows with
recent load, k2(i) = k3·K_i with K_i = Σ_{j≤i} w_j·exp(-(i-j)/τ_gain), and each day's fatigue
impulse is weighted by the gain on the day it was given,

    K_t = K_{t-1}·exp(-1/τ_gain) + w_t        dose gain (without k3)
    V_t = V_{t-1}·exp(-1/τ_fat)  + K_t·w_t    variable fatigue (load² units)

so that fatigue grows with the square of a sustained load and performance is an inverted U in
the daily load (Busso 2003, "Conclusion"). Performance itself is written in one place,
`performance`.

The state is one array whose last axis holds the five channels in the order of `CHANNELS`
(index constants `FITNESS`, `FATIGUE`, `FAST_FATIGUE`, `DOSE_GAIN`, `VARIABLE_FATIGUE`).
A channel whose time constant is not given has decay 0: it is switched off and stays at 0.

Timing convention (the one thing every caller must agree on)
-------------------------------------------------------------
The daily table (DESIGN §3) measures physiology on the morning of day d, before day d's load.
So the state this module hands out for day d is the **morning state**: it contains every load up
to day d−1, each decayed by its age in whole days (d − s ≥ 1), and none of day d's:

    M_d = Σ_{s<d} w_s·exp(-(d-s)/τ)  (+ the initial state decayed d days)
    M_0 = initial,  M_{d+1} = exp(-1/τ)·(M_d + w_d)            (`step_state`)

This is exactly the sum in Banister's and Busso's performance equation (lags from 1), so gains
fitted in that literature keep their meaning. The recursion quantities G_t, H_t above are the
**evening states** (after day t's load), E_d = M_d + w_d (`add_load`); hence M_{d+1} =
exp(-1/τ)·E_d. Row d of `morning_states(loads, ...)` is aligned with row d of the daily table and
is what that morning's HRV sees; the action on day d (its load) first shows on morning d+1.

Loads must be finite: a NaN load makes every later state NaN (by design, nothing is imputed
here; the feature builder decides how to fill missing load days).
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np

Array: TypeAlias = Any
"""A numpy array or a torch tensor (the functions below accept either, and return the same
kind). Shapes are written as (..., n_days) for a batch of athletes of any shape."""

CHANNELS: tuple[str, ...] = (
    "fitness",
    "fatigue",
    "fast_fatigue",
    "dose_gain",
    "variable_fatigue",
)
"""Names of the state channels, in the order of the state's last axis."""

FITNESS, FATIGUE, FAST_FATIGUE, DOSE_GAIN, VARIABLE_FATIGUE = range(len(CHANNELS))
N_CHANNELS = len(CHANNELS)


def _torch_if_any(*values: object) -> ModuleType | None:
    """The torch module if any value is a torch tensor, else None (torch is imported lazily so
    numpy-only callers never pay for it)."""
    for value in values:
        if type(value).__module__.split(".")[0] == "torch":
            import torch

            return torch
    return None


def decay_from_tau(tau_days: Array) -> Array:
    """exp(-1/τ): the fraction of a state left after one day, for time constants τ in days.

    τ must be positive (checked for numpy input); τ = inf gives 1 (never forgotten).
    Works elementwise on numpy arrays and torch tensors (differentiable in τ).
    """
    torch = _torch_if_any(tau_days)
    if torch is not None:
        return torch.exp(-1.0 / tau_days)
    tau = np.asarray(tau_days, dtype=float)
    if not np.all(tau > 0):  # also rejects NaN
        raise ValueError(f"time constants must be positive days, got {tau_days!r}")
    return np.exp(-1.0 / tau)


def decay_factors(
    tau_fit_days: Array,
    tau_fat_days: Array,
    tau_fast_days: Array | None = None,
    tau_gain_days: Array | None = None,
) -> Array:
    """Per-channel one-day decay factors exp(-1/τ), shape (..., N_CHANNELS).

    τ's are in days, any shapes that broadcast together (e.g. (n_athletes,) or scalars).
    `tau_fast_days=None` switches the fast-fatigue channel off, `tau_gain_days=None` the Busso
    (2003) variable dose-response channels (dose gain and variable fatigue); a switched-off
    channel has decay 0 and so stays at 0. Variable fatigue decays with τ_fat, as in Busso.
    """
    fit = decay_from_tau(tau_fit_days)
    fat = decay_from_tau(tau_fat_days)
    torch = _torch_if_any(fit, fat, tau_fast_days, tau_gain_days)
    zero = 0.0 * fit * fat
    fast = zero if tau_fast_days is None else decay_from_tau(tau_fast_days)
    gain = zero if tau_gain_days is None else decay_from_tau(tau_gain_days)
    fat_variable = zero if tau_gain_days is None else fat
    channels = [fit, fat, fast, gain, fat_variable]
    if torch is not None:
        like = next(c for c in channels if isinstance(c, torch.Tensor))
        channels = [torch.as_tensor(c, dtype=like.dtype, device=like.device) for c in channels]
        return torch.stack(torch.broadcast_tensors(*channels), dim=-1)
    return np.stack(np.broadcast_arrays(*channels), axis=-1)


def add_load(state: Array, load: Array, hi_load: Array | None = None) -> Array:
    """The evening state: this morning's `state` (..., N_CHANNELS) plus today's training.

    `load` w and `hi_load` u (same load unit, None = 0) have the batch shape (...,) or one that
    broadcasts with it. Fitness, fatigue and dose gain add w, fast fatigue adds u, and variable
    fatigue adds K·w where K is the dose gain after today's load (Busso 2003: today's load
    counts in today's gain).
    """
    torch = _torch_if_any(state, load, hi_load)
    if torch is not None:
        like = next(v for v in (state, load, hi_load) if isinstance(v, torch.Tensor))

        def as_array(value: Array) -> Array:
            return torch.as_tensor(value, dtype=like.dtype, device=like.device)

        broadcast, stack = torch.broadcast_tensors, torch.stack
    else:
        state, w = np.asarray(state), np.asarray(load)
        u = 0.0 * w if hi_load is None else np.asarray(hi_load)
        # the drives written into one array (a broadcast and a stack cost more per call, which
        # is what a day of a short series costs: the personalisation steps thousands)
        drives = np.empty(np.broadcast_shapes(state.shape[:-1], w.shape, u.shape)
                          + (N_CHANNELS,))
        drives[..., FITNESS] = w
        drives[..., FATIGUE] = w
        drives[..., FAST_FATIGUE] = u
        drives[..., DOSE_GAIN] = w
        drives[..., VARIABLE_FATIGUE] = (state[..., DOSE_GAIN] + w) * w
        return state + drives
    state, w = as_array(state), as_array(load)
    u = 0.0 * w if hi_load is None else as_array(hi_load)
    evening_gain = state[..., DOSE_GAIN] + w
    # One stack of the five drives was 4x faster than masked broadcasting (16k athletes).
    drives = broadcast(w, w, u, w, evening_gain * w)
    return state + stack(drives, -1)


def step_state(state: Array, load: Array, hi_load: Array | None, decays: Array) -> Array:
    """Tomorrow morning's state from this morning's, after today's `load` and `hi_load`.

    M_{d+1} = decays·(M_d + drive_d), all channels at once. Shapes: `state` (..., N_CHANNELS),
    `load`/`hi_load` (...,), `decays` (..., N_CHANNELS) from `decay_factors`; batch shapes
    broadcast (one initial state against many candidate plans, for the planner). numpy or torch.
    """
    return decays * add_load(state, load, hi_load)


def morning_states(
    loads: Array,
    hi_loads: Array | None,
    decays: Array,
    initial: Array | None = None,
) -> Array:
    """The state on each morning of a load series, shape (..., n_days, N_CHANNELS).

    Row d holds loads of days < d only (see the module's timing convention), so it lines up
    with row d of the daily table. `loads`, `hi_loads` (None = no high-intensity load): (...,
    n_days) in load units; `decays` (..., N_CHANNELS) from `decay_factors`; `initial` (...,
    N_CHANNELS) is the morning state of day 0 (None = all zero, i.e. an untrained start). To get
    the morning after the last day, apply `step_state` once more to the last row.

    Batched over athletes, one loop over days (exact and stable for any τ, unlike an
    exp-rescaled cumulative sum). numpy arrays or torch tensors; with torch the result is
    differentiable in the loads, the initial state and the τ behind `decays`.
    """
    torch = _torch_if_any(loads, hi_loads, decays, initial)
    if torch is None:
        loads = np.asarray(loads, dtype=float)
        hi_loads = None if hi_loads is None else np.asarray(hi_loads, dtype=float)
        decays = np.asarray(decays, dtype=float)
    n_days = loads.shape[-1]
    shapes = [tuple(loads.shape[:-1]) + (1,), tuple(decays.shape)]
    if initial is not None:
        shapes.append(tuple(initial.shape))
    state_shape = tuple(np.broadcast_shapes(*shapes))
    if torch is not None:
        zeros = torch.zeros(state_shape, dtype=loads.dtype, device=loads.device)
    else:
        zeros = np.zeros(state_shape)
    state = zeros if initial is None else zeros + initial
    rows = []
    for day in range(n_days):
        rows.append(state)
        hi = None if hi_loads is None else hi_loads[..., day]
        state = step_state(state, loads[..., day], hi, decays)
    if n_days == 0:
        return zeros[..., None, :][..., :0, :]
    if torch is not None:
        return torch.stack(rows, dim=-2)
    return np.stack(rows, axis=-2)


def steady_morning_state(load: Array, hi_load: Array, decays: Array) -> Array:
    """The morning state a constant daily `load` and `hi_load` converge to, (..., N_CHANNELS).

    Closed form of the fixed point of `step_state`: a linear channel with decay e settles at
    e·w/(1−e) in the morning (w/(1−e) in the evening); variable fatigue at
    e_fat·w²/((1−e_fat)(1−e_gain)). Useful to start simulated athletes already trained.
    numpy only.
    """
    w = np.asarray(load, dtype=float)
    u = np.asarray(hi_load, dtype=float)
    e = np.asarray(decays, dtype=float)
    geometric = e / (1.0 - e)  # Σ_{lag≥1} e^lag
    evening_gain = w / (1.0 - e[..., DOSE_GAIN])
    drive = np.stack(np.broadcast_arrays(w, w, u, w, evening_gain * w), axis=-1)
    return geometric * drive


def impulse_response(tau_days: Array, n_days: int) -> np.ndarray:
    """The kernel k_s = exp(-s/τ), s = 0..n_days−1, shape τ.shape + (n_days,).

    The evening state of a linear channel is the causal convolution of the loads with it.
    """
    tau = np.asarray(tau_days, dtype=float)[..., None]
    if not np.all(tau > 0):
        raise ValueError(f"time constants must be positive days, got {tau_days!r}")
    return np.exp(-np.arange(n_days) / tau)


def convolve_states(loads: Array, tau_days: Array, initial: Array | None = None) -> np.ndarray:
    """Morning states of one linear channel by convolution, shape (..., n_days).

    The reference form of the recursion: evening E = k * w (causal, `impulse_response`) plus
    the initial state decayed, morning M_0 = initial and M_d = exp(-1/τ)·E_{d-1}. O(n_days²) per
    athlete (np.convolve, exact sums): for checks and short series, not for fitting.
    `loads` (..., n_days), `tau_days` and `initial` broadcastable to (...,).
    """
    w = np.asarray(loads, dtype=float)
    n_days = w.shape[-1]
    tau = np.broadcast_to(np.asarray(tau_days, dtype=float), w.shape[:-1])
    start = np.broadcast_to(0.0 if initial is None else np.asarray(initial, float), tau.shape)
    kernels = impulse_response(tau, n_days)
    evening = np.empty_like(w)
    for index in np.ndindex(*w.shape[:-1]):
        evening[index] = np.convolve(w[index], kernels[index])[:n_days]
    evening += start[..., None] * kernels  # E_t holds initial·exp(-t/τ)
    morning = np.empty_like(w)
    if n_days:
        morning[..., 0] = start
        morning[..., 1:] = decay_from_tau(tau)[..., None] * evening[..., :-1]
    return morning


def performance(
    states: Array,
    baseline: Array,
    fitness_gain: Array,
    fatigue_gain: Array,
    fast_fatigue_gain: Array = 0.0,
    variable_fatigue_gain: Array = 0.0,
) -> Array:
    """Performance on the mornings of `states` (..., N_CHANNELS) → (...).

        P = p0 + k1·G − k2·H − k_F·F − k3·V

    with p0 = `baseline` (performance units), k1 = `fitness_gain`, k2 = `fatigue_gain`,
    k_F = `fast_fatigue_gain`, k3 = `variable_fatigue_gain` (performance units per load unit,
    k3 per load unit²). This is Banister et al. (1975) with k_F = k3 = 0; Busso's (2003)
    variable dose-response model with k2 = k_F = 0 and the Busso channels switched on in
    `decay_factors` (τ_gain), where the fatigue gain on day i is k3·K_i. Gains broadcast against
    `states[..., channel]`: for per-athlete gains against (n_athletes, n_days) states pass shape
    (n_athletes, 1). Works on numpy, torch and pytensor (plain arithmetic).
    """
    p0, k1, k2, k_fast, k3 = (
        baseline,
        fitness_gain,
        fatigue_gain,
        fast_fatigue_gain,
        variable_fatigue_gain,
    )
    return (
        p0
        + k1 * states[..., FITNESS]
        - k2 * states[..., FATIGUE]
        - k_fast * states[..., FAST_FATIGUE]
        - k3 * states[..., VARIABLE_FATIGUE]
    )


def pytensor_states(
    loads: Any,
    tau_fit_days: Any,
    tau_fat_days: Any,
    hi_loads: Any | None = None,
    tau_fast_days: Any | None = None,
    initial: Any | None = None,
) -> Any:
    """Morning states as a pytensor graph for the PyMC model, shape (n_athletes, n_days, C).

    One `pytensor.scan` over days, batched over athletes (DESIGN §5: scan scaled best from 200
    athletes up). `loads`/`hi_loads` (n_athletes, n_days); τ's (n_athletes,) or scalars; the
    channels are fitness and fatigue (C = 2), plus fast fatigue (C = 3) when `tau_fast_days` and
    `hi_loads` are given, with the indices `FITNESS`, `FATIGUE`, `FAST_FATIGUE`. `initial`
    (n_athletes, C) is the day-0 morning state (None = 0). Same timing convention and values as
    `morning_states`; the Busso channels are not built here.
    """
    import pytensor
    import pytensor.tensor as pt

    def as_tensor(value: Any) -> Any:
        # Plain numbers become floatX arrays: pytensor would otherwise store 40.0 as float32.
        if isinstance(value, pytensor.graph.basic.Variable):
            return value
        return pt.as_tensor_variable(np.asarray(value, dtype=pytensor.config.floatX))

    w = as_tensor(loads)
    drives = [w, w]
    taus = [as_tensor(tau_fit_days), as_tensor(tau_fat_days)]
    if tau_fast_days is not None:
        if hi_loads is None:
            raise ValueError("tau_fast_days needs hi_loads")
        drives.append(as_tensor(hi_loads))
        taus.append(as_tensor(tau_fast_days))
    n_channels = len(drives)
    decays = pt.stack([pt.exp(-1.0 / tau) * pt.ones_like(w[:, 0]) for tau in taus], axis=-1)
    by_day = pt.stack(drives, axis=-1).dimshuffle(1, 0, 2)  # (n_days, n_athletes, C)
    start = pt.zeros((w.shape[0], n_channels), dtype=decays.dtype)
    if initial is not None:
        start = start + as_tensor(initial)

    def next_morning(drive, morning, decay):
        return decay * (morning + drive)

    # pytensor ≥ 2.36 returns only the outputs when asked; older versions also the updates.
    new_api = "return_updates" in inspect.signature(pytensor.scan).parameters
    scanned = pytensor.scan(
        next_morning,
        sequences=[by_day[:-1]],
        outputs_info=[start],
        non_sequences=[decays],
        **({"return_updates": False} if new_api else {}),
    )
    later = scanned if new_api else scanned[0]
    mornings = pt.concatenate([start[None], later], axis=0)
    return mornings.dimshuffle(1, 0, 2)
