"""One athlete-day, written once (DESIGN §2, §5-6), and whole simulated calendars of it.

A day has three parts, and everything that steps an athlete calls these: the simulator's
`Simulation` (single and batched env, twins, replay), the planner's rollout model
(`simulator.rollout`), the MPC's belief and the oracles (`agents.mpc`), and the synthetic
calendars of the fit's checks (`simulate_observations`, `bayes.simulate_cohort`):

- `transition(state, perf_state, w, u, decays, perf_decays)`: the day's loads move the
  Banister physiology states (fitness, fatigue, fast fatigue) and the performance states from
  one morning to the next (banister.py's morning-state timing);
- `morning_means(params, state, decays)`: the observation equations on a morning's states
  (means of ln HRV, RHR and the recovery logit);
- `observation.ar1_step`: each signal's AR(1) noise, from pre-drawn standard normals, so that
  the env's keyed streams and the planner's common random numbers both fit.

The planner scores plans in closed form (`rollout.observation_response`: the means are affine
in the loads); tests/test_mpc.py holds it equal to these functions.
"""

from __future__ import annotations

import numpy as np

from physiology_model.dynamics import banister
from physiology_model.dynamics.observation import (
    NOISE_PHI,
    NOISE_SIGMA,
    ar1_step,
    latent_states,
    logit_to_recovery,
    observation_means,
)
from physiology_model.dynamics.params import state_normaliser


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
        phi, sigma = p[NOISE_PHI[target]][:, None], p[NOISE_SIGMA[target]][:, None]
        e = rng.standard_normal(m.shape)
        r = np.empty_like(m)
        r[:, 0] = sigma[:, 0] * e[:, 0]
        for t in range(1, m.shape[1]):
            r[:, t] = ar1_step(r[:, t - 1], phi[:, 0], sigma[:, 0], e[:, t])
        y = m + r
        out[target] = logit_to_recovery(y) if target == "recovery" else y
    return out


def transition(state: np.ndarray, perf_state: np.ndarray, w: np.ndarray, u: np.ndarray | None,
               decays: np.ndarray, perf_decays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The next morning's (physiology state, performance state) after a day of load `w` (TRIMP
    / `LOAD_SCALE_TRIMP`) with high-intensity/strength load `u` (None: none): each state
    (..., C) stepped by `banister.step_state` with its own decays; shapes broadcast."""
    return (banister.step_state(state, w, u, decays),
            banister.step_state(perf_state, w, None, perf_decays))


def morning_means(params: dict[str, np.ndarray], state: np.ndarray, decays: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Means of ln HRV, RHR and the recovery logit on a morning whose Banister states are
    `state` (M, C), for M athletes (or draws) with parameters `params` (M,) and channel decays
    (M, C): each (M, 1)."""
    latents = state[..., :3] * state_normaliser(decays[..., :3])
    return observation_means(params, latents.reshape(-1, 1, 3))
