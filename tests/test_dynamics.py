"""The athlete-day of physiology_model.dynamics: written once, and what it computes."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

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


# -- the two-component noise (issue 24): slow (share w, φ_s) + fast (1 − w, φ) ---------------


def _old_single_ar1(p: dict[str, np.ndarray], load: np.ndarray, hi: np.ndarray,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The calendar simulation as it was before the slow component (one AR(1) per signal)."""
    from physiology_model.dynamics.observation import latent_states, logit_to_recovery

    means = observation_means(p, latent_states(p, load, hi))
    out = {}
    names = {"hrv": "hrv", "rhr": "rhr", "recovery": "rec"}
    for target, m in means.items():
        phi, sigma = p[f"phi_{names[target]}"], p[f"sigma_{names[target]}"]
        e = rng.standard_normal(m.shape)
        r = np.empty_like(m)
        r[:, 0] = sigma * e[:, 0]
        for t in range(1, m.shape[1]):
            r[:, t] = ar1_step(r[:, t - 1], phi, sigma, e[:, t])
        y = m + r
        out[target] = logit_to_recovery(y) if target == "recovery" else y
    return out


def test_with_no_slow_share_the_noise_is_the_old_single_ar1_draw_for_draw():
    """A parameter set without the slow keys (an old file) or with w = 0 simulates exactly
    what the single AR(1) did, with the same random numbers."""
    p = _params()
    rng = np.random.default_rng(3)
    load, hi = rng.uniform(0, 2, 80), rng.uniform(0, 0.5, 80)
    old = _old_single_ar1(p, load, hi, np.random.default_rng(7))
    with_zero = dict(p, slow_hrv=np.zeros(3), slow_rhr=np.zeros(3), slow_rec=np.zeros(3),
                     phi_slow_hrv=np.full(3, 0.9), phi_slow_rhr=np.zeros(3),
                     phi_slow_rec=np.zeros(3))
    for params in (p, with_zero):
        new = simulate_observations(params, load, hi, np.random.default_rng(7))
        for target in old:
            np.testing.assert_array_equal(new[target], old[target])


def _slow_params(n: int, w: float, phi_slow: float) -> dict[str, np.ndarray]:
    p = _params(n)
    for target in ("hrv", "rhr", "rec"):
        p[f"slow_{target}"] = np.full(n, w)
        p[f"phi_slow_{target}"] = np.full(n, phi_slow)
        p[f"phi_{target}"] = np.full(n, 0.3)
    return p


def _autocorrelation(x: np.ndarray, lag: int) -> float:
    """Pooled lag-k autocorrelation of zero-mean series x (S, T)."""
    return float(np.sum(x[:, lag:] * x[:, :-lag]) / np.sum(x * x))


def test_the_two_component_noise_has_its_variance_and_autocorrelations():
    """Marginal variance σ² and lag-k autocorrelation w·φ_s^k + (1 − w)·φ^k, both in the
    calendar simulation and in a calendar of `transition`s: without the slow component the
    lag-20 autocorrelation would be ≈ 0, without the fast one the lag-1 would be φ_s."""
    n, days, w, phi_slow, phi = 400, 600, 0.4, 0.95, 0.3
    p = _slow_params(n, w, phi_slow)
    load = np.zeros(days)
    noiseless = {k: v for k, v in p.items()}
    for target in ("hrv", "rhr", "rec"):
        noiseless[f"sigma_{target}"] = np.zeros(n)
    mean = simulate_observations(noiseless, load, load, np.random.default_rng(0))["rhr"]
    calendar = simulate_observations(p, load, load, np.random.default_rng(1))["rhr"] - mean
    params = AthleteParams.from_mapping(p)
    rng = np.random.default_rng(2)
    from physiology_model.dynamics.step import DayNoise, stationary_noise

    fast, slow = stationary_noise(params, DayNoise(rng.standard_normal((n, 3)),
                                                   rng.standard_normal((n, 3))))
    state = AthleteState(np.zeros((n, banister.N_CHANNELS)), None, fast, slow)
    stepped = np.empty((n, days))
    for day in range(days):
        stepped[:, day] = state.noise[:, 1]
        state = transition(state, params, (0.0, 0.0), DayNoise(rng.standard_normal((n, 3)),
                                                                rng.standard_normal((n, 3))))
    sigma = p["sigma_rhr"][:, None]
    for series in (calendar, stepped):
        z = series / sigma
        assert np.mean(z ** 2) == pytest.approx(1.0, abs=0.05)
        for lag in (1, 5, 20):
            expected = w * phi_slow ** lag + (1 - w) * phi ** lag
            assert _autocorrelation(z, lag) == pytest.approx(expected, abs=0.03), lag


def test_the_slow_split_is_the_kalman_filter_of_the_fit():
    """`observation.split_residual`, one day at a time, is `model.drift.filter_residuals`
    (the fit's two-component filter) on the same residuals, with days missing."""
    from physiology_model.dynamics.observation import component_sds, split_residual
    from physiology_model.model.drift import SlowDrift, filter_residuals

    rng = np.random.default_rng(5)
    draws, days, w, phi_slow, phi = 6, 50, 0.35, 0.9, 0.4
    sigma = rng.uniform(0.1, 0.3, draws)
    resid = rng.normal(0, 0.2, (draws, days)).cumsum(axis=1) * 0.3
    resid[:, [3, 4, 17, 30]] = np.nan
    expected = filter_residuals(resid, sigma, SlowDrift(fraction=w, phi_slow=phi_slow,
                                                        phi_fast=phi).components(
                                                            np.full(draws, phi)))
    sd_fast, sd_slow = component_sds(sigma, np.full(draws, w))
    slow, fast = np.zeros(draws), np.zeros(draws)
    cov = np.stack([sd_slow ** 2, sd_fast ** 2, np.zeros(draws)], axis=-1)
    for t in range(days):
        slow, fast, cov = split_residual(resid[:, t], slow, fast, cov, np.full(draws, phi),
                                         np.full(draws, phi_slow), sigma, np.full(draws, w))
        np.testing.assert_allclose(slow, expected.mean[t, :, 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fast, expected.mean[t, :, 1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cov, expected.cov[t], rtol=1e-9, atol=1e-12)
        if np.isfinite(resid[0, t]):
            np.testing.assert_allclose(slow + fast, resid[:, t], rtol=1e-12)


def _coupled_params(n: int, rho: tuple[float, float, float]) -> dict[str, np.ndarray]:
    p = _slow_params(n, 0.4, 0.95)
    p["phi_rhr"] = np.full(n, 0.6)  # unequal coefficients: the start's correlation differs
    for name, r in zip(("rho_hrv_rhr", "rho_hrv_rec", "rho_rhr_rec"), rho):
        p[name] = np.full(n, r)
    return p


def test_coupled_signals_have_their_correlation_in_both_simulations():
    """Correlated innovations (`params.COUPLING_PARAMS`) leave each signal's own noise as it
    was (variance σ², its autocorrelations) and give two signals with equal coefficients the
    same-day correlation ρ, from the first morning on, in the calendar simulation and in a
    calendar of `transition`s."""
    from physiology_model.dynamics.step import DayNoise, stationary_noise

    n, days, rho = 400, 300, (-0.6, 0.7, -0.4)
    p = _coupled_params(n, rho)
    p["phi_rhr"] = np.full(n, 0.3)  # all three alike: the same-day correlation is ρ itself
    load = np.zeros(days)
    noiseless = dict(p, sigma_hrv=np.zeros(n), sigma_rhr=np.zeros(n), sigma_rec=np.zeros(n))
    mean = simulate_observations(noiseless, load, load, np.random.default_rng(0))
    sim = simulate_observations(p, load, load, np.random.default_rng(1))
    calendar = {t: (sim[t] - mean[t]) for t in ("hrv", "rhr")}
    params = AthleteParams.from_mapping(p)
    rng = np.random.default_rng(2)
    fast, slow = stationary_noise(params, DayNoise(rng.standard_normal((n, 3)),
                                                   rng.standard_normal((n, 3))))
    state = AthleteState(np.zeros((n, banister.N_CHANNELS)), None, fast, slow)
    stepped = np.empty((n, days, 3))
    for day in range(days):
        stepped[:, day] = state.noise
        state = transition(state, params, (0.0, 0.0), DayNoise(rng.standard_normal((n, 3)),
                                                                rng.standard_normal((n, 3))))
    for hrv, rhr in ((calendar["hrv"], calendar["rhr"]), (stepped[..., 0], stepped[..., 1])):
        z_hrv, z_rhr = hrv / p["sigma_hrv"][:, None], rhr / p["sigma_rhr"][:, None]
        assert np.mean(z_rhr ** 2) == pytest.approx(1.0, abs=0.05)
        assert _autocorrelation(z_rhr, 1) == pytest.approx(0.4 * 0.95 + 0.6 * 0.3, abs=0.03)
        assert np.mean(z_hrv * z_rhr) == pytest.approx(rho[0], abs=0.04)
        assert np.mean(z_hrv[:, 0] * z_rhr[:, 0]) == pytest.approx(rho[0], abs=0.12)
    z = stepped / np.stack([p[f"sigma_{t}"] for t in ("hrv", "rhr", "rec")], axis=-1)[:, None]
    assert np.mean(z[..., 0] * z[..., 2]) == pytest.approx(rho[1], abs=0.04)
    assert np.mean(z[..., 1] * z[..., 2]) == pytest.approx(rho[2], abs=0.04)


def test_uncoupled_signals_are_simulated_draw_for_draw_as_before():
    """Couplings of 0 (or none, an old file) leave every simulated value as it was."""
    p = _slow_params(3, 0.4, 0.95)
    load = np.random.default_rng(3).uniform(0, 2, 60)
    zero = dict(p, rho_hrv_rhr=np.zeros(3), rho_hrv_rec=np.zeros(3), rho_rhr_rec=np.zeros(3))
    a = simulate_observations(p, load, load * 0.1, np.random.default_rng(7))
    b = simulate_observations(zero, load, load * 0.1, np.random.default_rng(7))
    for target in a:
        np.testing.assert_array_equal(a[target], b[target])


def test_the_stationary_start_has_the_correlation_of_the_stepped_process():
    """Unequal coefficients: the first morning's correlation of two stationary AR(1)s with
    correlated innovations is ρ·√(1 − φ₁²)·√(1 − φ₂²)/(1 − φ₁φ₂), which `transition`
    reaches after many days."""
    from physiology_model.dynamics.step import DayNoise, stationary_noise

    n = 20000
    p = _coupled_params(n, (-0.8, 0.5, -0.3))
    p.update(slow_hrv=np.zeros(n), slow_rhr=np.zeros(n), slow_rec=np.zeros(n))
    params = AthleteParams.from_mapping(p)
    rng = np.random.default_rng(5)
    fast, slow = stationary_noise(params, DayNoise(rng.standard_normal((n, 3)),
                                                   rng.standard_normal((n, 3))))
    state = AthleteState(np.zeros((n, banister.N_CHANNELS)), None, fast, slow)
    start = state.noise.copy()
    for _ in range(40):
        state = transition(state, params, (0.0, 0.0), DayNoise(rng.standard_normal((n, 3)),
                                                                rng.standard_normal((n, 3))))

    def corr(x):  # of the standardised noises (the athletes' σ differ)
        return float(np.corrcoef(x[:, 0] / p["sigma_hrv"], x[:, 1] / p["sigma_rhr"])[0, 1])

    expected = -0.8 * np.sqrt((1 - 0.3 ** 2) * (1 - 0.6 ** 2)) / (1 - 0.3 * 0.6)
    assert corr(start) == pytest.approx(expected, abs=0.02)
    assert corr(state.noise) == pytest.approx(expected, abs=0.02)
