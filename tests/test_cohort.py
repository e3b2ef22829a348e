"""Cohorts: drawn from the shipped world model, saved and loaded back identically, twins."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.errors import DataError
from simulator.cohort import (
    CONTEXT_KEYS,
    HAZARD_KEYS,
    PERFORMANCE_KEYS,
    PHYSIOLOGY_KEYS,
    Cohort,
    CohortConfig,
    generate_cohort,
    twin_cohort,
)

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"


def test_generate_is_deterministic_complete_and_plausible(model):
    a = generate_cohort(model, 300, seed=3, config=CohortConfig(event_share=0.5))
    b = generate_cohort(model, 300, seed=3, config=CohortConfig(event_share=0.5))
    c = generate_cohort(model, 300, seed=4)
    for group, keys in (("physiology", PHYSIOLOGY_KEYS), ("performance", PERFORMANCE_KEYS),
                        ("hazard", HAZARD_KEYS), ("context", CONTEXT_KEYS)):
        for k in keys:
            np.testing.assert_array_equal(getattr(a, group)[k], getattr(b, group)[k])
    assert not np.array_equal(a.physiology["mu_hrv"], c.physiology["mu_hrv"])
    ctx = a.context
    assert set(np.unique(ctx["sex"])) == {-1.0, 1.0}
    assert ((ctx["age_years"] >= 20) & (ctx["age_years"] <= 60)).all()
    assert (ctx["habitual_load"] > 0).all()
    assert 0.3 < np.mean(ctx["event_day"] >= 0) < 0.7
    assert np.isnan(ctx["cycle_day0"][ctx["sex"] < 0]).all()  # cycles only for women
    assert (a.physiology["tau_gap_days"] > 0).all() and (a.physiology["sigma_hrv"] > 0).all()
    assert a.performance_params().n == 300


def test_save_load_round_trip_is_identical(model, tmp_path):
    a = generate_cohort(model, 50, seed=5, model_dir=str(MODEL_DIR))
    path = tmp_path / "cohort.npz"
    a.save(path)
    b = Cohort.load(path)
    assert b.meta == a.meta
    for group in ("physiology", "performance", "hazard", "context"):
        for k, v in getattr(a, group).items():
            np.testing.assert_array_equal(getattr(b, group)[k], v)


def test_a_cohort_file_without_the_slow_noise_reads_as_one_ar1(model, tmp_path):
    """Cohort files carry the noise's slow share and coefficient (`NOISE_PARAMS`); a file
    written before they existed reads with `NOISE_DEFAULTS` (w = 0: the single AR(1) it was
    simulated with)."""
    from physiology_model.dynamics.params import NOISE_DEFAULTS, NOISE_PARAMS

    a = generate_cohort(model, 5, seed=5)
    assert set(NOISE_PARAMS) <= set(a.physiology)
    path = tmp_path / "cohort.npz"
    a.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k.partition("/")[2] not in NOISE_DEFAULTS}
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    b = Cohort.load(old)
    for name, value in NOISE_DEFAULTS.items():
        np.testing.assert_array_equal(b.physiology[name], np.full(5, value))
    np.testing.assert_array_equal(b.physiology["phi_hrv"], a.physiology["phi_hrv"])


def test_load_rejects_other_files_clearly(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.arange(3))
    with pytest.raises(DataError, match="x.npz.*not a cohort file"):
        Cohort.load(bad)
    with pytest.raises(DataError, match="no such cohort file"):
        Cohort.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(DataError, match="junk.npz"):
        Cohort.load(junk)


def test_subset_keeps_the_order(model):
    a = generate_cohort(model, 10, seed=6)
    s = a.subset(np.array([7, 2]))
    assert s.n == 2
    assert s.physiology["mu_rhr"][0] == a.physiology["mu_rhr"][7]


def test_twins_take_the_real_athletes_baselines(model):
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=40)
    rows = []
    for uid, hrv, rhr in (("x-1", 40.0, 62.0), ("x-2", 90.0, 48.0)):
        rows.append(pd.DataFrame({
            "user_id": uid, "date": days, "source": "whoop",
            "hrv_rmssd_ms": hrv * np.exp(rng.normal(0, 0.1, 40)),
            "rhr_bpm": rhr + rng.normal(0, 1.5, 40), "recovery_pct": 60.0,
            "load_trimp": 120.0, "z4_min": 5.0, "z5_min": 0.0, "strength_min": 0.0,
            "age": 30.0, "sex": "female"}))
    short = rows[0].iloc[:5].assign(user_id="x-3")
    twins = twin_cohort(model, pd.concat(rows + [short]), seed=0)
    assert twins.meta["athlete_ids"] == ["x-1", "x-2"] and twins.meta["skipped"] == ["x-3"]
    assert twins.physiology["mu_hrv"][1] - twins.physiology["mu_hrv"][0] > 0.4
    assert twins.physiology["mu_rhr"][0] - twins.physiology["mu_rhr"][1] > 8
    np.testing.assert_allclose(twins.context["habitual_load"], 1.2)
    np.testing.assert_array_equal(twins.context["sex"], [1.0, 1.0])


def test_a_twin_starts_on_the_weekday_of_its_first_day(model, tmp_path):
    """A twin's day 0 is its first day, so the simulation starts it on that day's weekday
    (its weekday offsets and replayed sessions fall on the days they fell on); a synthetic
    athlete's is drawn as before; a cohort file with an impossible weekday is refused."""
    from simulator.env import EnvConfig, Simulation

    rows = []
    for uid, first in (("y-1", "2024-01-03"), ("y-2", "2024-01-07")):  # a Wednesday, a Sunday
        days = pd.date_range(first, periods=30)
        rows.append(pd.DataFrame({"user_id": uid, "date": days, "source": "whoop",
                                  "hrv_rmssd_ms": 60.0, "rhr_bpm": 55.0, "recovery_pct": 60.0,
                                  "load_trimp": 80.0, "z4_min": 0.0, "z5_min": 0.0,
                                  "strength_min": 0.0}))
    twins = twin_cohort(model, pd.concat(rows), seed=0)
    np.testing.assert_array_equal(twins.context["weekday0"], [2.0, 6.0])
    twins.save(tmp_path / "t.npz")
    back = Cohort.load(tmp_path / "t.npz")
    sim = Simulation(back, 2, EnvConfig(episode_days=30))
    sim.reset(seed=5)
    np.testing.assert_array_equal(sim.weekday, [2, 6])
    synthetic = generate_cohort(model, 2, seed=0)
    assert "weekday0" not in synthetic.context
    bad = dict(back.context, weekday0=np.array([2.0, 7.0]))
    with pytest.raises(ValueError, match="weekday0"):
        Cohort(back.physiology, back.performance, back.hazard, bad, back.meta)
