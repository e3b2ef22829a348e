"""`OnlineFeatures` against the reference `compute_features`, day by day, every feature.

Histories are random with every kind of hole the real data have (missing days per signal, long
gaps, unknown loads, injuries reported now and then, skin_temp_c without the device's deviation,
strain, cycle days, events, unknown age/sex) and are fed one day at a time; each day's output
must equal `compute_features(full history)[:, d, :]`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physiology_model.features.batch import (
    FEATURE_NAMES,
    INPUT_COLUMNS,
    FeatureConfig,
    compute_features,
)
from physiology_model.features.online import OnlineFeatures

TOLERANCE = 1e-9
"""Absolute, relative above 1: the two builders sum in different orders, nothing more."""

LOAD_ARGS = ("load_trimp", "z4_min", "z5_min", "strength_min")
"""Columns `record_load` takes (strain only comes through `observe`)."""

DEFAULT = FeatureConfig()

SIMULATED = ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "injury")
"""Physiology-like columns the simulator feeds to `observe`."""


def random_history(rng: np.random.Generator, n_athletes: int, n_days: int,
                   columns: tuple[str, ...] = INPUT_COLUMNS) -> dict:
    """A random daily history `(n_athletes, n_days)` with holes of every kind.

    Each athlete gets its own missing rate per signal (0 to 100 %), blocks of days with no
    physiology at all (longer than the carry-forward limit), and rest days below
    `rest_max_trimp`. Columns not in `columns` are absent.
    """
    shape = (n_athletes, n_days)
    nan = np.nan

    def holes(x: np.ndarray) -> np.ndarray:
        rate = rng.choice([0.0, 0.1, 0.3, 0.7, 1.0], size=(n_athletes, 1))
        return np.where(rng.random(shape) < rate, nan, x)

    gaps = np.zeros(shape, dtype=bool)
    for i in range(n_athletes):
        for _ in range(rng.integers(0, 3)):
            start = rng.integers(0, max(n_days, 1))
            gaps[i, start:start + rng.integers(3, 12)] = True

    def physiology(x: np.ndarray) -> np.ndarray:
        return np.where(gaps, nan, holes(x))

    skin_c = physiology(rng.normal(33.5, 0.4, shape))
    skin_dev = physiology(rng.normal(0.0, 0.3, shape))
    # Some athletes' devices give only the absolute skin temperature.
    skin_dev[rng.random(n_athletes) < 0.5] = nan
    load = rng.gamma(2.0, 50.0, shape) * (rng.random(shape) > 0.2)
    load = np.where(rng.random(shape) < 0.1, rng.uniform(0, 20, shape), load)
    injury = np.where(rng.random(shape) < 0.15, (rng.random(shape) < 0.4).astype(float), nan)
    signals = {
        "hrv_rmssd_ms": physiology(np.exp(rng.normal(4.0, 0.3, shape))),
        "rhr_bpm": physiology(rng.normal(56.0, 4.0, shape)),
        "sleep_min": physiology(rng.normal(430.0, 45.0, shape)),
        "sleep_efficiency_pct": physiology(rng.uniform(75, 98, shape)),
        "rem_pct": physiology(rng.uniform(12, 30, shape)),
        "deep_pct": physiology(rng.uniform(10, 28, shape)),
        "recovery_pct": physiology(rng.uniform(5, 99, shape)),
        "resp_rate_rpm": physiology(rng.normal(15.0, 0.8, shape)),
        "skin_temp_dev_c": skin_dev,
        "skin_temp_c": skin_c,
        "spo2_pct": physiology(rng.uniform(90, 99.5, shape)),
        "load_trimp": holes(load),
        "strain": holes(rng.uniform(2, 20, shape)),
        "z4_min": holes(rng.uniform(0, 20, shape)),
        "z5_min": holes(rng.uniform(0, 10, shape)),
        "strength_min": holes(rng.uniform(0, 45, shape) * (rng.random(shape) < 0.3)),
        "injury": np.where(gaps, nan, injury),
    }
    cycle = (np.arange(n_days)[None, :] + rng.integers(0, 28, (n_athletes, 1))) % 28 + 1.0
    cycle = np.where(rng.random((n_athletes, 1)) < 0.5, holes(cycle), nan)
    event = rng.integers(0, 2 * max(n_days, 1), (n_athletes, 1))
    dte = (event - np.arange(n_days)[None, :]).astype(float)
    dte = np.where((rng.random((n_athletes, 1)) < 0.6) & (dte >= -3), dte, nan)
    return {
        "signals": {c: signals[c] for c in columns},
        "weekday": (np.arange(n_days)[None, :] + rng.integers(0, 7, (n_athletes, 1))) % 7,
        "age_years": np.where(rng.random(n_athletes) < 0.2, nan,
                              rng.uniform(18, 70, n_athletes)),
        "sex": rng.choice([1.0, -1.0, nan], n_athletes),
        "rest_session": np.where(rng.random(shape) < 0.1, 1.0,
                                 np.where(rng.random(shape) < 0.5, 0.0, nan)),
        "days_to_event": dte,
        "cycle_day": cycle,
    }


def slice_history(h: Mapping, athletes: slice, days: slice) -> dict:
    """The part of a `random_history` for some athletes and days."""
    return {"signals": {c: v[athletes, days] for c, v in h["signals"].items()},
            **{k: h[k][athletes, days] for k in ("weekday", "rest_session", "days_to_event",
                                                 "cycle_day")},
            "age_years": h["age_years"][athletes], "sex": h["sex"][athletes]}


def reference(h: Mapping, config: FeatureConfig = DEFAULT) -> np.ndarray:
    return compute_features(h["signals"], h["weekday"], age_years=h["age_years"], sex=h["sex"],
                            rest_session=h["rest_session"], days_to_event=h["days_to_event"],
                            cycle_day=h["cycle_day"], config=config)


def feed_day(online: OnlineFeatures, h: Mapping, d: int, *,
             loads_in_observe: bool = False) -> np.ndarray:
    """Observe day d of `h`, then record its training; returns the day's features.

    With `loads_in_observe` the day's load columns go to `observe` with the physiology and
    `record_load` only adds rest_session (not a daily-table column) and repeats load_trimp
    (required); otherwise they all go to `record_load`."""
    sig = h["signals"]
    loads = {c: sig[c][:, d] for c in LOAD_ARGS if c in sig}
    day = {c: v[:, d] for c, v in sig.items() if loads_in_observe or c not in LOAD_ARGS}
    features = online.observe(day, h["weekday"][:, d], days_to_event=h["days_to_event"][:, d],
                              cycle_day=h["cycle_day"][:, d])
    trimp = loads.pop("load_trimp", np.nan)
    online.record_load(trimp, rest_session=h["rest_session"][:, d],
                       **({} if loads_in_observe else loads))
    return features


def run_online(h: Mapping, config: FeatureConfig = DEFAULT,
               loads_in_observe: bool = False) -> np.ndarray:
    """Every day of `h` fed one by one: `(n_athletes, n_days, n_features)`."""
    n_athletes, n_days = h["weekday"].shape
    online = OnlineFeatures(n_athletes, config=config, age_years=h["age_years"], sex=h["sex"])
    out = np.empty((n_athletes, n_days, len(FEATURE_NAMES)))
    for d in range(n_days):
        out[:, d] = feed_day(online, h, d, loads_in_observe=loads_in_observe)
    return out


def assert_same_features(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Every feature within TOLERANCE; the message names each feature that is not."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    bad = []
    for i, name in enumerate(FEATURE_NAMES):
        e = err[..., i]
        if not (e <= TOLERANCE).all():  # NaN fails too
            where = np.unravel_index(np.nanargmax(np.where(np.isnan(e), np.inf, e)), e.shape)
            bad.append(f"{name}: max error {e[where]:.3g} at (athlete, day) {where}: "
                       f"online {got[..., i][where]!r}, reference {want[..., i][where]!r}")
    assert not bad, f"{what}: online features differ from compute_features:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------------
# Equality with the reference.


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_athletes=st.integers(1, 5), n_days=st.integers(1, 75),
       loads_in_observe=st.booleans(),
       columns=st.sets(st.sampled_from(INPUT_COLUMNS)).map(
           lambda s: tuple(c for c in INPUT_COLUMNS if c in s)))
def test_every_day_equals_compute_features(seed, n_athletes, n_days, loads_in_observe, columns):
    h = random_history(np.random.default_rng(seed), n_athletes, n_days, columns)
    assert_same_features(run_online(h, loads_in_observe=loads_in_observe), reference(h),
                         f"seed {seed}, columns {columns}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_signals_with_holes_equal_compute_features(seed):
    h = random_history(np.random.default_rng(seed), 8, 120)
    want = reference(h)
    # The history exercises what it should: each signal both seen and missing, derived skin
    # temperature, established baselines, injuries, events, cycle days.
    i = FEATURE_NAMES.index
    for indicator in ("hrv_observed", "rhr_observed", "skin_temp_observed"):
        assert 0 < want[..., i(indicator)].mean() < 1
    assert (want[..., i("ln_hrv_baseline_sd_28d")] != 0.2).any()
    assert want[..., i("injury")].any() and want[..., i("cycle_observed")].any()
    assert (want[..., i("days_to_event")] < 180).any()
    assert_same_features(run_online(h), want, f"seed {seed}")


def test_simulator_signal_set_and_late_signals():
    """The simulator's signals only; sleep and skin temperature first appear mid-run."""
    rng = np.random.default_rng(11)
    h = random_history(rng, 16, 100, SIMULATED + LOAD_ARGS)
    late = random_history(rng, 16, 100, ("sleep_min", "skin_temp_c"))["signals"]
    late["sleep_min"][:, :40] = np.nan
    late["skin_temp_c"][:, :70] = np.nan
    late["skin_temp_c"][1:] = np.nan
    assert_same_features(run_online(h), reference(h), "simulated signals")
    h["signals"].update(late)
    assert_same_features(run_online(h), reference(h), "late signals")


def test_long_run_does_not_drift():
    h = random_history(np.random.default_rng(5), 4, 450)
    got, want = run_online(h), reference(h)
    assert_same_features(got[:, -50:], want[:, -50:], "days 400-449")
    assert_same_features(got, want, "450 days")


def test_other_config_windows():
    config = FeatureConfig(baseline_days=10, min_baseline_days=3, trend_days=4, min_trend_days=2,
                           load_window_days=3, ffill_limit_days=0, skin_temp_median_days=5,
                           days_since_rest_cap=5, atl_days=3.0, ctl_days=20.0)
    h = random_history(np.random.default_rng(8), 5, 60)
    assert_same_features(run_online(h, config), reference(h, config), "custom config")


def test_whole_number_readings():
    """Devices report whole bpm, ms and %: repeated equal values give exactly zero variance."""
    h = random_history(np.random.default_rng(3), 6, 90, SIMULATED + LOAD_ARGS)
    for c in ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct"):
        h["signals"][c] = np.round(h["signals"][c])
    h["signals"]["rhr_bpm"][0] = 50.0  # a flat line: baseline SD at its floor
    assert_same_features(run_online(h), reference(h), "whole numbers")


def test_flat_hrv_gives_exactly_zero_7d_sd():
    """A device repeating one HRV reading: the true 7-day SD is 0. The online builder returns
    exactly 0; `compute_features` returns rounding noise of its prefix sums (~5e-8 after a few
    hundred days: the one place it is allowed a wider tolerance). Everything else agrees."""
    h = random_history(np.random.default_rng(1), 4, 300, SIMULATED + LOAD_ARGS)
    h["signals"]["hrv_rmssd_ms"][:] = np.array([[45.0], [61.0], [73.0], [73.0]])
    # A tiny but real variation (±0.005 ms) is not flat: its SD (~7e-5) must survive.
    h["signals"]["hrv_rmssd_ms"][3, ::2] += 0.01
    got, want = run_online(h), reference(h)
    k = FEATURE_NAMES.index("ln_hrv_sd_7d")
    assert (got[:3, 2:, k] == 0.0).all()
    np.testing.assert_allclose(want[:3, 2:, k], 0.0, atol=1e-7)
    assert (got[3, 2:, k] > 5e-5).all()
    got[:3, :, k] = want[:3, :, k]
    assert_same_features(got, want, "flat HRV")


def test_odd_values_are_read_as_compute_features_reads_them():
    """Non-positive and infinite readings (missing), injury codes other than 0/1, fractional
    weekdays and cycle days (no lookup table), cycle days past the table, far, infinite and
    past events, infinite age, sex codes other than ±1."""
    rng = np.random.default_rng(17)
    h = random_history(rng, 6, 60)
    sig = h["signals"]
    sig["hrv_rmssd_ms"][0, ::5] = 0.0
    sig["hrv_rmssd_ms"][1, ::4] = -3.0
    sig["hrv_rmssd_ms"][2, ::3] = np.inf
    sig["rhr_bpm"][3, ::3] = -np.inf
    sig["load_trimp"][0, ::6] = np.inf
    sig["load_trimp"][1, ::6] = -np.inf
    sig["strength_min"][2, ::4] = np.inf
    sig["injury"][4, ::5] = 2.0
    sig["injury"][5, ::5] = -1.0
    h["weekday"] = h["weekday"].astype(float)
    h["weekday"][0] += 0.5
    h["cycle_day"][1] = np.linspace(-3.0, 2000.0, 60)
    h["cycle_day"][2] = np.arange(60) % 31 + 1.25
    h["cycle_day"][3, ::4] = np.inf
    h["days_to_event"][4] = np.linspace(500.0, -5.0, 60)
    h["days_to_event"][5, ::3] = np.inf
    h["age_years"][:2] = [np.inf, -np.inf]
    h["sex"][:] = [0.5, -2.0, 0.0, np.nan, 1.0, -1.0]
    assert_same_features(run_online(h), reference(h), "odd values")


# ---------------------------------------------------------------------------------------------
# Resets.


def test_reset_starts_a_new_history():
    rng = np.random.default_rng(21)
    n_athletes, n_days = 6, 130
    h = random_history(rng, n_athletes, n_days)
    # Reset days per athlete (day 0 = before anything; consecutive days; never).
    resets = [[], [0], [30], [29, 30, 31], [45, 100], [1, 64, 65, 129]]
    new_age = rng.uniform(20, 60, n_athletes)
    online = OnlineFeatures(n_athletes, age_years=h["age_years"], sex=h["sex"])
    got = np.empty((n_athletes, n_days, len(FEATURE_NAMES)))
    for d in range(n_days):
        which = np.array([d in r for r in resets])
        online.reset(which, age_years=new_age)
        got[:, d] = feed_day(online, h, d)
    for i, days in enumerate(resets):
        bounds = [0, *[d for d in days if d > 0], n_days]
        for start, stop in itertools.pairwise(bounds):
            seg = slice_history(h, slice(i, i + 1), slice(start, stop))
            if days and (start > 0 or days[0] == 0):
                seg["age_years"] = new_age[i:i + 1]
            assert_same_features(got[i:i + 1, start:stop], reference(seg),
                                 f"athlete {i}, days {start}-{stop - 1} (resets at {days})")


def test_reset_all_and_record_load_after_reset():
    h = random_history(np.random.default_rng(4), 3, 40)
    online = OnlineFeatures(3, age_years=h["age_years"], sex=h["sex"])
    for d in range(20):
        feed_day(online, h, d)
    online.reset(np.array([True, False, False]))
    with pytest.raises(ValueError, match="reset since their last observe"):
        online.record_load(np.array([100.0, 50.0, 50.0]))
    online.record_load(np.array([np.nan, 50.0, 50.0]))  # NaN for the reset athlete is fine
    online.reset()
    with pytest.raises(ValueError, match="before observe"):
        online.record_load(np.zeros(3))
    later = slice_history(h, slice(None), slice(20, None))
    got = np.stack([feed_day(online, later, d) for d in range(20)], axis=1)
    assert_same_features(got, reference(later), "after reset()")


# ---------------------------------------------------------------------------------------------
# API behaviour.


def test_loads_given_to_observe_or_record_load_agree():
    h = random_history(np.random.default_rng(9), 4, 50)
    assert_same_features(run_online(h, loads_in_observe=True), run_online(h), "load route")


def test_record_load_overwrites_and_none_keeps_observed_values():
    online = OnlineFeatures(2)
    online.observe({"z4_min": np.array([10.0, 20.0])}, np.array([0, 0]))
    online.record_load(np.array([500.0, 500.0]))
    online.record_load(np.array([100.0, 10.0]), z5_min=np.array([5.0, np.nan]))
    x = online.observe({}, np.array([1, 1]))
    i = FEATURE_NAMES.index
    np.testing.assert_array_equal(x[:, i("load_yesterday_trimp")], [100.0, 10.0])
    np.testing.assert_array_equal(x[:, i("z45_min_7d")], [15.0 * 7, 20.0 * 7])
    # Day 1 follows a 100-TRIMP day (not rest) for athlete 0 and a 10-TRIMP rest day for 1.
    np.testing.assert_array_equal(x[:, i("days_since_rest")], [2.0, 1.0])


def test_output_shape_type_and_independence():
    online = OnlineFeatures(3, age_years=np.array([30.0, np.nan, 50.0]))
    first = online.observe({"hrv_rmssd_ms": np.array([60.0, np.nan, 80.0])}, np.zeros(3))
    kept = first.copy()
    assert first.shape == (3, len(FEATURE_NAMES)) and first.dtype == np.float64
    online.record_load(np.full(3, 90.0))
    online.observe({"hrv_rmssd_ms": np.array([40.0, 50.0, 70.0])}, np.ones(3))
    np.testing.assert_array_equal(first, kept)
    assert first[1, FEATURE_NAMES.index("age_years")] == 35.0


@pytest.mark.parametrize("call, message", [
    (lambda o: o.observe({"hrv": np.ones(3)}, np.zeros(3)), "unknown signal columns"),
    (lambda o: o.observe({"rhr_bpm": np.ones(4)}, np.zeros(3)), r"rhr_bpm: expected shape \(3,\)"),
    (lambda o: o.observe({}, np.array([0.0, np.nan, 1.0])), "weekday must be finite"),
    (lambda o: o.observe({}, np.zeros(3), cycle_day=np.ones(2)), "cycle_day"),
    (lambda o: o.observe({"injury": ["yes", "no", "no"]}, np.zeros(3)), "injury: expected numbers"),
    (lambda o: o.reset(np.array([1, 0, 1])), "which must be a bool array"),
    (lambda o: o.reset(np.ones(2, dtype=bool)), "which must be a bool array"),
    (lambda o: o.record_load(np.ones(3)), "before observe"),
])
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call(OnlineFeatures(3))


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="n_athletes"):
        OnlineFeatures(0)
    with pytest.raises(ValueError, match="baseline_days"):
        OnlineFeatures(2, config=FeatureConfig(baseline_days=0))
    with pytest.raises(ValueError, match="age_years"):
        OnlineFeatures(2, age_years=np.ones(3))
