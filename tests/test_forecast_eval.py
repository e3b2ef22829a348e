"""Forecast scoring: the CRPS estimators, interval coverage, the bootstrap, and the protocol."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.forecast_eval import (
    RATIO_KEYS,
    RECORD_KEYS,
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    crps_gaussian,
    crps_samples,
    evaluate_forecasters,
    gaussian_interval_hits,
    interval_hits,
    short_conditioning,
    write_forecast_report,
)
from physiology_model.dynamics.observation import TARGETS
from physiology_model.model.fitting import split_for_forecasting
from physiology_model.model.forecasters import baseline_forecasters, target_values

# ---------------------------------------------------------------------------------------------
# Metrics.


def test_crps_of_samples_matches_gaussian_closed_form() -> None:
    rng = np.random.default_rng(0)
    mean = np.array([0.0, 4.2, 55.0, -1.0])
    sd = np.array([1.0, 0.15, 3.0, 0.5])
    observed = np.array([0.3, 3.9, 61.0, -1.0])
    samples = mean[:, None] + sd[:, None] * rng.standard_normal((4, 200_000))
    np.testing.assert_allclose(crps_samples(samples, observed),
                               crps_gaussian(mean, sd, observed), rtol=5e-3)


def test_crps_gaussian_known_value() -> None:
    # At the mean of N(0, 1): 2φ(0) − 1/√π = (√2 − 1)/√π.
    assert crps_gaussian(0.0, 1.0, 0.0) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    # Scale equivariance: CRPS(N(μ, σ²), y) = σ·CRPS(N(0, 1), (y − μ)/σ).
    assert crps_gaussian(10.0, 2.0, 13.0) == pytest.approx(2.0 * crps_gaussian(0.0, 1.0, 1.5))
    with pytest.raises(ValueError):
        crps_gaussian(0.0, 0.0, 1.0)


def test_crps_of_point_forecast_is_absolute_error() -> None:
    x = np.array([[3.0], [-2.0], [7.5]])
    y = np.array([1.0, -2.0, 10.0])
    np.testing.assert_allclose(crps_samples(x, y), np.abs(x[:, 0] - y))
    repeated = np.repeat(x, 50, axis=1)  # m identical samples: still a point forecast
    np.testing.assert_allclose(crps_samples(repeated, y), np.abs(x[:, 0] - y), atol=1e-12)


def test_crps_sorted_estimator_equals_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    samples = rng.gamma(2.0, 1.0, (5, 37))
    y = rng.normal(2.0, 1.0, 5)
    pairwise = (np.abs(samples - y[:, None]).mean(axis=1)
                - 0.5 * np.abs(samples[:, :, None] - samples[:, None, :]).mean(axis=(1, 2)))
    np.testing.assert_allclose(crps_samples(samples, y), pairwise, rtol=1e-12)


def test_coverage_of_a_calibrated_forecaster_is_nominal() -> None:
    rng = np.random.default_rng(2)
    n_days = 20_000
    mean = rng.normal(0, 3, n_days)
    sd = rng.uniform(0.5, 2.0, n_days)
    y = mean + sd * rng.standard_normal(n_days)
    samples = mean[:, None] + sd[:, None] * rng.standard_normal((n_days, 200))
    for level in (0.5, 0.9):
        assert interval_hits(samples, y, level).mean() == pytest.approx(level, abs=0.015)
        assert gaussian_interval_hits(mean, sd, y, level).mean() == pytest.approx(level,
                                                                                  abs=0.015)
    # Too-narrow intervals under-cover: the check can fail.
    narrow = mean[:, None] + 0.5 * sd[:, None] * rng.standard_normal((n_days, 200))
    assert interval_hits(narrow, y, 0.9).mean() < 0.7


def test_bootstrap_interval_resamples_athletes() -> None:
    counts = np.array([100, 50, 10, 0, 80])
    sums = np.array([30.0, 40.0, 2.0, 0.0, 20.0])
    pooled = sums.sum() / counts.sum()
    lo, hi = bootstrap_mean_ci(sums, counts, np.random.default_rng(3))
    assert lo < pooled < hi
    assert (lo, hi) == bootstrap_mean_ci(sums, counts, np.random.default_rng(3))
    # One athlete: nothing to resample.
    assert bootstrap_mean_ci(sums[:1], counts[:1], np.random.default_rng(0)) == \
        pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in bootstrap_mean_ci(sums[3:4], counts[3:4],
                                                        np.random.default_rng(0)))


def test_ratio_interval_is_paired_and_reselects_the_best_baseline() -> None:
    """Athletes differ much more from each other than the method from the baseline: a paired
    interval of the ratio is narrow where unpaired intervals of the two means overlap, and the
    best baseline is chosen again in every resample."""
    rng = np.random.default_rng(0)
    counts = np.full(30, 50)
    hardness = rng.lognormal(0.0, 0.8, 30) * counts  # each athlete's total score
    method = 0.9 * hardness * rng.uniform(0.98, 1.02, 30)
    lo, hi = bootstrap_ratio_ci(method, hardness[None], counts, np.random.default_rng(1))
    assert 0.88 < lo < 0.9 < hi < 0.92
    _, m_hi = bootstrap_mean_ci(method, counts, np.random.default_rng(1))
    b_lo, _ = bootstrap_mean_ci(hardness, counts, np.random.default_rng(1))
    assert m_hi > b_lo  # the means' own intervals overlap
    # Two baselines, each best on half of the athletes: the min of the pooled means per draw.
    half = np.arange(30) < 15
    one, two = np.where(half, 1.0, 1.3) * hardness, np.where(half, 1.3, 1.0) * hardness
    lo2, hi2 = bootstrap_ratio_ci(method, np.stack([one, two]), counts,
                                  np.random.default_rng(1))
    draws = np.random.default_rng(1).multinomial(30, np.full(30, 1 / 30), size=2000)
    ratios = (draws @ method) / np.minimum(draws @ one, draws @ two)
    assert (lo2, hi2) == pytest.approx(tuple(np.quantile(ratios, [0.025, 0.975])))
    assert all(math.isnan(v) for v in bootstrap_ratio_ci(method[:1], hardness[None, :1],
                                                         np.zeros(1), rng))


# ---------------------------------------------------------------------------------------------
# The protocol.

N_USERS, N_DAYS = 10, 60


def _cohort() -> pd.DataFrame:
    """Ten complete 60-day athletes; recovery missing on every third day."""
    rng = np.random.default_rng(11)
    frames = []
    for u in range(N_USERS):
        ln_hrv = rng.normal(4.0, 0.2) + 0.1 * rng.standard_normal(N_DAYS)
        recovery = np.clip(60 + 100 * (ln_hrv - ln_hrv.mean()), 1, 99)
        recovery[::3] = np.nan
        frames.append(pd.DataFrame({
            "user_id": f"s{u:02d}", "date": pd.date_range("2024-01-01", periods=N_DAYS),
            "hrv_rmssd_ms": np.exp(ln_hrv), "rhr_bpm": rng.normal(55, 2, N_DAYS),
            "recovery_pct": recovery, "load_trimp": rng.gamma(2.0, 50.0, N_DAYS),
            "sleep_min": rng.normal(420, 30, N_DAYS)}))
    return pd.concat(frames, ignore_index=True)


class _Oracle:
    """Returns the truth (it reads the future: only to test the runner's bookkeeping)."""

    def __init__(self, name: str, gaussian: bool) -> None:
        self.name = name
        self.gaussian = gaussian

    def fit(self, train: pd.DataFrame) -> _Oracle:
        self.fitted_on_ = train
        return self

    def condition(self, athlete: pd.DataFrame) -> object:
        return _GaussianOracleAthlete() if self.gaussian else _OracleAthlete()


class _OracleAthlete:
    def forecast(self, frame, origins, horizon, n_samples, rng):
        rows = origins[:, None] + np.arange(horizon)[None, :]
        return {t: np.repeat(np.nan_to_num(y[rows])[:, None, :], n_samples, axis=1)
                for t, y in target_values(frame).items()}


class _GaussianOracleAthlete(_OracleAthlete):
    def forecast_gaussian(self, frame, origins, horizon):
        rows = origins[:, None] + np.arange(horizon)[None, :]
        return {t: (np.nan_to_num(y[rows]), np.full(rows.shape, 1e-9))
                for t, y in target_values(frame).items()}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return _cohort()


@pytest.fixture(scope="module")
def records(cohort: pd.DataFrame) -> list[dict]:
    methods = baseline_forecasters() + [_Oracle("oracle", False), _Oracle("oracle_g", True)]
    return evaluate_forecasters(cohort, methods, seed=5, n_samples=40,
                                baselines=[m.name for m in baseline_forecasters()])


def _expected_n(cohort: pd.DataFrame, target: str, horizon: int, split: str) -> int:
    """Scored days, counted from the protocol's definition."""
    train_users = sorted(f"s{u:02d}" for u in range(N_USERS))
    from physiology_model.data.splits import user_split

    train_users, test_users = user_split(train_users, 0.2, 5)
    users = train_users if split == "temporal" else test_users
    # 60 complete days: temporal test rows start at ⌊60·0.85 + ½⌋ = 51; unseen after 14 days.
    first = 51 if split == "temporal" else 14
    total = 0
    for user in users:
        y = target_values(cohort[cohort["user_id"] == user].reset_index(drop=True))[target]
        targets = np.arange(first, N_DAYS - horizon + 1) + horizon - 1
        total += int(np.isfinite(y[targets]).sum())
    return total


def test_runner_records_keys_order_and_counts(records: list[dict], cohort: pd.DataFrame
                                               ) -> None:
    names = [f.name for f in baseline_forecasters()] + ["oracle", "oracle_g"]
    assert len(records) == len(TARGETS) * 2 * len(names) * 2
    assert [tuple(r) for r in records] == [RECORD_KEYS + RATIO_KEYS] * len(records)
    assert [(r["target"], r["horizon"], r["method"], r["split"]) for r in records] == [
        (t, h, m, s) for t in TARGETS for h in (1, 7) for m in names
        for s in ("temporal", "unseen")]
    for r in records:
        assert r["n"] == _expected_n(cohort, r["target"], r["horizon"], r["split"]), r
        assert r["n"] > 0
        slack = 1e-9 * r["crps"] + 1e-12  # the oracle's CRPS is round-off
        assert r["crps_lo"] - slack <= r["crps"] <= r["crps_hi"] + slack
        assert 0 <= r["cover50"] <= r["cover90"] <= 1
    # Persistence: 2 recovery days in 3 are observed, so fewer are scored than for HRV.
    by = {(r["target"], r["horizon"], r["method"], r["split"]): r for r in records}
    assert by[("recovery", 1, "persistence", "unseen")]["n"] < \
        by[("hrv", 1, "persistence", "unseen")]["n"]


def test_runner_scores_the_right_days(records: list[dict]) -> None:
    """A forecaster that returns the truth of row d0+h−1 scores zero error: the runner lines
    forecasts up with the days they are about, for the sample and the Gaussian path."""
    for r in records:
        if r["method"] in ("oracle", "oracle_g"):
            assert r["crps"] == pytest.approx(0.0, abs=1e-8), r
            assert r["mae"] == pytest.approx(0.0, abs=1e-8), r
            assert r["cover90"] == 1.0


def test_runner_fits_on_training_athletes_before_their_cutoff(cohort: pd.DataFrame) -> None:
    oracle = _Oracle("oracle", False)
    evaluate_forecasters(cohort, [oracle], seed=5, horizons=(1,))
    split = split_for_forecasting(cohort, seed=5)
    fitted_on = oracle.fitted_on_
    assert set(fitted_on["user_id"]) == set(split.train_users)
    assert not set(fitted_on["user_id"]) & set(split.test_users)
    assert (fitted_on.groupby("user_id").size() == 51).all()  # train + val of 60 days


def test_runner_is_deterministic_and_seeded(cohort: pd.DataFrame, records: list[dict]) -> None:
    methods = baseline_forecasters() + [_Oracle("oracle", False), _Oracle("oracle_g", True)]
    again = evaluate_forecasters(cohort, methods, seed=5, n_samples=40)
    # without baselines: the same records, without the ratios
    assert again == [{k: r[k] for k in RECORD_KEYS} for r in records]
    other = evaluate_forecasters(cohort, baseline_forecasters()[:1], seed=6, horizons=(1,))
    same_method = [r for r in records if r["method"] == "persistence" and r["horizon"] == 1]
    assert [r["n"] for r in other] != [r["n"] for r in same_method] or \
        [r["crps"] for r in other] != [r["crps"] for r in same_method]


def test_runner_reports_each_method_against_the_best_baseline(cohort: pd.DataFrame,
                                                              records: list[dict]) -> None:
    names = [m.name for m in baseline_forecasters()]
    by = {(r["target"], r["horizon"], r["method"], r["split"]): r for r in records}
    for (target, horizon, method, split), r in by.items():
        if method in names:
            assert all(r[k] is None for k in RATIO_KEYS)
            continue
        best = min(names, key=lambda b: by[(target, horizon, b, split)]["crps"])
        assert r["best_baseline"] == best
        assert r["crps_ratio"] == pytest.approx(r["crps"] / by[(target, horizon, best, split)]
                                                ["crps"])
        assert r["crps_ratio"] == pytest.approx(0.0, abs=1e-6)  # the oracle's CRPS is ~0
        assert r["crps_ratio_lo"] <= r["crps_ratio"] + 1e-9 <= r["crps_ratio_hi"] + 2e-9
    with pytest.raises(ValueError, match="not among the forecasters"):
        evaluate_forecasters(cohort, baseline_forecasters(), seed=5, baselines=["nope"])


def test_an_unseen_athlete_too_short_to_personalise_is_left_out_for_every_method(
        cohort: pd.DataFrame) -> None:
    """An unseen athlete with a missing morning in a 7-day conditioning window cannot be
    personalised (7 measured days needed): it is left out for every method, by name, and the
    others are scored, where it used to stop the whole evaluation."""
    split = split_for_forecasting(cohort, seed=5)
    gap = split.test_users[0]
    holed = cohort.copy()
    first = holed["user_id"] == gap
    holed.loc[first & (holed["date"] == holed.loc[first, "date"].min() + pd.Timedelta(days=2)),
              ["hrv_rmssd_ms", "rhr_bpm"]] = np.nan
    holed_split = split_for_forecasting(holed, seed=5)
    assert short_conditioning(holed_split, 7) == [gap]
    assert short_conditioning(holed_split, 8) == []
    said: list[str] = []
    records = evaluate_forecasters(holed, [_Oracle("oracle", False)], seed=5, horizons=(1,),
                                   condition_days=7, say=said.append)
    assert len(said) == 1 and gap in said[0]
    unseen = {r["target"]: r["n"] for r in records if r["split"] == "unseen"}
    others = [u for u in split.test_users if u != gap]
    assert unseen["hrv"] == len(others) * (N_DAYS - 7)


def test_runner_rejects_bad_arguments(cohort: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unique"):
        evaluate_forecasters(cohort, [_Oracle("x", False), _Oracle("x", True)], seed=0)
    with pytest.raises(ValueError, match="at least 2 athletes"):
        evaluate_forecasters(cohort[cohort["user_id"] == "s00"], [_Oracle("x", False)], seed=0)


def test_write_forecast_report(tmp_path, records: list[dict]) -> None:
    path = tmp_path / "out" / "forecast.json"
    rows = records[:3] + [dict(records[0], n=0, mae=float("nan"), crps=None)]
    write_forecast_report(rows, path)
    loaded = json.loads(path.read_text())
    assert loaded[:3] == records[:3]
    assert loaded[3]["mae"] is None and loaded[3]["crps"] is None
    with pytest.raises(TypeError):
        write_forecast_report([{"bad": object()}], tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert not list(tmp_path.glob(".bad.json.*"))


def test_runner_refuses_non_finite_forecasts(cohort: pd.DataFrame) -> None:
    class _NaNAthlete(_OracleAthlete):
        def forecast(self, frame, origins, horizon, n_samples, rng):
            out = super().forecast(frame, origins, horizon, n_samples, rng)
            out["rhr"] = out["rhr"] * np.nan
            return out

    class _NaNForecaster(_Oracle):
        def condition(self, athlete):
            return _NaNAthlete()

    with pytest.raises(ValueError, match="rhr is not finite"):
        evaluate_forecasters(cohort, [_NaNForecaster("nan", False)], seed=0, horizons=(1,))


@pytest.mark.slow
def test_baselines_on_the_shipped_data() -> None:
    """The protocol runs on the real exports; the numbers are sane (ln HRV CRPS a few tenths,
    RHR a few bpm) and forecasts that use the recent past beat persistence a week ahead."""
    from physiology_model.data.loaders import load_exports

    frame = load_exports(["data/real"]).frame
    result = evaluate_forecasters(frame, baseline_forecasters(), seed=0)
    assert len(result) == 3 * 2 * 5 * 2
    by = {(r["target"], r["horizon"], r["method"], r["split"]): r for r in result}
    for split in ("temporal", "unseen"):
        for target, (lo, hi) in {"hrv": (0.05, 0.5), "rhr": (0.5, 6.0)}.items():
            best = min(by[(target, 1, m, split)]["crps"]
                       for m in ("persistence", "rolling_mean_7d", "ridge"))
            assert lo < best < hi, (target, split, best)
        assert by[("hrv", 7, "rolling_mean_7d", split)]["crps"] < \
            by[("hrv", 7, "persistence", split)]["crps"]
        assert by[("hrv", 1, "ridge", split)]["n"] > 500
