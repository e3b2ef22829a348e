"""The forecast baselines: no look-ahead, the protocol, and each method's defining property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from physiology_model.dynamics import banister as bn
from physiology_model.features.preprocess import LOAD_COLUMNS
from physiology_model.model.forecasters import (
    TARGETS,
    BanisterLeastSquaresForecaster,
    GaussianAthleteForecaster,
    PersistenceForecaster,
    RidgeFeatureForecaster,
    RollingMeanForecaster,
    baseline_forecasters,
    check_origins,
    fit_banister_gains,
    normalised_states,
    ridge_path_out_of_fold,
    target_values,
)

PHYSIOLOGY_COLUMNS = ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min",
                      "sleep_efficiency_pct", "rem_pct", "deep_pct", "resp_rate_rpm",
                      "skin_temp_c", "skin_temp_dev_c", "spo2_pct", "injury", "readiness_self")
LOAD_INPUTS = LOAD_COLUMNS + ("session",)


def synthetic_athletes(rng: np.random.Generator, n_users: int = 6, n_days: int = 90,
                       missing: float = 0.1) -> pd.DataFrame:
    """Calendar-complete athletes whose ln HRV and RHR follow a Banister response plus AR(1)
    noise, with random holes in physiology and load."""
    frames = []
    decays = bn.decay_factors(42.0, 7.0)
    for u in range(n_users):
        n = n_days
        # Periodised: 8-week cycles of volume, so that fitness and fatigue can be told apart.
        cycle = 1.0 + 0.8 * np.sin(2 * np.pi * (np.arange(n) + 9 * u) / 56.0)
        w = cycle * rng.gamma(2.0, 0.5, n) * (rng.random(n) > 0.25)
        # Started trained, at the steady state of the mean load (the project's convention).
        states = bn.morning_states(w, None, decays,
                                   bn.steady_morning_state(w.mean(), 0.0, decays))
        fit = (1 - decays[bn.FITNESS]) * states[:, bn.FITNESS]
        fat = (1 - decays[bn.FATIGUE]) * states[:, bn.FATIGUE]
        noise = np.zeros(n)
        for d in range(1, n):
            noise[d] = 0.6 * noise[d - 1] + rng.normal(0, 0.08)
        ln_hrv = rng.normal(4.1, 0.2) + 0.1 * fit - 0.2 * fat + noise
        rhr = rng.normal(55, 4) - 2.0 * fit + 3.0 * fat - 10 * noise
        frame = pd.DataFrame({
            "user_id": f"a{u:02d}", "date": pd.date_range("2024-03-01", periods=n),
            "hrv_rmssd_ms": np.exp(ln_hrv), "rhr_bpm": rhr,
            "recovery_pct": np.clip(60 + 150 * (ln_hrv - ln_hrv.mean()), 1, 99),
            "sleep_min": rng.normal(420, 40, n), "resp_rate_rpm": rng.normal(15, 0.5, n),
            "load_trimp": 100 * w, "z4_min": rng.uniform(0, 10, n),
            "z5_min": rng.uniform(0, 5, n), "strength_min": rng.uniform(0, 20, n),
            "strain": rng.uniform(3, 18, n), "age": 30.0 + u, "sex": "female",
            "source": "whoop",
        })
        for column in ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min", "load_trimp"):
            frame.loc[rng.random(n) < missing, column] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return synthetic_athletes(np.random.default_rng(7))


@pytest.fixture(scope="module")
def fitted(cohort: pd.DataFrame) -> list:
    train = cohort[cohort["user_id"] != "a05"]
    return [f.fit(train) for f in baseline_forecasters()]


def _athlete(cohort: pd.DataFrame) -> pd.DataFrame:
    return cohort[cohort["user_id"] == "a05"].reset_index(drop=True)


def _perturb(frame: pd.DataFrame, d0: int, horizon: int, rng: np.random.Generator
             ) -> pd.DataFrame:
    """Scramble what a forecast at d0 may not see: physiology of rows ≥ d0 (values and which
    are missing) and loads of rows ≥ d0+horizon−1; add columns the frame lacked."""
    out = frame.copy()
    for column in PHYSIOLOGY_COLUMNS:
        values = rng.uniform(10, 90, len(out) - d0)
        values[rng.random(values.size) < 0.3] = np.nan
        out.loc[d0:, column] = values
    first_unknown_load = d0 + horizon - 1
    for column in LOAD_INPUTS:
        rows = out.index >= first_unknown_load
        if column == "session":
            out["session"] = out.get("session", pd.Series([None] * len(out))).astype(object)
            out.loc[rows, "session"] = "hiit"
        else:
            values = rng.uniform(0, 300, int(rows.sum()))
            values[rng.random(values.size) < 0.3] = np.nan
            out.loc[rows, column] = values
    return out


@pytest.mark.parametrize("d0,horizon", [(30, 1), (30, 7), (61, 1), (55, 4), (83, 7)])
def test_no_look_ahead(fitted: list, cohort: pd.DataFrame, d0: int, horizon: int) -> None:
    frame = _athlete(cohort)
    perturbed = _perturb(frame, d0, horizon, np.random.default_rng(d0 * 10 + horizon))
    for forecaster in fitted:
        conditioned = forecaster.condition(frame.iloc[:25])
        origins = np.array([d0])
        a = conditioned.forecast(frame, origins, horizon, 50, np.random.default_rng(1))
        b = conditioned.forecast(perturbed, origins, horizon, 50, np.random.default_rng(1))
        ga = conditioned.forecast_gaussian(frame, origins, horizon)
        gb = conditioned.forecast_gaussian(perturbed, origins, horizon)
        for target in TARGETS:
            np.testing.assert_array_equal(a[target], b[target], err_msg=forecaster.name)
            np.testing.assert_array_equal(ga[target][0], gb[target][0], err_msg=forecaster.name)
            np.testing.assert_array_equal(ga[target][1], gb[target][1], err_msg=forecaster.name)


def test_look_ahead_test_is_sensitive(fitted: list, cohort: pd.DataFrame) -> None:
    """The perturbation above would be caught: one row earlier, every baseline changes."""
    frame = _athlete(cohort)
    d0, horizon = 61, 4
    # Physiology of row d0−1 and load of row d0+h−2 are allowed inputs.
    changed_phys = frame.copy()
    changed_phys.loc[d0 - 1, ["hrv_rmssd_ms", "rhr_bpm", "recovery_pct"]] = [150.0, 80.0, 5.0]
    changed_load = frame.copy()
    changed_load.loc[d0 + horizon - 2, "load_trimp"] = 900.0
    for forecaster in fitted:
        conditioned = forecaster.condition(frame.iloc[:25])
        base = conditioned.forecast_gaussian(frame, np.array([d0]), horizon)["hrv"][0]
        phys = conditioned.forecast_gaussian(changed_phys, np.array([d0]), horizon)["hrv"][0]
        load = conditioned.forecast_gaussian(changed_load, np.array([d0]), horizon)["hrv"][0]
        moved = not np.array_equal(base, phys) or not np.array_equal(base[:, -1], load[:, -1])
        assert moved, forecaster.name
        if "banister" in forecaster.name or forecaster.name == "ridge":
            assert base[0, -1] != load[0, -1], forecaster.name
            assert np.array_equal(base[:, :-1], load[:, :-1]), forecaster.name


def test_protocol_shapes_and_errors(fitted: list, cohort: pd.DataFrame) -> None:
    frame = _athlete(cohort)
    origins = np.arange(20, 80, dtype=np.int64)
    for forecaster in fitted:
        conditioned = forecaster.condition(frame.iloc[:20])
        assert isinstance(conditioned, GaussianAthleteForecaster)
        out = conditioned.forecast(frame, origins, 7, 30, np.random.default_rng(0))
        assert set(out) == set(TARGETS)
        for target in TARGETS:
            assert out[target].shape == (origins.size, 30, 7)
            assert np.isfinite(out[target]).all()
        again = conditioned.forecast(frame, origins, 7, 30, np.random.default_rng(0))
        np.testing.assert_array_equal(out["hrv"], again["hrv"])
        with pytest.raises(ValueError, match="origins"):
            conditioned.forecast(frame, np.array([0]), 1, 5, np.random.default_rng(0))
        with pytest.raises(ValueError, match="origins"):
            conditioned.forecast(frame, np.array([len(frame) - 3]), 7, 5,
                                 np.random.default_rng(0))
    with pytest.raises(ValueError, match="calendar-filled"):
        check_origins(frame.drop(index=10), np.array([20]), 1)
    with pytest.raises(RuntimeError, match="not fitted"):
        PersistenceForecaster().condition(frame)
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeFeatureForecaster().condition(frame)


def test_persistence_is_last_value_with_random_walk_spread(cohort: pd.DataFrame) -> None:
    frame = _athlete(cohort)
    frame.loc[48:49, "rhr_bpm"] = np.nan  # last RHR before origin 50 is row 47
    conditioned = PersistenceForecaster().fit(cohort).condition(frame.iloc[:40])
    mean, sd = conditioned.forecast_gaussian(frame, np.array([50]), 5)["rhr"]
    np.testing.assert_allclose(mean, frame.loc[47, "rhr_bpm"])
    y = frame["rhr_bpm"].to_numpy()[:40]
    steps = np.diff(y)[np.isfinite(np.diff(y))]
    step_sd = np.sqrt(np.mean(steps ** 2))
    np.testing.assert_allclose(sd[0], step_sd * np.sqrt(np.arange(50, 55) - 47))
    # The sample paths have these marginals.
    draws = conditioned.forecast(frame, np.array([50]), 5, 20000, np.random.default_rng(3))
    np.testing.assert_allclose(draws["rhr"][0].std(axis=0), sd[0], rtol=0.03)


def test_rolling_mean_matches_pandas(cohort: pd.DataFrame) -> None:
    frame = _athlete(cohort)
    conditioned = RollingMeanForecaster(7).fit(cohort).condition(frame.iloc[:20])
    origins = np.arange(20, 89, dtype=np.int64)
    mean, sd = conditioned.forecast_gaussian(frame, origins, 2)["hrv"]
    ln_hrv = pd.Series(np.log(frame["hrv_rmssd_ms"]))
    window = ln_hrv.rolling(7, min_periods=3)
    expected_mean = window.mean().shift(1).to_numpy()[origins]  # rows d0−7 .. d0−1
    expected_sd = window.std().shift(1).to_numpy()[origins]
    np.testing.assert_allclose(mean[:, 0], expected_mean, rtol=1e-10)
    np.testing.assert_allclose(mean[:, 1], expected_mean, rtol=1e-10)
    np.testing.assert_allclose(sd[:, 0], expected_sd, rtol=1e-8)


def test_lm_banister_recovers_known_gains() -> None:
    rng = np.random.default_rng(11)
    w = rng.gamma(2.0, 0.6, 240) * (rng.random(240) > 0.3)
    w[100:130] *= 2.5  # a hard block, so fitness and fatigue separate
    fitness, fatigue = normalised_states(w, 42.0, 7.0, initial_load=w.mean())
    y = 4.0 + 0.30 * fitness - 0.50 * fatigue + rng.normal(0, 0.02, w.size)
    y[rng.random(w.size) < 0.15] = np.nan
    fit = fit_banister_gains(fitness, fatigue, y, 0.0, 1.0)
    assert fit.fitness_gain == pytest.approx(0.30, abs=0.03)
    assert fit.fatigue_gain == pytest.approx(0.50, abs=0.02)
    assert fit.baseline == pytest.approx(4.0, abs=0.03)
    assert fit.residual_sd == pytest.approx(0.02, rel=0.15)
    # LM on a linear model lands on the ordinary least-squares solution.
    seen = np.isfinite(y)
    design = np.column_stack([np.ones(seen.sum()), fitness[seen], -fatigue[seen]])
    ols = np.linalg.lstsq(design, y[seen], rcond=None)[0]
    np.testing.assert_allclose([fit.baseline, fit.fitness_gain, fit.fatigue_gain], ols,
                               rtol=1e-6, atol=1e-8)


def test_banister_forecaster_recovers_gains_per_target(cohort: pd.DataFrame) -> None:
    """Through the forecaster: the synthetic cohort's HRV gains (0.1, 0.2) on a long athlete."""
    rng = np.random.default_rng(5)
    athlete = synthetic_athletes(rng, n_users=1, n_days=400, missing=0.0)
    conditioned = BanisterLeastSquaresForecaster(42, 7).fit(athlete).condition(athlete)
    fit = conditioned.fits["hrv"]
    # AR(1) noise (SD ≈ 0.1) makes this a noisier problem than the test above.
    assert fit.fitness_gain == pytest.approx(0.1, abs=0.15)
    assert fit.fatigue_gain == pytest.approx(0.2, abs=0.05)
    assert conditioned.fits["rhr"].fatigue_gain == pytest.approx(-3.0, abs=0.5)


def test_banister_without_load_variation_fits_baseline_only(cohort: pd.DataFrame) -> None:
    frame = _athlete(cohort).drop(columns=["load_trimp"])
    conditioned = BanisterLeastSquaresForecaster(50, 11).fit(cohort).condition(frame.iloc[:30])
    for fit in conditioned.fits.values():
        assert fit.fitness_gain == 0.0 and fit.fatigue_gain == 0.0
    ln_hrv = target_values(frame.iloc[:30])["hrv"]
    assert conditioned.fits["hrv"].baseline == pytest.approx(np.nanmean(ln_hrv))


def test_ridge_learns_the_load_response() -> None:
    """ln HRV_d = 4 + 0.7·(ln HRV_{d−1} − 4) − 0.1·w_{d−1} + N(0, 0.05²): the one-day-ahead
    ridge model reaches the noise floor only if it aligns yesterday's load with the target."""
    rng = np.random.default_rng(2)
    frames = []
    for u in range(8):
        n = 120
        w = rng.uniform(0, 3, n)
        y = np.full(n, 4.0)
        for d in range(1, n):
            y[d] = 4.0 + 0.7 * (y[d - 1] - 4.0) - 0.1 * w[d - 1] + rng.normal(0, 0.05)
        frames.append(pd.DataFrame({"user_id": f"r{u}", "date": pd.date_range("2024-01-01",
                                    periods=n), "hrv_rmssd_ms": np.exp(y),
                                    "rhr_bpm": 55.0 + rng.normal(0, 2, n),
                                    "load_trimp": 100 * w}))
    cohort = pd.concat(frames, ignore_index=True)
    model = RidgeFeatureForecaster(max_horizon=3).fit(cohort)
    first = model.models_["hrv"][0]
    assert first.residual_sd < 0.06
    assert model.models_["hrv"][2].residual_sd > first.residual_sd  # farther is harder
    with pytest.raises(ValueError, match="fitted up to 3"):
        model.condition(frames[0]).forecast_gaussian(frames[0], np.array([10]), 4)


def test_ridge_path_equals_scikit_learn_ridge() -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 6))
    x[:, 5] = x[:, 4] + 1e-3 * rng.normal(size=200)  # near-collinear inputs, as in the features
    y = x @ rng.normal(size=6) + rng.normal(0, 0.5, 200) + 3.0
    folds = [(np.arange(0, 150), np.arange(150, 200)), (np.arange(50, 200), np.arange(0, 50))]
    alphas = np.array([1e-2, 1.0, 100.0])
    path = ridge_path_out_of_fold(x, y, folds, alphas)
    assert np.isnan(path[50:150]).all()  # in no test fold
    for train, test in folds:
        for j, alpha in enumerate(alphas):
            expected = Ridge(alpha=alpha).fit(x[train], y[train]).predict(x[test])
            np.testing.assert_allclose(path[test, j], expected, rtol=1e-7, atol=1e-9)
