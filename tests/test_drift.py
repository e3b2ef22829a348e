"""The two-component residual noise: its Kalman filter against exact Gaussian conditioning, and
where its components come from (the posterior's own, or an old model's drift setting)."""

import numpy as np
import pytest

from physiology_model.model.drift import (
    NO_DRIFT,
    DriftCase,
    NoiseComponents,
    SlowDrift,
    filter_residuals,
    forecast_residual,
    next_day_crps,
    noise_components,
    select_drift,
)


def _autocov(drift: SlowDrift, sigma: float, phi: float, lags: np.ndarray) -> np.ndarray:
    phi_f = float(drift.fast_phi(np.array([phi]))[0])
    return sigma ** 2 * (drift.fraction * drift.phi_slow ** lags
                         + (1.0 - drift.fraction) * phi_f ** lags)


def _exact(resid: np.ndarray, drift: SlowDrift, sigma: float, phi: float, last: int, k: int):
    """Mean and SD of r[last + k] given the observed r[:last + 1], by conditioning the joint
    Gaussian of the whole path directly."""
    days = np.arange(last + k + 1)
    cov = _autocov(drift, sigma, phi, np.abs(days[:, None] - days[None, :]))
    seen = np.flatnonzero(~np.isnan(resid[:last + 1]))
    target = last + k
    if not seen.size:
        return 0.0, np.sqrt(cov[target, target])
    c_oo = cov[np.ix_(seen, seen)]
    c_to = cov[target, seen]
    gain = np.linalg.solve(c_oo, c_to)
    return float(gain @ resid[seen]), float(np.sqrt(cov[target, target] - gain @ c_to))


@pytest.mark.parametrize("drift", [NO_DRIFT, SlowDrift(0.4, 0.98, 0.3), SlowDrift(0.6, 0.9, None)])
def test_kalman_forecast_equals_exact_gaussian_conditioning_with_gaps(drift):
    rng = np.random.default_rng(0)
    n_days, sigma, phi = 30, 0.3, 0.45
    resid = rng.normal(0.0, sigma, n_days)
    resid[[0, 1, 5, 6, 7, 12, 20, 21, 22, 23]] = np.nan
    states = filter_residuals(resid[None, :], np.array([sigma]),
                              drift.components(np.array([phi])))
    for last in (0, 1, 4, 8, 13, 23, 29):
        for k in (1, 3, 7):
            if last + k >= n_days + 5:
                continue
            mu, sd = forecast_residual(states, np.array([last]), np.array([[k]]))
            want_mu, want_sd = _exact(np.concatenate([resid, np.full(k, np.nan)]), drift,
                                      sigma, phi, last, k)
            assert mu[0, 0, 0] == pytest.approx(want_mu, abs=1e-9)
            assert sd[0, 0, 0] == pytest.approx(want_sd, abs=1e-9)


def test_without_drift_the_filter_is_the_ar1_conditioned_on_the_last_observation():
    sigma, phi = np.array([0.2, 0.5]), np.array([0.3, 0.7])
    resid = np.array([[0.1, np.nan, np.nan, 0.4, np.nan], [-0.3, np.nan, np.nan, 0.2, np.nan]])
    states = filter_residuals(resid, sigma, NO_DRIFT.components(phi))
    mu, sd = forecast_residual(states, np.array([4]), np.array([[1, 2]]))
    k = np.array([2, 3])  # days since the last observation (day 3)
    np.testing.assert_allclose(mu[0], phi[:, None] ** k * resid[:, [3]])
    np.testing.assert_allclose(sd[0], sigma[:, None] * np.sqrt(1 - phi[:, None] ** (2 * k)))


def test_matched_fast_coefficient_keeps_the_lag1_autocorrelation():
    drift = SlowDrift(0.3, 0.95, None)
    phi = np.array([0.5, 0.6])
    lag1 = drift.fraction * drift.phi_slow + (1 - drift.fraction) * drift.fast_phi(phi)
    np.testing.assert_allclose(lag1, phi)
    assert drift.fast_phi(np.array([0.1]))[0] == 0.0  # clipped: the slow part alone exceeds φ


@pytest.mark.parametrize("bad", [{"fraction": 1.0}, {"fraction": -0.1}, {"phi_slow": 1.0},
                                 {"phi_fast": 1.2}])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SlowDrift(**bad)


def test_the_posterior_components_take_precedence_over_an_old_drift_setting():
    old = SlowDrift(0.3, 0.95, 0.2)
    p = {"phi_hrv": np.array([0.4, 0.5])}
    from_drift = noise_components(p, "hrv", old)
    np.testing.assert_array_equal(from_drift.share, [0.3, 0.3])
    np.testing.assert_array_equal(from_drift.phi_fast, [0.2, 0.2])
    # w = 0 everywhere (a version-3 fit that found no slow part, or NOISE_DEFAULTS): the drift
    # of an old file is still honoured; any positive share means the posterior has its own.
    zero = noise_components({**p, "slow_hrv": np.zeros(2), "phi_slow_hrv": np.zeros(2)}, "hrv",
                            old)
    for field in ("share", "phi_slow", "phi_fast"):
        np.testing.assert_array_equal(getattr(zero, field), getattr(from_drift, field))
    own = noise_components({**p, "slow_hrv": np.array([0.5, 0.6]),
                            "phi_slow_hrv": np.array([0.98, 0.97])}, "hrv", old)
    np.testing.assert_array_equal(own.share, [0.5, 0.6])
    np.testing.assert_array_equal(own.phi_slow, [0.98, 0.97])
    np.testing.assert_array_equal(own.phi_fast, [0.4, 0.5])
    assert isinstance(own, NoiseComponents)


def _simulated_cases(drift: SlowDrift, n_athletes=12, n_days=150, sigma=0.3, phi=0.3, seed=1):
    rng = np.random.default_rng(seed)
    phi_f = float(drift.fast_phi(np.array([phi]))[0])
    cases = []
    for _ in range(n_athletes):
        slow = np.zeros(n_days)
        fast = np.zeros(n_days)
        s_sd, f_sd = np.sqrt(drift.fraction) * sigma, np.sqrt(1 - drift.fraction) * sigma
        slow[0], fast[0] = rng.normal(0, s_sd), rng.normal(0, f_sd)
        for t in range(1, n_days):
            slow[t] = drift.phi_slow * slow[t - 1] + rng.normal(0, s_sd * np.sqrt(1 - drift.phi_slow ** 2))
            fast[t] = phi_f * fast[t - 1] + rng.normal(0, f_sd * np.sqrt(1 - phi_f ** 2))
        r = slow + fast
        r[rng.random(n_days) < 0.15] = np.nan
        draws = 5  # posterior draws that differ in their means (constant offsets)
        offsets = rng.normal(0, 0.02, draws)[:, None]
        cases.append(DriftCase(r[None, :] - offsets, np.full(draws, sigma), np.full(draws, phi), 14))
    return cases


def test_select_drift_finds_the_slow_component_of_drifting_series():
    truth = SlowDrift(0.5, 0.99, 0.1)
    best, scores = select_drift(_simulated_cases(truth))
    assert best.fraction >= 0.3
    assert scores["crps"] < 0.97 * scores["crps_ar1"]
    assert scores["tried"] > 10


def test_select_drift_gains_little_on_plain_ar1_series():
    _, scores = select_drift(_simulated_cases(NO_DRIFT))
    assert scores["crps"] > 0.99 * scores["crps_ar1"]


def test_next_day_crps_needs_an_observed_day():
    case = DriftCase(np.full((2, 20), np.nan), np.ones(2), np.full(2, 0.3), 5)
    with pytest.raises(ValueError, match="no observed day"):
        next_day_crps([case], NO_DRIFT)
