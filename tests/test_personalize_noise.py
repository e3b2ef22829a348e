"""The personalisation's prewhitening under the two-component noise: the Kalman innovations give
the exact Gaussian likelihood of the linear blocks, and reduce to the AR(1) prewhitening."""

import numpy as np
import pytest
from scipy import stats

from physiology_model.model.drift import NoiseComponents
from physiology_model.model.personalize import _gaussian_linear, _kalman_whiten, _prewhiten


def _series(seed=0, n_days=60):
    rng = np.random.default_rng(seed)
    y = rng.normal(4.0, 0.3, n_days)
    y[[3, 4, 10, 11, 12, 30]] = np.nan
    x = np.stack([np.ones(n_days), rng.normal(0, 1, n_days), rng.normal(0, 1, n_days)])[None]
    return y, np.repeat(x, 2, axis=0)


def test_with_no_slow_share_the_kalman_whitening_is_the_ar1_prewhitening():
    y, x = _series()
    phi = np.array([0.3, 0.6])
    want = _prewhiten(y, x, phi)
    got = _kalman_whiten(y, x, NoiseComponents(np.zeros(2), np.zeros(2), phi))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_marginal_likelihood_equals_the_multivariate_normal_of_the_whole_series():
    """β ~ N(m0, diag(s0²)), y = Xβ + r, r with the two-component covariance: the conjugate
    update on the whitened series gives the exact log p(y) (fails if a gap or the slow
    component is handled wrongly)."""
    y, x = _series(seed=1)
    comp = NoiseComponents(np.array([0.5, 0.3]), np.array([0.98, 0.95]), np.array([0.2, 0.4]))
    sigma = np.array([0.25, 0.4])
    m0 = np.array([[4.0, 0.0, 0.1], [3.9, 0.05, 0.0]])
    s0 = np.array([[0.5, 0.1, 0.2], [0.3, 0.2, 0.1]])
    y_t, x_t, log_c = _kalman_whiten(y, x, comp)
    _, _, log_ml = _gaussian_linear(y_t, x_t, log_c, sigma, m0, s0)
    days = np.flatnonzero(~np.isnan(y))
    lag = np.abs(days[:, None] - days[None, :])
    for m in range(2):
        noise = sigma[m] ** 2 * (comp.share[m] * comp.phi_slow[m] ** lag
                                 + (1 - comp.share[m]) * comp.phi_fast[m] ** lag)
        xm = x[m][:, days].T
        cov = noise + xm @ np.diag(s0[m] ** 2) @ xm.T
        want = stats.multivariate_normal.logpdf(y[days], xm @ m0[m], cov)
        assert log_ml[m] == pytest.approx(want, rel=1e-9)
