"""Preprocessing: gap filling (counted, physiology only) and the feature scaler."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.splits import temporal_split
from physiology_model.errors import DataError
from physiology_model.features.batch import FEATURE_NAMES, FEATURES, build_features
from physiology_model.features.preprocess import (
    FeatureScaler,
    NotFittedError,
    PreprocessConfig,
    fill_calendar,
    impute,
)

nan = np.nan


def _frame(user: str = "a", start: str = "2024-01-01", **columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"user_id": user, "date": pd.date_range(start, periods=n), **columns})


def test_isolated_value_gets_the_rolling_median():
    hrv = [50.0, 60.0, 70.0, nan, 40.0, 90.0, 100.0]
    out, report = impute(_frame(hrv_rmssd_ms=hrv))
    # Centred 7-day window around day 3: 50, 60, 70, 40, 90, 100 → median 65.
    assert out["hrv_rmssd_ms"].iloc[3] == 65.0
    assert report.counts.loc["hrv_rmssd_ms", "median_filled"] == 1
    assert report.counts.loc["hrv_rmssd_ms", "forward_filled"] == 0
    causal, _ = impute(_frame(hrv_rmssd_ms=hrv), PreprocessConfig(median_centred=False))
    assert causal["hrv_rmssd_ms"].iloc[3] == 60.0  # median of 50, 60, 70


def test_short_gaps_are_forward_filled_and_long_ones_left():
    rhr = [50.0, nan, nan, 53.0, nan, nan, nan, 57.0, nan]
    out, report = impute(_frame(rhr_bpm=rhr))
    assert out["rhr_bpm"].tolist()[:4] == [50.0, 50.0, 50.0, 53.0]
    assert out["rhr_bpm"].iloc[4:7].isna().all()  # 3 days: not "shorter than 3 days"
    assert out["rhr_bpm"].iloc[8] == 57.0  # a trailing 1-day gap follows a known value
    row = report.counts.loc["rhr_bpm"]
    assert row.tolist() == [6, 0, 3, 3]
    assert report.total_filled == 3
    assert "forward-filled" in str(report)
    out, _ = impute(_frame(rhr_bpm=rhr), PreprocessConfig(ffill_max_gap_days=3))
    assert out["rhr_bpm"].iloc[4:7].tolist() == [53.0, 53.0, 53.0]


def test_leading_gap_is_not_filled():
    out, report = impute(_frame(rhr_bpm=[nan, nan, 50.0, 51.0]))
    assert out["rhr_bpm"].iloc[:2].isna().all()
    assert report.total_filled == 0


def test_load_is_never_filled_and_cannot_be_configured():
    frame = _frame(rhr_bpm=[50.0, nan, 52.0], load_trimp=[100.0, nan, 80.0],
                   strain=[10.0, nan, 9.0])
    out, report = impute(frame)
    assert out["rhr_bpm"].iloc[1] == 51.0  # isolated: median of 50 and 52
    assert np.isnan(out["load_trimp"].iloc[1]) and np.isnan(out["strain"].iloc[1])
    assert "load_trimp" not in report.counts.index
    with pytest.raises(ValueError, match="load"):
        PreprocessConfig(impute_columns=("rhr_bpm", "load_trimp"))


def test_calendar_gaps_become_rows_and_are_counted():
    frame = pd.concat([
        _frame(rhr_bpm=[50.0, 52.0], age=[30.0, 30.0], sex=["male", "male"]),
        _frame(start="2024-01-04", rhr_bpm=[54.0], age=[30.0], sex=["male"]),
        _frame(user="b", rhr_bpm=[60.0, 61.0]),
    ], ignore_index=True)
    out, report = impute(frame)
    assert report.rows_inserted == 1
    a = out[out.user_id == "a"]
    assert a["date"].tolist() == list(pd.date_range("2024-01-01", periods=4))
    assert a["rhr_bpm"].tolist() == [50.0, 52.0, 52.0, 54.0]
    assert a["age"].tolist() == [30.0] * 4 and a["sex"].tolist() == ["male"] * 4
    assert report.counts.loc["rhr_bpm", "missing_before"] == 1
    # Athletes never borrow from each other.
    assert out[out.user_id == "b"]["rhr_bpm"].tolist() == [60.0, 61.0]
    _, n = fill_calendar(frame)
    assert n == 1
    same, report = impute(frame, PreprocessConfig(fill_calendar=False))
    assert len(same) == len(frame) and report.rows_inserted == 0


def test_impute_does_not_modify_its_input():
    frame = _frame(rhr_bpm=[50.0, nan, 52.0])
    before = frame.copy()
    impute(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_counts_match_the_values_that_changed():
    rng = np.random.default_rng(4)
    hrv = np.exp(rng.normal(4, 0.3, 200))
    hrv[rng.random(200) < 0.3] = nan
    frame = _frame(hrv_rmssd_ms=hrv)
    out, report = impute(frame)
    changed = int((frame["hrv_rmssd_ms"].isna() & out["hrv_rmssd_ms"].notna()).sum())
    row = report.counts.loc["hrv_rmssd_ms"]
    assert changed == row["median_filled"] + row["forward_filled"] > 0
    assert row["missing_after"] == int(out["hrv_rmssd_ms"].isna().sum())
    assert (out["hrv_rmssd_ms"][frame["hrv_rmssd_ms"].notna()]
            == frame["hrv_rmssd_ms"].dropna()).all()


# --- FeatureScaler ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 120
    frame = _frame(hrv_rmssd_ms=np.exp(rng.normal(4, 0.3, n)), rhr_bpm=rng.normal(55, 3, n),
                   load_trimp=rng.gamma(2, 50, n), recovery_pct=rng.uniform(5, 99, n))
    return build_features(frame)


def test_scaler_uses_robust_for_physiology_and_standard_for_load(features):
    train = features[temporal_split(features) == "train"]
    scaler = FeatureScaler().fit(train)
    assert scaler.fit(train) is scaler
    methods = dict(zip(scaler.columns_, scaler.method_))
    assert methods["ln_hrv"] == "robust" and methods["ctl_trimp"] == "standard"
    assert "hrv_observed" not in methods and "dow_sin" not in methods
    scaled = scaler.transform(features)
    ln_train = train["ln_hrv"]
    expected = (features["ln_hrv"] - ln_train.median()) / (
        ln_train.quantile(0.75) - ln_train.quantile(0.25))
    np.testing.assert_allclose(scaled["ln_hrv"], expected)
    ctl = train["ctl_trimp"]
    np.testing.assert_allclose(scaled["ctl_trimp"],
                               (features["ctl_trimp"] - ctl.mean()) / ctl.std(ddof=0))
    # Fitted on training rows only: the train rows are centred, the later ones need not be.
    assert scaled.loc[train.index, "ctl_trimp"].mean() == pytest.approx(0.0, abs=1e-9)
    # Unscaled columns pass through; the input is untouched.
    pd.testing.assert_series_equal(scaled["hrv_observed"], features["hrv_observed"])
    assert list(scaled.columns) == list(features.columns)
    np.testing.assert_allclose(scaler.inverse_transform(scaled)[list(FEATURE_NAMES)],
                               features[list(FEATURE_NAMES)], atol=1e-9)


def test_constant_column_gets_unit_scale(features):
    scaler = FeatureScaler().fit(features)
    i = scaler.columns_.index("days_to_event")  # 180 everywhere: no events
    assert scaler.scale_[i] == 1.0
    assert (scaler.transform(features)["days_to_event"] == 0.0).all()


def test_transform_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted"):
        FeatureScaler().transform(pd.DataFrame({"ln_hrv": [1.0]}))


def test_scaler_json_round_trip(features, tmp_path):
    scaler = FeatureScaler().fit(features)
    path = tmp_path / "scaler.json"
    scaler.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "physiology_model.FeatureScaler"
    loaded = FeatureScaler.load(path)
    pd.testing.assert_frame_equal(loaded.transform(features), scaler.transform(features))
    path.write_text("{\"format\": \"something else\"}")
    with pytest.raises(DataError, match="not a FeatureScaler"):
        FeatureScaler.load(path)
    path.write_text("not json")
    with pytest.raises(DataError, match="scaler.json"):
        FeatureScaler.load(path)


def test_custom_scaling_and_errors():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 100.0], "y": [0.0, 1.0, 0.0, 1.0]})
    scaler = FeatureScaler({"x": "robust", "y": "standard"}).fit(frame)
    # median 2.5, IQR 27.25 − 1.75
    assert scaler.transform(frame)["x"].iloc[1] == pytest.approx((2 - 2.5) / 25.5)
    with pytest.raises(ValueError, match="not in the frame"):
        FeatureScaler({"z": "robust"}).fit(frame)
    with pytest.raises(ValueError, match="unknown scaling"):
        FeatureScaler({"x": "minmax"}).fit(frame)
    with pytest.raises(ValueError, match="lacks"):
        scaler.transform(frame[["x"]])


def test_every_feature_has_a_scaling():
    assert {f.scaling for f in FEATURES} == {"robust", "standard", "none"}
