"""prepare_arrays: the padded per-athlete arrays match the daily table they come from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from physiology_model.dynamics import banister, params
from physiology_model.model.arrays import (
    REFERENCE_TAUS_DAYS,
    TARGETS,
    daily_loads,
    fill_missing_loads,
    prepare_arrays,
)


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A minimal daily-table frame (the columns prepare_arrays reads)."""
    columns = ["user_id", "date", "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "load_trimp",
               "z4_min", "z5_min", "strength_min", "source"]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    frame["date"] = pd.to_datetime(frame["date"])
    for c in columns[2:-1]:
        frame[c] = frame[c].astype(float)
    return frame.sort_values(["user_id", "date"]).reset_index(drop=True)


def _athlete(user: str, n_days: int, *, source: str = "whoop", start: str = "2024-01-01",
             hrv_every: int = 1, load: float | None = 150.0, skip: tuple[int, ...] = ()
             ) -> list[dict]:
    rows = []
    for d in range(n_days):
        if d in skip:
            continue
        rows.append({
            "user_id": user, "date": pd.Timestamp(start) + pd.Timedelta(days=d),
            "hrv_rmssd_ms": 50.0 + d if d % hrv_every == 0 else np.nan,
            "rhr_bpm": 55.0, "recovery_pct": 60.0, "load_trimp": load,
            "z4_min": 6.0, "z5_min": 3.0, "strength_min": np.nan, "source": source,
        })
    return rows


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    rows = (_athlete("a", 40, skip=(10, 11)) + _athlete("b", 60, source="oura", load=None)
            + _athlete("c", 40, hrv_every=3) + _athlete("d", 5))
    frame = _frame(rows)
    # Athlete a: a missing load on day 5, measured zero load on day 6 (u = 0 although no zones).
    frame.loc[(frame.user_id == "a") & (frame.date == "2024-01-06"), "load_trimp"] = np.nan
    day6 = (frame.user_id == "a") & (frame.date == "2024-01-07")
    frame.loc[day6, ["load_trimp", "z4_min", "z5_min"]] = [0.0, np.nan, np.nan]
    return frame


def test_shapes_units_and_fills(synthetic):
    arrays = prepare_arrays(synthetic)
    assert arrays.user_ids == ("a", "b")  # c: 14 HRV days < 28; d: 5 days, dropped by assess
    assert arrays.sources == ("oura", "whoop")
    assert list(arrays.source_index) == [1, 0]
    assert arrays.n_days == 60 and list(arrays.n_valid) == [40, 60]
    a = 0
    # Calendar-filled: the two missing rows of athlete a are days with NaN targets.
    assert arrays.valid[a].sum() == 40 and np.isnan(arrays.hrv[a, 10:12]).all()
    assert arrays.hrv[a, 0] == pytest.approx(np.log(50.0))  # ln ms
    assert arrays.rhr[a, 0] == 55.0 and arrays.recovery[a, 0] == 60.0
    # Loads: w = TRIMP / 100; missing (day 5 and the calendar-filled days) → the median of the
    # known loads before that day.
    assert arrays.load[a, 0] == pytest.approx(1.5)
    assert not arrays.load_known[a, [5, 10, 11]].any() and arrays.load_known[a, 6]
    assert arrays.load[a, 5] == pytest.approx(1.5) and arrays.load[a, 6] == 0.0
    # u = (z4 + z5 + strength) / 60 h; a measured zero load means u = 0.
    assert arrays.hi_load[a, 0] == pytest.approx(9.0 / 60.0)
    assert arrays.hi_load_known[a, 6] and arrays.hi_load[a, 6] == 0.0
    # Athlete b has no load at all: the median known load of the frame, flagged unknown.
    b = 1
    assert not arrays.load_known[b].any() and np.allclose(arrays.load[b], 1.5)
    # Padding: invalid, NaN targets, zero load, NaT dates.
    assert not arrays.valid[a, 40:].any() and np.isnan(arrays.hrv[a, 40:]).all()
    assert (arrays.load[a, 40:] == 0).all() and np.isnat(arrays.dates[a, 40:]).all()
    assert arrays.dates[a, 0] == np.datetime64("2024-01-01")
    assert (np.diff(arrays.dates[a, :40]).astype(int) == 1).all()


def test_initial_state_is_steady_state_at_mean_load(synthetic):
    arrays = prepare_arrays(synthetic)
    valid = arrays.valid
    assert np.allclose(arrays.mean_load, (arrays.load * valid).sum(1) / valid.sum(1))
    decays = banister.decay_factors(REFERENCE_TAUS_DAYS["tau_fit"], REFERENCE_TAUS_DAYS["tau_fat"],
                                    params.TAU_FAST_DAYS)
    expected = banister.steady_morning_state(arrays.mean_load, arrays.mean_hi_load, decays)
    assert np.allclose(arrays.initial_state, expected)
    assert arrays.initial_state.shape == (2, banister.N_CHANNELS)


def test_report_lists_every_athlete_with_a_reason(synthetic):
    report = prepare_arrays(synthetic).report.set_index("user_id")
    assert set(report.index) == {"a", "b", "c", "d"}
    assert report.loc["c", "reason"].startswith("only 14 HRV days")
    assert "assess_athletes" in report.loc["d", "reason"]
    assert report.loc[["a", "b"], "included"].all() and not report.loc[["c", "d"], "included"].any()


def test_max_days_keeps_the_most_recent_days_and_min_hrv_days(synthetic):
    arrays = prepare_arrays(synthetic, max_days=30, min_hrv_days=10)
    assert arrays.user_ids == ("a", "b", "c") and list(arrays.n_valid) == [30, 30, 30]
    assert arrays.dates[0, -1] == np.datetime64("2024-02-09")  # a's last day kept
    assert arrays.hrv[0, -1] == pytest.approx(np.log(50.0 + 39))
    with pytest.raises(ValueError, match="no athlete"):
        prepare_arrays(synthetic, min_hrv_days=1000)


def test_window_ends_at_the_last_observation():
    rows = _athlete("a", 40)
    rows += [{"user_id": "a", "date": pd.Timestamp("2024-03-01"), "load_trimp": 100.0,
              "source": "whoop"}]
    arrays = prepare_arrays(_frame(rows))
    assert arrays.n_days == 40  # the trailing load-only day informs nothing


def test_subset_keeps_sources_and_trims_days(synthetic):
    arrays = prepare_arrays(synthetic)
    sub = arrays.subset([0])
    assert sub.user_ids == ("a",) and sub.n_days == 40 and sub.sources == arrays.sources
    assert np.array_equal(sub.hrv[0], arrays.hrv[0, :40], equal_nan=True)
    for target in TARGETS:
        assert sub.target(target).shape == (1, 40)


@pytest.mark.slow
def test_shipped_data():
    from physiology_model.data.loaders import load_exports

    table = load_exports(["data/real"])
    arrays = prepare_arrays(table, max_days=365)
    frame = table.frame
    included = arrays.report[arrays.report.included]
    assert arrays.n_athletes == len(included) >= 40
    for a, user in enumerate(arrays.user_ids):
        rows = frame[frame.user_id == user]
        window = rows[rows.date >= pd.Timestamp(arrays.dates[a, 0])]
        window = window[window.date <= pd.Timestamp(arrays.dates[a, arrays.n_valid[a] - 1])]
        assert np.isfinite(arrays.hrv[a]).sum() == window.hrv_rmssd_ms.notna().sum() >= 28
        assert np.isfinite(arrays.rhr[a]).sum() == window.rhr_bpm.notna().sum()


def test_head_recomputes_means_and_round_trips(synthetic):
    arrays = prepare_arrays(synthetic)
    head = arrays.head(10)
    assert head.n_days == 10 and head.user_ids == arrays.user_ids
    assert np.allclose(head.mean_load, arrays.load[:, :10].mean(axis=1))
    assert np.array_equal(head.hrv, arrays.hrv[:, :10], equal_nan=True)
    from physiology_model.model.arrays import stack_series

    again = stack_series(arrays.to_series(), arrays.report)
    assert np.array_equal(again.load, arrays.load) and again.sources == arrays.sources


def test_the_load_fill_is_causal_and_shared():
    """Unknown days take the median of the known loads before them; later loads never change
    an earlier fill; before the first known load, the head's median (else the fallback)."""
    x = np.array([np.nan, 2.0, np.nan, 4.0, 10.0, np.nan, np.nan])
    filled = fill_missing_loads(x, fallback=9.0, head_days=3)
    assert filled[0] == 2.0  # before any known load: median of the first 3 days' known loads
    assert filled[2] == 2.0 and filled[5] == 4.0 and filled[6] == 4.0  # medians of {2}, {2,4,10}
    assert np.array_equal(filled[[1, 3, 4]], x[[1, 3, 4]])
    changed = x.copy()
    changed[4] = 100.0  # a later load does not move the fill of day 2
    assert fill_missing_loads(changed, 9.0, 3)[2] == filled[2]
    assert np.all(fill_missing_loads(np.full(4, np.nan), 9.0, 3) == 9.0)
    # One definition of (w, u): u counts whichever zone/strength minutes are known, and a
    # measured zero load is a known u = 0.
    frame = pd.DataFrame({"load_trimp": [150.0, 0.0, np.nan, 80.0],
                          "z4_min": [6.0, np.nan, np.nan, np.nan],
                          "z5_min": [3.0, np.nan, np.nan, np.nan],
                          "strength_min": [np.nan, np.nan, np.nan, 30.0]})
    w, u = daily_loads(frame)
    np.testing.assert_allclose(w, [1.5, 0.0, np.nan, 0.8])
    np.testing.assert_allclose(u, [9.0 / 60.0, 0.0, np.nan, 0.5])
