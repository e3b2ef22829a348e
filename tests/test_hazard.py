"""The injury/illness hazard: shape, monotonicity, bounds, batching, and the check on real reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from physiology_model.dynamics import hazard as hz

DATA = Path(__file__).resolve().parents[1] / "data" / "real"


@pytest.fixture(scope="module")
def typical() -> hz.HazardParams:
    return hz.typical_hazard_params()


def test_priors_sample_finite_values_and_typical_rate():
    draws = hz.sample_hazard_params(5000, np.random.default_rng(1))
    for name in hz.HAZARD_PRIORS:
        values = np.asarray(getattr(draws, name))
        assert values.shape == (5000,) and np.all(np.isfinite(values)), name
    for name in ("spike_coef", "low_recovery_coef", "monotony_coef"):
        assert np.all(getattr(draws, name) > 0), "risk terms can only raise the hazard"
    base = hz.daily_hazard(1.0, 80.0, 1.0, hz.typical_hazard_params())
    assert float(base) == pytest.approx(0.005, rel=1e-6)  # the prior median daily rate


def test_hazard_rises_with_acwr_spike_only_above_threshold(typical):
    acwr = np.linspace(0.0, 3.0, 301)
    h = hz.daily_hazard(acwr, 80.0, 1.0, typical)
    below = acwr <= typical.acwr_threshold
    assert np.ptp(h[below]) == 0.0, "no extra risk inside the sweet spot"
    assert np.all(np.diff(h[~below]) > 0)
    def odds(p: float) -> float:
        return p / (1 - p)

    ratio = odds(hz.daily_hazard(2.0, 80.0, 1.0, typical)) / odds(h[0])
    assert 2.0 < ratio < 5.0  # Gabbett 2016: of order 2-4x at ACWR ~2


def test_hazard_rises_as_recovery_falls_below_threshold(typical):
    recovery = np.linspace(0.0, 100.0, 101)
    h = hz.daily_hazard(1.0, recovery, 1.0, typical)
    high = recovery >= typical.recovery_threshold_pct
    assert np.ptp(h[high]) == 0.0
    assert np.all(np.diff(h[~high]) < 0), "lower recovery, higher hazard"
    assert h[0] > h[-1]


def test_hazard_rises_with_monotony_up_to_the_cap(typical):
    monotony = np.linspace(0.0, 10.0, 101)
    h = hz.daily_hazard(1.0, 80.0, monotony, typical)
    rising = (monotony > typical.monotony_threshold) & (monotony <= typical.monotony_cap)
    assert np.all(np.diff(h)[rising[1:]] > 0)
    assert np.ptp(h[monotony >= typical.monotony_cap]) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    acwr=arrays(float, 6, elements=st.floats(allow_nan=True, allow_infinity=True)),
    recovery=arrays(float, 6, elements=st.floats(allow_nan=True, allow_infinity=True)),
    monotony=arrays(float, 6, elements=st.floats(allow_nan=True, allow_infinity=True)),
    coef=st.floats(-50.0, 50.0),
    intercept=st.floats(-50.0, 50.0),
)
def test_hazard_is_a_probability_for_any_input(acwr, recovery, monotony, coef, intercept):
    params = hz.HazardParams(intercept, coef, coef, coef)
    h = hz.daily_hazard(acwr, recovery, monotony, params)
    assert h.shape == (6,)
    assert np.all(np.isfinite(h)) and np.all((h >= 0.0) & (h <= 1.0))


def test_nan_inputs_add_no_risk(typical):
    base = hz.daily_hazard(1.0, 80.0, 1.0, typical)
    assert hz.daily_hazard(np.nan, np.nan, np.nan, typical) == pytest.approx(base)


def test_batched_shapes_and_per_athlete_coefficients():
    rng = np.random.default_rng(4)
    n_athletes, n_days = 16, 30
    params = hz.sample_hazard_params(n_athletes, rng)
    acwr = rng.uniform(0.5, 2.5, (n_athletes, n_days))
    recovery = rng.uniform(0, 100, (n_athletes, n_days))
    monotony = rng.uniform(0, 5, (n_athletes, n_days))
    grid = hz.daily_hazard(acwr, recovery, monotony, params)
    assert grid.shape == (n_athletes, n_days)
    one_day = hz.daily_hazard(acwr[:, 7], recovery[:, 7], monotony[:, 7], params)
    assert one_day.shape == (n_athletes,)
    np.testing.assert_allclose(one_day, grid[:, 7])
    for a in (0, 9):
        single = hz.HazardParams(*(float(np.asarray(getattr(params, f))[a]) for f in (
            "intercept", "spike_coef", "low_recovery_coef", "monotony_coef")))
        np.testing.assert_allclose(grid[a], hz.daily_hazard(acwr[a], recovery[a], monotony[a],
                                                            single))


def test_acute_chronic_ratio_and_monotony():
    steady = np.full((2, 60), 1.5)
    np.testing.assert_allclose(hz.acute_chronic_ratio(steady), 1.0)
    spike = np.concatenate([np.full(28, 1.0), np.full(7, 2.0)])
    acwr = hz.acute_chronic_ratio(spike)
    # after a week at double load: acute 2, chronic (21·1 + 7·2)/28 = 1.25
    assert acwr[-1] == pytest.approx(2.0 / 1.25)
    assert acwr[27] == pytest.approx(1.0)
    # the floor stops a return from a break from exploding
    back = np.concatenate([np.zeros(40), [1.0]])
    assert hz.acute_chronic_ratio(back, chronic_floor=0.2)[-1] == pytest.approx(
        (1 / 7) / 0.2)
    mono = hz.training_monotony(np.tile([1.0, 0.0], 10))
    week = np.array([0.0, 1, 0, 1, 0, 1, 0])  # the 7 days ending on the last day
    assert mono[-1] == pytest.approx(week.mean() / week.std(ddof=1))
    assert hz.training_monotony(np.full(10, 1.0))[-1] == 4.0  # constant week: the cap
    assert hz.training_monotony(np.zeros(10))[-1] == 0.0
    assert np.isnan(hz.training_monotony(np.ones(5))[0])


def test_logistic_fit_and_auc_match_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    x = rng.normal(size=(800, 4))
    y = (rng.random(800) < 1 / (1 + np.exp(-(-3.0 + x @ [1.0, 0.5, 0.0, 0.2])))).astype(int)
    b0, b = hz._fit_logistic(x, y, 0.5)
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-10).fit(x, y)
    np.testing.assert_allclose(b, ref.coef_[0], atol=1e-5)
    assert b0 == pytest.approx(ref.intercept_[0], abs=1e-5)
    score = np.round(x @ b, 1)  # with ties
    assert hz._auc(y, score) == pytest.approx(roc_auc_score(y, score))


@pytest.fixture(scope="module")
def report_frame(shipped_table):
    """load_exports([DATA / "whoop", DATA / "pmdata"]).frame, taken (equal, row for row) from
    the session's read of all the shipped data (conftest.py)."""
    frame = shipped_table.frame
    return frame[frame["source"].isin(["whoop", "pmdata"])].reset_index(drop=True)


def test_injury_risk_days_define_onsets(report_frame):
    days = hz.injury_risk_days(report_frame)
    assert set(days["source"]) == {"whoop", "pmdata"}
    assert days["onset"].isin([0, 1]).all() and 20 <= days["onset"].sum() <= 60
    assert not days.duplicated(["user_id", "date"]).any()
    assert np.isfinite(days[["acwr", "monotony", "spike", "monotony_term"]].to_numpy()).all()
    # the next day of every at-risk day carries a report, and onsets are reported injuries
    frame = report_frame.set_index(["user_id", "date"])["injury"]
    nxt = [frame.get((u, d + np.timedelta64(1, "D"))) for u, d in
           zip(days["user_id"], days["date"])]
    assert all(v in (0.0, 1.0) for v in nxt)
    assert all(v == 1.0 for v, o in zip(nxt, days["onset"]) if o == 1)


def test_check_against_reports_runs_and_reports_intervals(report_frame):
    config = hz.HazardCheckConfig(n_bootstrap=30)
    result = hz.check_against_injury_reports(report_frame, config)
    fit = result["fit"]
    assert fit["n_onsets"] > 0 and fit["n_days"] > fit["n_onsets"]
    for name, c in fit["coefficients"].items():
        assert c["ci95"][0] <= c["ci95"][1], name
        assert np.isfinite(c["estimate"])
    for key in ("auc_in_sample", "auc_leave_one_athlete_out"):
        assert 0.0 <= fit[key] <= 1.0
    assert 0.0 <= fit["prior_typical"]["auc"] <= 1.0
    assert result["fit_recovery_lag_2d"]["n_days"] == fit["n_days"]
    assert result["config"]["n_bootstrap"] == 30
