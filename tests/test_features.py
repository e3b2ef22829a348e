"""The feature builder: causality, the EWMA recursion, fills, shape, synthetic and real data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from physiology_model.features.batch import (
    FEATURE_NAMES,
    FEATURES,
    INPUT_COLUMNS,
    POPULATION_REFERENCE,
    FeatureConfig,
    build_features,
    compute_features,
    ewma_known,
)

LOAD_INPUTS = ("load_trimp", "strain", "z1_min", "z2_min", "z3_min", "z4_min", "z5_min",
               "strength_min", "session")
PHYSIOLOGY_INPUTS = ("hrv_rmssd_ms", "rhr_bpm", "sleep_min", "sleep_efficiency_pct", "rem_pct",
                     "deep_pct", "recovery_pct", "resp_rate_rpm", "skin_temp_c",
                     "skin_temp_dev_c", "spo2_pct", "injury")


def synthetic_frame(rng: np.random.Generator, n_users: int = 2, n_days: int = 60,
                    missing: float = 0.2, gaps: bool = True) -> pd.DataFrame:
    """A daily table with every input column, random holes, and (optionally) absent dates."""
    rows = []
    for u in range(n_users):
        dates = pd.date_range("2024-01-01", periods=n_days) + pd.Timedelta(days=3 * u)
        n = n_days
        f = pd.DataFrame({
            "user_id": f"u{u}", "date": dates,
            "hrv_rmssd_ms": np.exp(rng.normal(4.0, 0.25, n)),
            "rhr_bpm": rng.normal(56, 3, n),
            "sleep_min": rng.normal(430, 40, n),
            "sleep_efficiency_pct": rng.uniform(80, 97, n),
            "rem_pct": rng.uniform(15, 28, n),
            "deep_pct": rng.uniform(12, 25, n),
            "recovery_pct": rng.uniform(10, 99, n),
            "resp_rate_rpm": rng.normal(15, 0.7, n),
            "skin_temp_c": rng.normal(33.5, 0.4, n),
            "skin_temp_dev_c": rng.normal(0, 0.3, n),
            "spo2_pct": rng.uniform(93, 99, n),
            "load_trimp": rng.gamma(2.0, 50.0, n) * (rng.random(n) > 0.2),
            "strain": rng.uniform(4, 19, n),
            "z1_min": rng.uniform(0, 30, n), "z2_min": rng.uniform(0, 40, n),
            "z3_min": rng.uniform(0, 20, n), "z4_min": rng.uniform(0, 15, n),
            "z5_min": rng.uniform(0, 8, n), "strength_min": rng.uniform(0, 30, n),
            "injury": (rng.random(n) < 0.05).astype(float),
            "cycle_day": ((np.arange(n) + 5) % 28 + 1.0) if u == 0 else np.nan,
            "age": 30.0 + u, "sex": "female" if u == 0 else "male",
            "session": rng.choice(["rest", "z2_aerobic", "hiit", "unknown"], n),
        })
        for c in PHYSIOLOGY_INPUTS + LOAD_INPUTS[:-1]:
            f.loc[rng.random(n) < missing, c] = np.nan
        if gaps:
            f = f.drop(index=rng.choice(np.arange(1, n - 1), size=n // 10, replace=False))
        rows.append(f)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(np.random.default_rng(7))


@pytest.fixture(scope="module")
def features(frame: pd.DataFrame) -> pd.DataFrame:
    return build_features(frame)


def test_names_specs_and_count():
    assert 30 <= len(FEATURE_NAMES) <= 50
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert isinstance(FEATURE_NAMES, tuple)
    for spec in FEATURES:
        assert spec.unit and spec.formula and spec.fill
        assert spec.scaling in ("robust", "standard", "none")
    # The brief's must-haves are there.
    for name in ("ln_hrv", "rhr_bpm", "atl_trimp", "ctl_trimp", "tsb_trimp", "dow_sin", "dow_cos",
                 "days_since_rest", "days_to_event", "injury", "cycle_sin", "age_years", "sex",
                 "ln_hrv_slope_7d", "ln_hrv_sd_7d", "ln_hrv_z_28d", "rhr_z_28d",
                 "ln_hrv_baseline_28d", "ln_hrv_baseline_sd_28d", "recovery_x_days_since_rest",
                 "hrv_observed", "spo2_observed"):
        assert name in FEATURE_NAMES


def test_frame_is_reindexed_to_a_continuous_calendar(frame, features):
    assert list(features.columns) == ["user_id", "date", *FEATURE_NAMES]
    for uid, g in frame.groupby("user_id"):
        out = features[features["user_id"] == uid]
        span = (g["date"].max() - g["date"].min()).days + 1
        assert len(out) == span > len(g)  # the fixture dropped some dates
        assert out["date"].is_monotonic_increasing
        assert out["date"].diff().dropna().eq(pd.Timedelta(days=1)).all()
        # Absent dates are unobserved days.
        absent = ~out["date"].isin(g["date"])
        assert (out.loc[absent, "hrv_observed"] == 0).all()
    assert np.isfinite(features[list(FEATURE_NAMES)].to_numpy()).all()


def test_physiology_features_take_day_d_values(frame, features):
    merged = frame.merge(features, on=["user_id", "date"], suffixes=("", "_f"))
    seen = merged["hrv_rmssd_ms"].notna()
    np.testing.assert_allclose(merged.loc[seen, "ln_hrv"], np.log(merged.loc[seen, "hrv_rmssd_ms"]))
    assert (merged.loc[seen, "hrv_observed"] == 1).all()
    assert (merged.loc[~seen, "hrv_observed"] == 0).all()
    seen = merged["rhr_bpm_f"].notna() & merged["rhr_bpm"].notna()
    np.testing.assert_allclose(merged.loc[seen, "rhr_bpm_f"], merged.loc[seen, "rhr_bpm"])
    # The device's skin temperature deviation wins over the derived one.
    seen = merged["skin_temp_dev_c_f"].notna() & merged["skin_temp_dev_c"].notna()
    np.testing.assert_allclose(merged.loc[seen, "skin_temp_dev_c_f"],
                               merged.loc[seen, "skin_temp_dev_c"])


def test_load_features_use_yesterday():
    frame = pd.DataFrame({"user_id": "a", "date": pd.date_range("2024-03-04", periods=4),
                          "load_trimp": [100.0, 0.0, 250.0, np.nan],
                          "strain": [10.0, 2.0, 15.0, np.nan]})
    f = build_features(frame).set_index("date")
    assert f["load_yesterday_trimp"].tolist()[1:] == [100.0, 0.0, 250.0]
    assert f["strain_yesterday"].tolist()[1:] == [10.0, 2.0, 15.0]
    # Day 1 follows a 100-TRIMP day, day 2 follows a rest day (0 TRIMP ≤ rest_max_trimp).
    assert f["days_since_rest"].tolist() == [1.0, 2.0, 1.0, 2.0]
    # 2024-03-04 is a Monday.
    assert f["dow_sin"].iloc[0] == pytest.approx(0.0) and f["dow_cos"].iloc[0] == 1.0


def test_ewma_matches_hand_computation():
    tau = 7.0
    alpha = 1 - np.exp(-1 / tau)  # 0.1331221002498184
    assert alpha == pytest.approx(0.13312210025, abs=1e-10)
    loads = np.array([[100.0, 0.0, np.nan, 50.0, 80.0]])
    mean, weight = ewma_known(loads, tau)
    assert np.isnan(mean[0, 0]) and weight[0, 0] == 0.0
    # Day 1: only day 0 is known → its load.
    assert mean[0, 1] == pytest.approx(100.0)
    # Day 2: (100·(1−α) + 0) / ((1−α) + 1) = 86.687790 / 1.866878 = 46.43463...
    assert mean[0, 2] == pytest.approx(100 * (1 - alpha) / (2 - alpha))
    assert mean[0, 2] == pytest.approx(46.4346, abs=1e-4)
    # Day 3: day 2 unknown → unchanged mean, less weight.
    assert mean[0, 3] == pytest.approx(mean[0, 2])
    assert weight[0, 3] < weight[0, 2] / (1 - alpha) + 1e-12
    # Day 4 against the closed form: Σ (1−α)^(d−1−k) L_k over known k < d, normalised.
    d = 4
    ks = [0, 1, 3]
    wts = np.array([(1 - alpha) ** (d - 1 - k) for k in ks])
    assert mean[0, 4] == pytest.approx(float(wts @ loads[0, ks] / wts.sum()))
    assert weight[0, 4] == pytest.approx(alpha * wts.sum())


def test_ewma_converges_to_the_usual_recursion():
    rng = np.random.default_rng(1)
    loads = rng.gamma(2.0, 50.0, (3, 400))
    mean, _ = ewma_known(loads, 42.0)
    decay = np.exp(-1 / 42)
    usual = np.zeros(3)
    for d in range(400):
        if d == 399:
            np.testing.assert_allclose(mean[:, d], usual, rtol=1e-3)
        usual = decay * usual + (1 - decay) * loads[:, d]


def test_atl_ctl_tsb_in_the_frame():
    loads = [60.0, 120.0, 0.0, 200.0, 90.0, 30.0, 150.0, 80.0]
    frame = pd.DataFrame({"user_id": "a", "date": pd.date_range("2024-01-01", periods=8),
                          "load_trimp": loads})
    f = build_features(frame)
    atl, _ = ewma_known(np.array([loads]), 7.0)
    ctl, _ = ewma_known(np.array([loads]), 42.0)
    np.testing.assert_allclose(f["atl_trimp"].to_numpy()[1:], atl[0, 1:])
    np.testing.assert_allclose(f["tsb_trimp"].to_numpy()[1:], (ctl - atl)[0, 1:])
    # Day 0 has no load history: the population reference, balance 0.
    assert f["atl_trimp"].iloc[0] == POPULATION_REFERENCE["load_trimp"]
    assert f["tsb_trimp"].iloc[0] == 0.0


def test_finite_with_nan_inputs():
    shape = (3, 50)
    nan = np.full(shape, np.nan)
    signals = {c: nan for c in INPUT_COLUMNS}
    signals["hrv_rmssd_ms"] = np.where(np.arange(50) % 9 == 0, 60.0, np.nan) * np.ones(shape)
    signals["load_trimp"] = np.where(np.arange(50) == 10, np.inf, np.nan) * np.ones(shape)
    weekday = np.tile(np.arange(50) % 7, (3, 1))
    x = compute_features(signals, weekday, age_years=np.array([np.nan, 40.0, np.nan]),
                         sex=np.array([np.nan, 1.0, -1.0]))
    assert x.shape == (3, 50, len(FEATURE_NAMES))
    assert np.isfinite(x).all()
    i = FEATURE_NAMES.index
    assert (x[:, :, i("rhr_observed")] == 0).all()
    assert (x[:, :, i("rhr_bpm")] == POPULATION_REFERENCE["rhr_bpm"]).all()
    assert (x[:, :, i("rhr_z_28d")] == 0).all()
    assert x[0, 0, i("age_years")] == POPULATION_REFERENCE["age_years"]
    assert x[1, 0, i("age_years")] == 40.0
    assert x[:, 0, i("sex")].tolist() == [0.0, 1.0, -1.0]
    # Fill order for HRV: carried 2 days, then the trailing mean of the known nights.
    ln60 = np.log(60.0)
    assert x[0, 1, i("ln_hrv")] == pytest.approx(ln60)
    assert x[0, 3, i("ln_hrv")] == pytest.approx(ln60)
    assert x[0, 3, i("hrv_observed")] == 0.0
    # An all-NaN athlete in a frame is fine too.
    frame = pd.DataFrame({"user_id": "empty", "date": pd.date_range("2024-01-01", periods=5)})
    assert np.isfinite(build_features(frame)[list(FEATURE_NAMES)].to_numpy()).all()


def test_hrv_baseline_and_z_score():
    n = 40
    hrv = np.full((1, n), 50.0)
    hrv[0, ::2] = 70.0
    hrv[0, -1] = 20.0  # a crash on the last morning
    weekday = np.zeros((1, n), dtype=int)
    x = compute_features({"hrv_rmssd_ms": hrv}, weekday)
    i = FEATURE_NAMES.index
    window = np.log(hrv[0, n - 29:n - 1])  # the 28 days before the last
    assert x[0, -1, i("ln_hrv_baseline_28d")] == pytest.approx(window.mean())
    assert x[0, -1, i("ln_hrv_baseline_sd_28d")] == pytest.approx(window.std(ddof=1))
    z = (np.log(20.0) - window.mean()) / window.std(ddof=1)
    assert x[0, -1, i("ln_hrv_z_28d")] == pytest.approx(max(z, -5.0))
    # The safety rule can read it: HRV below baseline − 2 SD.
    last = x[0, -1]
    threshold = last[i("ln_hrv_baseline_28d")] - 2 * last[i("ln_hrv_baseline_sd_28d")]
    assert last[i("ln_hrv")] < threshold
    # Before min_baseline_days nights, no z-score.
    assert x[0, 5, i("ln_hrv_z_28d")] == 0.0
    # 7-day SD and slope.
    assert x[0, 20, i("ln_hrv_sd_7d")] == pytest.approx(np.log(hrv[0, 14:21]).std(ddof=1))
    t = np.arange(7)
    expected_slope = np.polyfit(t, np.log(hrv[0, -7:]), 1)[0]
    assert x[0, -1, i("ln_hrv_slope_7d")] == pytest.approx(expected_slope)


def test_config_changes_fills_and_windows():
    hrv = np.array([[60.0, np.nan, np.nan, 50.0] + [np.nan] * 4])
    weekday = np.zeros(hrv.shape, dtype=int)
    i = FEATURE_NAMES.index("ln_hrv")
    # Carry-forward off: a missing night falls back to the trailing mean of the known nights.
    x = compute_features({"hrv_rmssd_ms": hrv}, weekday, config=FeatureConfig(ffill_limit_days=0))
    assert x[0, 1, i] == pytest.approx(np.log(60.0))
    assert x[0, 4, i] == pytest.approx((np.log(60.0) + np.log(50.0)) / 2)
    # Default: carried 2 days, then the trailing mean.
    x = compute_features({"hrv_rmssd_ms": hrv}, weekday)
    assert x[0, 5, i] == pytest.approx(np.log(50.0))
    assert x[0, 6, i] == pytest.approx((np.log(60.0) + np.log(50.0)) / 2)
    # A baseline window so short that day 7 sees no known night: the population value.
    x = compute_features({"hrv_rmssd_ms": hrv}, weekday, config=FeatureConfig(baseline_days=3))
    assert x[0, 7, i] == pytest.approx(POPULATION_REFERENCE["ln_hrv"])
    load = np.array([[100.0] * 8])
    fast = compute_features({"load_trimp": load}, weekday, config=FeatureConfig(atl_days=1.0))
    assert fast[0, -1, FEATURE_NAMES.index("atl_trimp")] == pytest.approx(100.0)


def test_skin_temperature_deviation_from_absolute():
    skin = np.array([[33.0, 33.2, 33.4, 33.6, 34.6]])
    x = compute_features({"skin_temp_c": skin}, np.zeros((1, 5), dtype=int))
    i = FEATURE_NAMES.index("skin_temp_dev_c")
    # Day 3: median of the 3 nights before = 33.2 → 0.4; day 4: median of 4 = 33.3 → 1.3.
    assert x[0, 3, i] == pytest.approx(0.4)
    assert x[0, 4, i] == pytest.approx(1.3)
    # Fewer than 3 earlier nights: unknown → population value 0, indicator 0.
    assert x[0, 1, i] == 0.0
    assert x[0, 1, FEATURE_NAMES.index("skin_temp_observed")] == 0.0


def test_events_and_cycle():
    frame = pd.DataFrame({"user_id": ["a"] * 5 + ["b"] * 5,
                          "date": list(pd.date_range("2024-05-01", periods=5)) * 2,
                          "cycle_day": [1.0, 8.0, np.nan, 15.0, 22.0] + [np.nan] * 5})
    f = build_features(frame, events={"a": ["2024-05-04"]})
    a, b = f[f.user_id == "a"], f[f.user_id == "b"]
    assert a["days_to_event"].tolist() == [3.0, 2.0, 1.0, 0.0, 180.0]
    assert (b["days_to_event"] == 180.0).all()
    assert a["cycle_sin"].iloc[1] == pytest.approx(1.0)  # day 8 of 28: quarter cycle
    assert a["cycle_cos"].iloc[3] == pytest.approx(-1.0)  # day 15: half cycle
    assert a["cycle_observed"].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert (b[["cycle_sin", "cycle_cos", "cycle_observed"]] == 0).all().all()
    with pytest.raises(ValueError, match="not both"):
        build_features(frame.assign(days_to_event=1.0), events={"a": ["2024-05-04"]})


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="duplicate"):
        build_features(pd.DataFrame({"user_id": ["a", "a"], "date": ["2024-01-01"] * 2}))
    with pytest.raises(ValueError, match="no 'date'"):
        build_features(pd.DataFrame({"user_id": ["a"]}))
    with pytest.raises(ValueError, match="unknown signal"):
        compute_features({"hrv_ms": np.zeros((1, 2))}, np.zeros((1, 2), dtype=int))


def test_input_frame_is_not_modified(frame):
    before = frame.copy()
    build_features(frame)
    pd.testing.assert_frame_equal(frame, before)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_no_look_ahead(seed, data):
    """Changing anything after day d, or day d's load, leaves day d's features unchanged."""
    rng = np.random.default_rng(seed)
    n_days = data.draw(st.integers(8, 45), label="n_days")
    frame = synthetic_frame(rng, n_users=2, n_days=n_days,
                            missing=data.draw(st.floats(0.0, 0.6), label="missing"),
                            gaps=data.draw(st.booleans(), label="gaps"))
    user = data.draw(st.sampled_from(["u0", "u1"]), label="user")
    dates = frame.loc[frame.user_id == user, "date"]
    day = data.draw(st.sampled_from(sorted(dates)), label="day")
    changed = frame.copy()
    later = (changed.user_id == user) & (changed.date > day)
    today = (changed.user_id == user) & (changed.date == day)
    numeric_after = [c for c in PHYSIOLOGY_INPUTS + LOAD_INPUTS[:-1] + ("age", "cycle_day")]
    n_changes = data.draw(st.integers(1, 6), label="n_changes")
    for _ in range(n_changes):
        if data.draw(st.booleans(), label="today") or not later.any():
            column = data.draw(st.sampled_from(LOAD_INPUTS), label="load column")
            rows = today
        else:
            column = data.draw(st.sampled_from(numeric_after + ["sex", "session"]), label="col")
            rows = later & (rng.random(len(changed)) < 0.5)
        if column == "session":
            changed.loc[rows, column] = data.draw(st.sampled_from(["rest", "hiit", None]))
        elif column == "sex":
            changed.loc[rows, column] = data.draw(st.sampled_from(["female", "male", None]))
        else:
            value = data.draw(st.one_of(st.just(np.nan), st.floats(0.0, 40.0)), label="value")
            if column == "hrv_rmssd_ms" and value == 0.0:
                value = 5.0
            changed.loc[rows, column] = value
    before = build_features(frame)
    after = build_features(changed)
    pick = lambda f: f[(f.user_id == user) & (f.date <= day)][list(FEATURE_NAMES)].to_numpy()
    np.testing.assert_array_equal(pick(before), pick(after))
    other = lambda f: f[f.user_id != user][list(FEATURE_NAMES)].to_numpy()
    np.testing.assert_array_equal(other(before), other(after))


def test_works_on_a_1000_athlete_array_quickly():
    rng = np.random.default_rng(3)
    shape = (1000, 365)
    signals = {"hrv_rmssd_ms": np.exp(rng.normal(4.0, 0.3, shape)),
               "rhr_bpm": rng.normal(56, 4, shape), "load_trimp": rng.gamma(2.0, 50.0, shape)}
    weekday = (np.arange(365)[None, :] + rng.integers(0, 7, (1000, 1))) % 7
    x = compute_features(signals, weekday)
    assert x.shape == (1000, 365, len(FEATURE_NAMES))
    assert np.isfinite(x).all()


WHOOP_LOADER = importlib.util.find_spec("physiology_model.data.loaders.whoop") is not None


@pytest.mark.skipif(not WHOOP_LOADER, reason="physiology_model.data.loaders.whoop is not written yet: "
                                             "real-data feature test needs the WHOOP loader")
def test_real_whoop_user():
    from physiology_model.data.loaders import load_exports

    table = load_exports(["data/real/whoop/u02"])
    f = build_features(table.frame)
    assert set(f["user_id"]) == set(table.frame["user_id"])
    values = f[list(FEATURE_NAMES)].to_numpy()
    assert np.isfinite(values).all()
    raw = table.frame.dropna(subset=["hrv_rmssd_ms"])
    merged = raw.merge(f, on=["user_id", "date"])
    assert len(merged) == len(raw)
    np.testing.assert_allclose(merged["ln_hrv"], np.log(merged["hrv_rmssd_ms"]))
    # A real WHOOP user's recent HRV is mostly within ±3 SD of their 28-day baseline.
    z = f.loc[f["hrv_observed"] == 1, "ln_hrv_z_28d"]
    assert (z.abs() < 3).mean() > 0.9
    assert f["ctl_trimp"].between(0, 2000).all()


def test_feature_config_names_a_setting_it_cannot_work_with():
    with pytest.raises(ValueError, match="min_baseline_days must be at least 2"):
        FeatureConfig(min_baseline_days=1)  # a baseline's SD needs two days
    with pytest.raises(ValueError, match="trend_days"):
        FeatureConfig(trend_days=0)
    with pytest.raises(ValueError, match="atl_days"):
        FeatureConfig(atl_days=-1.0)
    assert FeatureConfig(min_baseline_days=2).min_baseline_days == 2
