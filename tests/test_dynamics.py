"""The athlete-day of physiology_model.dynamics: written once, and what it computes."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from physiology_model.dynamics import banister
from physiology_model.dynamics.observation import ar1_step, channel_decays, observation_means
from physiology_model.dynamics.step import (
    AthleteParams,
    AthleteState,
    morning_means,
    observe,
    simulate_observations,
    transition,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _params(n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    p = {"mu_hrv": rng.normal(4.0, 0.2, n), "a_fit": rng.uniform(0.05, 0.1, n),
         "a_fat": rng.uniform(0.05, 0.1, n), "a_fast": rng.uniform(0.0, 0.05, n),
         "mu_rhr": rng.normal(55, 3, n), "b_fit": rng.uniform(1, 2, n),
         "b_fat": rng.uniform(1, 2, n), "b_fast": rng.uniform(0, 1, n),
         "mu_rec": rng.normal(0.5, 0.2, n), "g_hrv": rng.uniform(1, 3, n),
         "g_rhr": rng.uniform(0.05, 0.1, n), "tau_fat_days": rng.uniform(5, 9, n),
         "tau_gap_days": rng.uniform(20, 40, n)}
    for target in ("hrv", "rhr", "rec"):
        p[f"sigma_{target}"] = rng.uniform(0.05, 0.3, n)
        p[f"phi_{target}"] = rng.uniform(0.2, 0.6, n)
    return p


def test_ar1_step_keeps_the_marginal_sd_and_its_coefficient():
    phi, sigma = np.array([0.3, 0.7]), np.array([0.1, 2.0])
    rng = np.random.default_rng(1)
    r = sigma * rng.standard_normal(2)
    path = np.empty((40_000, 2))
    for t in range(len(path)):
        r = ar1_step(r, phi, sigma, rng.standard_normal(2))
        path[t] = r
    np.testing.assert_allclose(path.std(axis=0), sigma, rtol=0.03)
    lag1 = [np.corrcoef(path[1:, k], path[:-1, k])[0, 1] for k in range(2)]
    np.testing.assert_allclose(lag1, phi, atol=0.02)


def test_a_steady_load_reads_as_that_load_in_the_observation_means():
    """`morning_means` normalises the states (a steady daily load w reads as latent w)."""
    p = _params()
    decays = channel_decays(p)
    w = np.array([0.5, 1.0, 1.5])
    state = banister.steady_morning_state(w, 0.2 * w, decays)
    means = morning_means(p, state, decays)
    latents = np.stack([w, w, 0.2 * w], axis=1)[:, None, :]
    expected = observation_means(p, latents)
    for target in ("hrv", "rhr", "recovery"):
        np.testing.assert_allclose(means[target], expected[target], rtol=1e-9)


def test_a_calendar_of_transitions_is_the_simulated_calendar_without_noise():
    """`simulate_observations` with no noise is `transition` + `observe`, day by day."""
    p = _params()
    for target in ("hrv", "rhr", "rec"):
        p[f"sigma_{target}"] = np.zeros(3)
    rng = np.random.default_rng(2)
    load, hi = rng.uniform(0, 2, 60), rng.uniform(0, 0.5, 60)
    sim = simulate_observations(p, load, hi, np.random.default_rng(0))
    params = AthleteParams.from_mapping(p)
    decays = channel_decays(p)
    zero = np.zeros((3, 3))
    state = AthleteState(banister.steady_morning_state(np.mean(load[:7]), np.mean(hi[:7]),
                                                       decays), None, zero, zero)
    for day in range(60):
        m = observe(state, params)
        np.testing.assert_allclose(sim["hrv"][:, day], m["hrv"], rtol=1e-9)
        np.testing.assert_allclose(sim["rhr"][:, day], m["rhr"], rtol=1e-9)
        state = transition(state, params, (load[day], hi[day]), None)


def test_the_ar1_update_is_written_once():
    """DESIGN §2: every caller steps the noise through `observation.ar1_step`."""
    pattern = re.compile(r"phi\S* \* [^\n]*\+[^\n]*sqrt\(1(\.0)? - phi")
    writers = [path.relative_to(ROOT).as_posix()
               for package in ("physiology_model", "simulator", "agents", "analysis")
               for path in (ROOT / package).rglob("*.py") if pattern.search(path.read_text())]
    assert writers == ["physiology_model/dynamics/observation.py"]
