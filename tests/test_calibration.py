"""Recalibrated predictive intervals for new athletes (physiology_model/model/calibration.py).

The world model is a known population (as in test_world_model.py); its new athletes are noisier
than the population says, so the raw intervals are too narrow, and the calibration learned on
other ("training") athletes must bring unseen athletes' coverage back to nominal.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri
from test_world_model import _athlete_frame, _population, _truth
from test_world_model import _model as _full_model

from physiology_model.errors import DataError
from physiology_model.model.calibration import (
    FILE_NAME,
    PROBS,
    IntervalCalibration,
    load_calibration,
)
from physiology_model.model.fitting import fit_calibration
from physiology_model.model.world_model import WorldModel, WorldModelConfig, WorldModelForecaster


def _model(athletes=None) -> WorldModel:
    model = _full_model(_population(), athletes)
    model.config = WorldModelConfig(personalize_proposals=1000, personalize_draws=200)
    return model


def _noisy_cohort(n: int, first: int, days: int = 90, inflate: float = 1.8) -> pd.DataFrame:
    """Athletes whose noise SDs are `inflate` times what the population gives them."""
    frames = []
    for i in range(first, first + n):
        truth = _truth(seed=300 + i)
        for name in ("sigma_hrv", "sigma_rhr", "sigma_rec"):
            truth[name] = truth[name] * inflate
        frames.append(_athlete_frame(truth, days, seed=400 + i, user=f"n{i}"))
    return pd.concat(frames, ignore_index=True)


def _table(scale: float) -> IntervalCalibration:
    probs = np.asarray(PROBS)
    q = np.broadcast_to(scale * ndtri(probs), (3, 14, probs.size)).copy()
    return IntervalCalibration(tuple(PROBS), (7, 14, 28), {t: q for t in ("hrv", "rhr")},
                               {t: np.full((3, 14), 500.0) for t in ("hrv", "rhr")}, {})


def _coverage(model: WorldModel, frame: pd.DataFrame, condition: int, horizon: int,
              use_calibration: bool) -> dict[str, tuple[float, float, float]]:
    """Per target (cover50, cover90, mean 90 % width) on the athletes of `frame`."""
    forecaster = WorldModelForecaster(model, seed=1, use_calibration=use_calibration)
    hits = {t: ([], [], []) for t in ("hrv", "rhr")}
    for _, rows in frame.groupby("user_id"):
        rows = rows.reset_index(drop=True)
        conditioned = forecaster.condition(rows.iloc[:condition])
        origins = np.arange(condition, len(rows) - horizon + 1)
        samples = conditioned.forecast(rows, origins, horizon, 200, np.random.default_rng(2))
        for target, column in (("hrv", "hrv_rmssd_ms"), ("rhr", "rhr_bpm")):
            y = rows[column].to_numpy(float)[origins + horizon - 1]
            y = np.log(y) if target == "hrv" else y
            x = samples[target][:, :, horizon - 1]
            seen = np.isfinite(y)
            for k, level in enumerate((0.5, 0.9)):
                lo, hi = np.quantile(x[seen], [(1 - level) / 2, (1 + level) / 2], axis=1)
                hits[target][k].append((y[seen] >= lo) & (y[seen] <= hi))
                if level == 0.9:
                    hits[target][2].append(hi - lo)
    return {t: tuple(float(np.concatenate(v).mean()) for v in h) for t, h in hits.items()}


@pytest.fixture(scope="module")
def learned():
    model = _model()
    model.calibration_ = fit_calibration(model, _noisy_cohort(8, first=0), max_horizon=7,
                                         condition_days=(7, 14, 28))
    return model


def test_calibration_learned_on_other_athletes_restores_coverage(learned):
    unseen = _noisy_cohort(8, first=50)
    raw = _coverage(learned, unseen, 14, 1, use_calibration=False)
    fixed = _coverage(learned, unseen, 14, 1, use_calibration=True)
    for target in ("hrv", "rhr"):
        assert raw[target][1] < 0.82, raw  # the population's noise is too small for them
        # 8 + 8 athletes: a few points of coverage either way are the athletes drawn
        assert 0.8 <= fixed[target][1] <= 0.97, fixed
        assert fixed[target][1] >= raw[target][1] + 0.03
        assert 0.40 <= fixed[target][0] <= 0.62, fixed
        assert fixed[target][2] > raw[target][2]
    folds = learned.calibration_.info["cross_validation"]
    one_day = [r for r in folds if r["horizon"] == 1 and r["condition_days"] == 14]
    assert {r["target"] for r in one_day} == {"hrv", "rhr", "recovery"}
    assert all(0.8 <= r["cover90"] <= 0.97 for r in one_day)


def test_intervals_after_a_few_days_hold_too(learned):
    """After 10 days the c = 7 table applies: it must widen the raw intervals enough to cover
    (a 10-day posterior still believes the population's smaller noise)."""
    unseen = _noisy_cohort(6, first=70)
    raw = _coverage(learned, unseen, 10, 1, use_calibration=False)
    short = _coverage(learned, unseen, 10, 1, use_calibration=True)
    for target in ("hrv", "rhr"):
        assert short[target][2] > raw[target][2]
        assert short[target][1] >= max(0.75, raw[target][1] + 0.02), (raw, short)


def test_apply_reshapes_each_day_and_keeps_the_trajectories_order():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 4000, 3)) * 0.1 + 4.0
    base[:, :, 1] = base[:, :, 0] + 0.01 * rng.standard_normal((2, 4000))  # correlated days
    same = _table(1.0).apply({"hrv": base}, 14)["hrv"]
    assert np.allclose(same.std(axis=1), base.std(axis=1), rtol=0.03)
    wide = _table(2.0).apply({"hrv": base, "other": base}, 14)
    assert np.allclose(wide["hrv"].mean(axis=1), base.mean(axis=1), atol=0.01)
    assert np.allclose(wide["hrv"].std(axis=1), 2 * base.std(axis=1), rtol=0.03)
    order = np.argsort(base[0, :, 0])
    assert np.all(np.diff(wide["hrv"][0, order, 0]) >= 0)  # the same order (tails may tie)
    assert np.corrcoef(wide["hrv"][0, :, 0], wide["hrv"][0, :, 1])[0, 1] > 0.95
    assert np.array_equal(wide["other"], base)  # a target the table does not know


def test_saved_with_the_model_and_only_for_athletes_outside_the_fit(tmp_path, learned):
    fitted = _truth(seed=9)
    fitted = {k: np.repeat(v, 50) for k, v in fitted.items()}
    model = _model(athletes={"n0": fitted})
    model.calibration_ = learned.calibration_
    model.split_, model.fit_info_ = {}, {}
    frame = _noisy_cohort(1, first=0)
    assert model.interval_calibration(frame) is None  # n0 is in the fit
    assert model.interval_calibration(frame.assign(user_id="new"))[1] == int(
        (frame["hrv_rmssd_ms"].notna() | frame["rhr_bpm"].notna()).sum())
    model.save(tmp_path)
    loaded = WorldModel.load(tmp_path)
    for target, q in model.calibration_.quantiles.items():
        assert np.allclose(loaded.calibration_.quantiles[target], q, atol=1e-4)  # 4 decimals
    model.calibration_ = None
    model.save(tmp_path)  # the old file must not outlive the model it was learned for
    assert not (tmp_path / FILE_NAME).exists()
    assert WorldModel.load(tmp_path).calibration_ is None


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["quantiles"]["hrv"][0][0].reverse(), "non-decreasing"),
    (lambda d: d["quantiles"].update(hrv=[[1.0]]), "shape"),
    (lambda d: d.update(probs=[0.5, 0.2, 0.9]), "increasing"),
    (lambda d: d.pop("counts"), "missing"),
    (lambda d: d["quantiles"].update(power=d["quantiles"]["hrv"]), "targets"),
])
def test_a_bad_calibration_file_is_one_clear_error(tmp_path, corrupt, message):
    data = _table(1.3).to_json()
    data = json.loads(json.dumps(data))
    corrupt(data)
    (tmp_path / FILE_NAME).write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as info:
        load_calibration(tmp_path)
    assert FILE_NAME in str(info.value)
    (tmp_path / FILE_NAME).write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        load_calibration(tmp_path)
