"""Latent performance: priors, the saturating (Busso) dose-response, fitting, the Couzens check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import nnls

from physiology_model.dynamics import banister
from physiology_model.dynamics import performance as pf

COUZENS = Path(__file__).resolve().parents[1] / "data" / "real" / "couzens" / "u01"


# ---------------------------------------------------------------------------------------------
# priors


def test_priors_sample_finite_ordered_and_reproducible():
    draws = pf.sample_performance_params(2000, np.random.default_rng(3))
    assert draws.n == 2000
    for name in ("fitness_gain", "variable_fatigue_gain", "tau_fit_days", "tau_fat_days",
                 "tau_gain_days", "baseline"):
        values = np.asarray(getattr(draws, name))
        assert values.shape == (2000,) and np.all(np.isfinite(values)), name
    assert np.all(draws.fitness_gain > 0) and np.all(draws.variable_fatigue_gain > 0)
    assert np.all(draws.fatigue_gain == 0)  # Busso's model has no fixed fatigue gain
    assert np.all(draws.tau_fat_days < draws.tau_fit_days)
    again = pf.sample_performance_params(2000, np.random.default_rng(3))
    np.testing.assert_array_equal(draws.fitness_gain, again.fitness_gain)
    linear = pf.sample_performance_params(500, np.random.default_rng(4), variable_dose=False)
    assert linear.tau_gain_days is None and np.all(linear.fatigue_gain > 0)
    assert np.all(linear.variable_fatigue_gain == 0)


def test_prior_medians_and_intervals_are_the_documented_ones():
    priors = pf.PERFORMANCE_PRIORS
    lo, hi = priors["tau_fit_days"].interval(0.9)
    assert 25 < lo < 35 and 55 < hi < 70  # "order of 30-60 d"
    lo, hi = priors["tau_fat_days"].interval(0.9)
    assert 4 < lo < 6 and 14 < hi < 18  # "order of 5-15 d"
    lo, hi = priors["fatigue_ratio"].interval(0.9)
    assert 1.0 < lo < 1.5 and 3.0 < hi < 3.5  # "order of 1.5-3"
    draws = priors["tau_gain_days"].sample(20000, np.random.default_rng(0))
    assert np.median(draws) == pytest.approx(3.5, rel=0.03)


def test_build_params_gives_the_stated_fitness_effect_and_agreement_at_reference_load():
    busso = pf.build_performance_params(40.0, 8.0, 2.0, 12.0, tau_gain_days=3.0,
                                        reference_load=1.5, baseline=100.0)
    unit = banister.steady_morning_state(1.0, 0.0, busso.decays())
    assert busso.fitness_gain * unit[banister.FITNESS] == pytest.approx(12.0)
    linear = pf.linear_counterpart(busso, 1.5)
    assert linear.fatigue_gain == pytest.approx(2.0 * linear.fitness_gain)
    # the two models agree exactly at the steady reference load, and differ away from it
    assert pf.steady_performance(1.5, busso) == pytest.approx(pf.steady_performance(1.5, linear))
    assert pf.steady_performance(3.0, busso) < pf.steady_performance(3.0, linear) - 1.0


# ---------------------------------------------------------------------------------------------
# saturation


def test_typical_busso_draw_is_an_inverted_u_in_steady_load():
    params = pf.typical_performance_params()
    loads = np.linspace(0.0, 6.0, 601)
    perf = pf.steady_performance(loads, params)
    top = int(np.argmax(perf))
    assert 0 < top < len(loads) - 1, "the optimum must be interior"
    assert np.all(np.diff(perf[: top + 1]) > 0) and np.all(np.diff(perf[top:]) < 0)
    assert perf[0] == pytest.approx(100.0)
    assert perf[-1] < perf[0], "far too much load is worse than none"
    best = float(pf.optimal_steady_load(params))
    assert best == pytest.approx(loads[top], abs=0.01)
    assert 0.5 < best < 3.0  # near the habitual (reference) load of 1


def test_inverted_u_holds_in_simulation_not_only_in_closed_form():
    """Hold a constant load for 1000 days from untrained: the optimal load ends highest."""
    params = pf.typical_performance_params()
    best = float(pf.optimal_steady_load(params))
    levels = np.array([0.4 * best, best, 2.5 * best])
    loads = np.repeat(levels[:, None], 1000, axis=1)
    final = pf.simulate_performance(loads, params)[:, -1]
    assert final[1] > final[0] and final[1] > final[2]
    np.testing.assert_allclose(final, pf.steady_performance(levels, params), rtol=1e-6)


def test_linear_model_is_monotone_in_steady_load():
    linear = pf.typical_performance_params(variable_dose=False)
    loads = np.linspace(0.0, 20.0, 201)
    perf = pf.steady_performance(loads, linear)
    assert np.all(np.diff(perf) > 0), "linear Banister: more load is always better"
    assert np.isinf(pf.optimal_steady_load(linear))
    costly = pf.build_performance_params(42.0, 20.0, 4.0, 10.0)  # fatigue dominates
    assert np.all(np.diff(pf.steady_performance(loads, costly)) < 0)
    assert pf.optimal_steady_load(costly) == 0.0


def test_every_busso_prior_draw_saturates_and_optimum_is_vectorised():
    draws = pf.sample_performance_params(300, np.random.default_rng(11))
    best = pf.optimal_steady_load(draws)
    assert best.shape == (300,) and np.all(np.isfinite(best)) and np.all(best > 0)
    loads = np.linspace(0.0, 3.0 * best.max(), 4001)
    perf = pf.steady_performance(loads[:, None], draws)  # (L, n)
    assert perf.shape == (4001, 300)
    grid_best = loads[np.argmax(perf, axis=0)]
    np.testing.assert_allclose(grid_best, best, atol=loads[1] - loads[0])


def test_simulate_performance_batches_over_athletes():
    rng = np.random.default_rng(5)
    draws = pf.sample_performance_params(4, rng)
    loads = rng.gamma(2.0, 0.5, (4, 90))
    batch = pf.simulate_performance(loads, draws)
    assert batch.shape == (4, 90)
    for i in range(4):
        one = pf.PerformanceParams(*(np.asarray(getattr(draws, f))[i] for f in (
            "fitness_gain", "fatigue_gain", "variable_fatigue_gain", "tau_fit_days",
            "tau_fat_days", "tau_gain_days", "baseline")))
        np.testing.assert_allclose(batch[i], pf.simulate_performance(loads[i], one))


# ---------------------------------------------------------------------------------------------
# fitting


def test_two_column_nnls_matches_scipy():
    rng = np.random.default_rng(2)
    y = rng.normal(size=60)
    x1 = rng.normal(size=(7, 1, 60))
    x2 = rng.normal(size=(1, 5, 60))
    g1, g2, sse = pf._nonnegative_two_column(x1, x2, y)
    for i in range(7):
        for j in range(5):
            a = np.column_stack([x1[i, 0] - x1[i, 0].mean(), x2[0, j] - x2[0, j].mean()])
            gains, resid = nnls(a, y - y.mean())
            np.testing.assert_allclose([g1[i, j], g2[i, j]], gains, atol=1e-8)
            assert sse[i, j] == pytest.approx(resid**2, abs=1e-8)


@pytest.mark.parametrize("variable", [False, True])
def test_fit_recovers_known_parameters_from_noiseless_data(variable):
    rng = np.random.default_rng(8)
    loads = rng.gamma(2.0, 0.6, 700) * (rng.random(700) > 0.25)
    truth = pf.build_performance_params(32.0, 6.0, 2.0, 10.0,
                                        tau_gain_days=3.0 if variable else None,
                                        reference_load=float(loads.mean()))
    y = pf.predict_banister_series(truth, loads)
    days = np.sort(rng.choice(np.arange(30, 700), 250, replace=False))
    fit = pf.fit_banister_series(
        y, loads, days, tau_fit_grid=np.array([16.0, 32.0, 64.0]),
        tau_fat_grid=np.array([3.0, 6.0, 12.0]),
        tau_gain_grid=np.array([1.5, 3.0, 6.0]) if variable else None)
    got = fit.params
    assert (got.tau_fit_days, got.tau_fat_days) == (32.0, 6.0)
    assert got.fitness_gain == pytest.approx(float(truth.fitness_gain), rel=1e-6)
    if variable:
        assert got.tau_gain_days == 3.0
        assert got.variable_fatigue_gain == pytest.approx(float(truth.variable_fatigue_gain),
                                                          rel=1e-6)
    else:
        assert got.fatigue_gain == pytest.approx(float(truth.fatigue_gain), rel=1e-6)
    assert fit.sse < 1e-12


def test_couzens_check_runs_and_returns_finite_scores():
    config = pf.CouzensCheckConfig(
        tau_fit_grid=(10.0, 20.0, 40.0, 80.0), tau_fat_grid=(1.0, 3.0, 9.0, 27.0),
        tau_gain_grid=(1.0, 3.0, 9.0), n_prior_draws=20)
    result = pf.check_against_couzens(COUZENS, config)
    assert result["data"]["ef_days"] == 539  # days with a run EF in the shipped tables
    assert result["data"]["test_ef_days"] == round(539 * 0.2)
    for name in ("constant", "ctl_only", "banister_linear", "busso", "prior_typical_linear",
                 "prior_typical_busso"):
        scores = result["models"][name]
        for key in ("r2_train", "r2_test", "rmse_train", "rmse_test"):
            assert np.isfinite(scores[key]), (name, key)
    models = result["models"]
    # nested least-squares models cannot fit worse in-sample than the constant
    assert models["banister_linear"]["r2_train"] >= -1e-12
    assert models["busso"]["r2_train"] >= models["constant"]["r2_train"] - 1e-12
    assert set(result["prior_check"]) >= {"linear.tau_fit_days", "busso.tau_gain_days"}
    assert result["config"]["n_prior_draws"] == 20


def test_evaluate_takes_parameters_per_athlete_or_per_athlete_and_draw():
    from dataclasses import replace

    rng = np.random.default_rng(0)
    params = pf.sample_performance_params(12, rng, variable_dose=True,
                                          reference_load=np.ones(12))
    states = rng.uniform(0.0, 2.0, (3, 4, banister.N_CHANNELS))
    grid = replace(params, **{k: np.asarray(v).reshape(3, 4) for k, v in vars(params).items()
                              if v is not None and np.ndim(v) == 1})
    flat = params.evaluate(states.reshape(12, banister.N_CHANNELS)).reshape(3, 4)
    np.testing.assert_array_equal(grid.evaluate(states), flat)
    # (n,) parameters against (n, k, channels) states: one set per athlete for all k
    per_athlete = replace(params, **{k: np.asarray(v)[:3] for k, v in vars(params).items()
                                     if v is not None and np.ndim(v) == 1})
    expected = np.stack([replace(per_athlete, **{k: np.asarray(v)[i] for k, v in
                                                 vars(per_athlete).items()
                                                 if v is not None and np.ndim(v) == 1})
                         .evaluate(states[i]) for i in range(3)])
    np.testing.assert_allclose(per_athlete.evaluate(states), expected, rtol=1e-12)
