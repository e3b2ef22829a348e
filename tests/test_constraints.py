"""Safety rules (DESIGN §7): thresholds, reasons, enforcement, the history buffer, penalties,
config round trips, the real-athlete mask, and safety as a property."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from physiology_model.data.table import ACTIONS
from physiology_model.errors import DataError
from simulator.constraints import (
    DEFAULT_SAFETY_CONFIG,
    TRAINED_DAY,
    UNKNOWN_DAY,
    ActionHistory,
    Rule,
    SafetyConfig,
    SafetyInputs,
    consecutive_hard_days,
    consecutive_non_rest_days,
    day_codes,
    dump_safety_config,
    enforce,
    explain,
    hard_mask,
    hrv_drop_sd,
    load_safety_config,
    mask_from_table,
    overtraining_score,
    soft_penalty,
)

ROOT = Path(__file__).resolve().parents[1]
A = {name: i for i, name in enumerate(ACTIONS)}
REST, AR, Z2, TEMPO, HIIT, STRENGTH = (A[a] for a in ACTIONS)
HARD = {TEMPO, HIIT, STRENGTH}
CFG = SafetyConfig()
# A week with rests and no hard streak: no history rule fires.
CALM_HISTORY = (REST, Z2, HIIT, REST, Z2, STRENGTH)


def inputs(n: int = 1, **values: object) -> SafetyInputs:
    """One or n athletes with unremarkable readings, overridden by `values`."""
    base: dict[str, object] = {
        "recovery_pct": 60.0, "recovery_pct_yesterday": 60.0, "ln_hrv": 4.0,
        "ln_hrv_baseline": 4.0, "ln_hrv_baseline_sd": 0.25, "rhr_bpm": 55.0, "injury": 0.0,
        "history": CALM_HISTORY}
    base.update(values)
    out = {}
    for key, value in base.items():
        if key == "history":
            out[key] = np.broadcast_to(np.asarray(value, dtype=np.int64), (n, 6)).copy()
        else:
            out[key] = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
    return SafetyInputs(**out)


def allowed(result, athlete: int = 0) -> set[int]:
    return set(np.flatnonzero(result.mask[athlete]).tolist())


ALL = set(range(6))


# ---------------------------------------------------------------- each rule at its threshold


def test_calm_morning_allows_everything():
    result = hard_mask(inputs())
    assert allowed(result) == ALL
    assert result.reasons[0] == 0
    assert not result.per_action.any()


@pytest.mark.parametrize(("today", "yesterday", "fires"), [
    (29.9, 29.9, True), (0.0, 29.99, True), (30.0, 29.9, False), (29.9, 30.0, False),
    (30.0, 30.0, False), (29.9, np.nan, False), (np.nan, 10.0, False),
])
def test_recovery_floor_needs_two_mornings_below_30(today, yesterday, fires):
    result = hard_mask(inputs(recovery_pct=today, recovery_pct_yesterday=yesterday))
    assert allowed(result) == ({REST} if fires else ALL)
    assert bool(result.reasons[0] & Rule.RECOVERY_FLOOR) == fires


def test_recovery_floor_over_one_day_reads_today_only():
    config = replace(CFG, recovery_floor_days=1)
    assert allowed(hard_mask(inputs(recovery_pct=29.9), config)) == {REST}
    assert allowed(hard_mask(inputs(recovery_pct=30.0, recovery_pct_yesterday=5.0), config)) == ALL


@pytest.mark.parametrize(("ln_hrv", "fires"), [
    (np.nextafter(3.5, 0.0), True), (3.5, False), (3.2, True), (4.5, False), (np.nan, False),
])
def test_hrv_below_baseline_minus_2_sd_blocks_z45(ln_hrv, fires):
    # baseline 4.0, SD 0.25: the threshold is exactly 3.5
    result = hard_mask(inputs(ln_hrv=ln_hrv))
    assert allowed(result) == (ALL - {TEMPO, HIIT} if fires else ALL)
    assert result.reasons[0] == (Rule.HRV_DROP if fires else 0)


@pytest.mark.parametrize("unestablished", [{"ln_hrv_baseline": np.nan},
                                           {"ln_hrv_baseline_sd": np.nan},
                                           {"ln_hrv_baseline_sd": 0.0},
                                           # the feature builder's fill: baseline = today
                                           {"ln_hrv_baseline": 3.0}])
def test_hrv_rule_cannot_fire_without_a_baseline(unestablished):
    result = hard_mask(inputs(ln_hrv=3.0, **unestablished))
    assert allowed(result) == ALL


@pytest.mark.parametrize(("history", "fires"), [
    ((REST, Z2, REST, TEMPO, HIIT, STRENGTH), True),
    ((REST, HIIT, HIIT, HIIT, HIIT, HIIT), True),  # (from a looser policy) still blocked
    ((REST, Z2, REST, Z2, HIIT, STRENGTH), False),  # two hard days
    ((REST, HIIT, STRENGTH, Z2, TEMPO, HIIT), False),
    ((REST, Z2, TEMPO, UNKNOWN_DAY, HIIT, HIIT), False),  # an unknown day breaks the streak
    ((REST, Z2, REST, TRAINED_DAY, HIIT, HIIT), False),  # trained, type unknown: not hard
])
def test_at_most_three_hard_days_in_a_row(history, fires):
    result = hard_mask(inputs(history=history))
    assert allowed(result) == (ALL - HARD if fires else ALL)
    assert result.reasons[0] == (Rule.HARD_STREAK if fires else 0)


@pytest.mark.parametrize(("history", "fires"), [
    ((Z2, Z2, AR, Z2, AR, Z2), True),  # 6 days without rest: the 7th must be rest
    ((Z2, TRAINED_DAY, AR, Z2, AR, Z2), True),  # a trained day of unknown type is not rest
    ((REST, Z2, AR, Z2, AR, Z2), False),  # 5 days without rest
    ((Z2, Z2, AR, Z2, AR, REST), False),
    ((Z2, Z2, UNKNOWN_DAY, Z2, AR, Z2), False),  # no evidence that it was not a rest day
])
def test_at_least_one_rest_day_in_seven(history, fires):
    result = hard_mask(inputs(history=history))
    assert allowed(result) == ({REST} if fires else ALL)
    assert result.reasons[0] == (Rule.NO_REST if fires else 0)


def test_a_fresh_history_fires_no_history_rule():
    result = hard_mask(inputs(history=(UNKNOWN_DAY,) * 6))
    assert allowed(result) == ALL


def test_history_rules_read_the_last_columns_of_a_longer_history():
    # 8 columns: the 6 days without rest are the last 6; the rest day is before the window
    history = np.array([[REST, REST, Z2, Z2, Z2, Z2, Z2, Z2]])
    result = hard_mask(replace(inputs(), history=history))
    assert allowed(result) == {REST}


@pytest.mark.parametrize(("injury", "fires"), [(1.0, True), (0.0, False), (np.nan, False)])
def test_injury_allows_rest_and_active_recovery_only(injury, fires):
    result = hard_mask(inputs(injury=injury))
    assert allowed(result) == ({REST, AR} if fires else ALL)
    assert result.reasons[0] == (Rule.INJURY if fires else 0)


@pytest.mark.parametrize("bad", [
    {"recovery_pct": 150.0}, {"recovery_pct": -1.0}, {"recovery_pct_yesterday": np.inf},
    {"rhr_bpm": 300.0}, {"rhr_bpm": -np.inf}, {"ln_hrv": np.log(1000.0)},
    {"ln_hrv": np.log(2.0)}, {"ln_hrv": -np.inf}, {"injury": 2.0}, {"injury": -1.0},
])
def test_out_of_range_readings_allow_only_safe_actions(bad):
    result = hard_mask(inputs(**bad))
    assert allowed(result) == {REST, AR}
    assert result.reasons[0] & Rule.OUT_OF_RANGE
    assert "physiological range" in " ".join(result.explain(0))


def test_out_of_range_readings_are_not_evidence_for_other_rules():
    # recovery −5 % is a sensor error, not a very bad morning; HRV 1 ms is not an HRV crash
    result = hard_mask(inputs(recovery_pct=-5.0, recovery_pct_yesterday=10.0,
                              ln_hrv=np.log(1.0)))
    assert result.reasons[0] == Rule.OUT_OF_RANGE


def test_missing_hrv_and_rhr_allow_only_safe_actions():
    result = hard_mask(inputs(ln_hrv=np.nan, rhr_bpm=np.nan))
    assert allowed(result) == {REST, AR}
    assert result.reasons[0] == Rule.MISSING_READINGS
    assert result.explain(0) == [("no HRV and no resting heart rate this morning: only rest or "
                                 "active_recovery")]
    # one of the two is enough
    assert allowed(hard_mask(inputs(ln_hrv=np.nan))) == ALL
    assert allowed(hard_mask(inputs(rhr_bpm=np.nan))) == ALL


def test_per_action_names_every_rule_that_masks_an_action():
    result = hard_mask(inputs(ln_hrv=3.0, history=(REST, Z2, REST, TEMPO, HIIT, STRENGTH)))
    assert result.reasons[0] == Rule.HRV_DROP | Rule.HARD_STREAK
    per = result.per_action[0]
    assert per[TEMPO] == per[HIIT] == Rule.HRV_DROP | Rule.HARD_STREAK
    assert per[STRENGTH] == Rule.HARD_STREAK
    assert per[REST] == per[AR] == per[Z2] == 0
    np.testing.assert_array_equal(result.mask, result.per_action == 0)


def test_explain_uses_the_config_thresholds():
    config = replace(CFG, recovery_floor_pct=25.0, rest_window_days=5)
    text = explain(Rule.RECOVERY_FLOOR | Rule.NO_REST, config)
    assert text == ["recovery below 25 % on the last 2 morning(s): rest only",
                    "no rest day in the last 4 days: rest today (at least one rest day in any 5)"]
    assert explain(0) == []
    with pytest.raises(ValueError, match="rule flags"):
        explain(128)


def test_rules_follow_the_config():
    config = replace(CFG, recovery_floor_pct=50.0, hrv_block_sd=1.0, max_consecutive_hard=2,
                     rest_window_days=4, injury_allowed=("rest",))
    assert allowed(hard_mask(inputs(recovery_pct=45.0, recovery_pct_yesterday=49.0), config)) \
        == {REST}
    assert allowed(hard_mask(inputs(ln_hrv=3.7), config)) == ALL - {TEMPO, HIIT}
    assert allowed(hard_mask(inputs(history=(Z2, Z2, Z2, REST, HIIT, STRENGTH)), config)) \
        == ALL - HARD
    assert allowed(hard_mask(inputs(history=(REST, REST, REST, Z2, AR, Z2)), config)) == {REST}
    assert allowed(hard_mask(inputs(injury=1.0), config)) == {REST}


def test_shape_errors_raise():
    good = inputs(3)
    with pytest.raises(ValueError, match="rhr_bpm"):
        hard_mask(replace(good, rhr_bpm=np.zeros(2)))
    with pytest.raises(ValueError, match="history must have shape"):
        hard_mask(replace(good, history=np.zeros((3, 5), dtype=int)))
    with pytest.raises(ValueError, match="history codes"):
        hard_mask(replace(good, history=np.full((3, 6), 6)))
    with pytest.raises(ValueError, match="integer"):
        hard_mask(replace(good, history=np.zeros((3, 6))))


# ---------------------------------------------------------------- enforcement


def test_enforce_downgrades_to_the_easiest_sensible_session():
    masks = np.array([
        [1, 1, 1, 0, 0, 1],  # HRV drop: HIIT → Z2 (not strength: another hard session)
        [1, 1, 1, 0, 0, 0],  # hard streak: strength → Z2
        [1, 1, 0, 0, 0, 0],  # injury: Z2 → active recovery
        [1, 0, 0, 0, 0, 0],  # rest only: active recovery → rest
        [1, 1, 1, 0, 0, 0],  # tempo → Z2
        [1, 1, 1, 1, 1, 1],  # allowed: unchanged
        [1, 0, 1, 0, 0, 0],  # never more than asked: AR masked, Z2 allowed → rest
    ], dtype=bool)
    requested = np.array([HIIT, STRENGTH, Z2, AR, TEMPO, HIIT, AR])
    executed, violated = enforce(requested, masks)
    np.testing.assert_array_equal(executed, [Z2, Z2, AR, REST, Z2, HIIT, REST])
    np.testing.assert_array_equal(violated, [1, 1, 1, 1, 1, 0, 1])


def test_enforce_rejects_bad_arguments():
    mask = np.ones((2, 6), dtype=bool)
    with pytest.raises(ValueError, match="0-5"):
        enforce(np.array([0, 6]), mask)
    with pytest.raises(ValueError, match="shape"):
        enforce(np.array([0]), mask)
    with pytest.raises(ValueError, match="bool"):
        enforce(np.array([0, 1]), mask.astype(int))
    mask[1, REST] = False
    with pytest.raises(ValueError, match="rest"):
        enforce(np.array([0, 1]), mask)


# ---------------------------------------------------------------- safety as a property

unit_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
physiology = st.one_of(unit_floats, st.floats(0, 100), st.sampled_from([29.9, 30.0, 3.5, 0.0]))
codes = st.integers(TRAINED_DAY, 5)


@st.composite
def random_inputs(draw) -> tuple[SafetyInputs, np.ndarray]:
    n = draw(st.integers(1, 12))
    vec = arrays(np.float64, n, elements=physiology)
    values = {name: draw(vec) for name in ("recovery_pct", "recovery_pct_yesterday",
                                           "ln_hrv", "ln_hrv_baseline", "ln_hrv_baseline_sd",
                                           "rhr_bpm")}
    values["injury"] = draw(arrays(np.float64, n, elements=st.one_of(
        st.sampled_from([0.0, 1.0, np.nan]), unit_floats)))
    history = draw(arrays(np.int64, (n, 6), elements=codes))
    requested = draw(arrays(np.int64, n, elements=st.integers(0, 5)))
    return SafetyInputs(history=history, **values), requested


@settings(max_examples=300, deadline=None)
@given(random_inputs())
def test_executed_actions_are_always_allowed(case):
    safety_inputs, requested = case
    result = hard_mask(safety_inputs)
    assert result.mask[:, REST].all()  # never empty
    executed, violated = enforce(requested, result.mask)
    rows = np.arange(len(requested))
    assert result.mask[rows, executed].all()
    np.testing.assert_array_equal(violated, ~result.mask[rows, requested])
    np.testing.assert_array_equal(executed[~violated], requested[~violated])
    # a replacement is never a hard session
    assert not np.isin(executed[violated], list(HARD)).any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hard_share=st.floats(0.0, 1.0))
def test_a_long_run_never_has_four_hard_days_or_seven_without_rest(seed, hard_share):
    rng = np.random.default_rng(seed)
    n, days = 32, 120
    history = ActionHistory(n)
    executed_log = np.empty((n, days), dtype=int)
    for day in range(days):
        # random physiology (some missing, some absurd) and requests biased towards hard days
        readings = inputs(n, recovery_pct=rng.uniform(-10, 110, n),
                          recovery_pct_yesterday=rng.uniform(-10, 110, n),
                          ln_hrv=np.where(rng.random(n) < 0.1, np.nan, rng.normal(4.0, 0.4, n)),
                          rhr_bpm=np.where(rng.random(n) < 0.1, np.nan, rng.normal(55, 30, n)),
                          injury=(rng.random(n) < 0.05).astype(float))
        readings = replace(readings, history=history.array())
        hard_request = rng.choice([TEMPO, HIIT, STRENGTH], n)
        requested = np.where(rng.random(n) < hard_share, hard_request, rng.integers(1, 3, n))
        executed, _ = enforce(requested, hard_mask(readings).mask)
        history.push(executed)
        executed_log[:, day] = executed
    is_hard = np.isin(executed_log, list(HARD))
    not_rest = executed_log != REST
    for window, flags in ((4, is_hard), (7, not_rest)):
        runs = np.lib.stride_tricks.sliding_window_view(flags, window, axis=1).all(axis=2)
        assert not runs.any(), f"{window} days in a row"


def reference_mask(rec: float, rec_y: float, ln_hrv: float, base: float, sd: float, rhr: float,
                   injury: float, history: list[int]) -> tuple[set[int], int]:
    """The rules of DESIGN §7 for one athlete, written out plainly (no arrays)."""
    def missing(x: float) -> bool:
        return math.isnan(x)

    def inside(x: float, lo: float, hi: float) -> bool:
        return missing(x) or lo <= x <= hi

    valid_rec, valid_rec_y = inside(rec, 0, 100), inside(rec_y, 0, 100)
    valid_hrv = inside(ln_hrv, np.log(3.0), np.log(300.0))
    fired = 0
    if not (valid_rec and valid_rec_y and valid_hrv and inside(rhr, 25, 120)
            and inside(injury, 0, 1)):
        fired |= Rule.OUT_OF_RANGE
    if missing(ln_hrv) and missing(rhr):
        fired |= Rule.MISSING_READINGS
    if valid_rec and valid_rec_y and rec < 30 and rec_y < 30:
        fired |= Rule.RECOVERY_FLOOR
    if valid_hrv and sd > 0 and ln_hrv < base - 2 * sd:
        fired |= Rule.HRV_DROP
    if all(day in HARD for day in history[-3:]):
        fired |= Rule.HARD_STREAK
    if all(day not in (REST, UNKNOWN_DAY) for day in history[-6:]):
        fired |= Rule.NO_REST
    if 0 < injury <= 1:
        fired |= Rule.INJURY
    ok = set(ALL)
    if fired & (Rule.RECOVERY_FLOOR | Rule.NO_REST):
        ok &= {REST}
    if fired & Rule.HRV_DROP:
        ok -= {TEMPO, HIIT}
    if fired & Rule.HARD_STREAK:
        ok -= HARD
    if fired & Rule.INJURY:
        ok &= {REST, AR}
    if fired & (Rule.OUT_OF_RANGE | Rule.MISSING_READINGS):
        ok &= {REST, AR}
    return ok, int(fired)


def test_batched_mask_equals_a_per_athlete_loop():
    rng = np.random.default_rng(7)
    n = 400

    def column(centre: float, spread: float, odd: float = 0.1) -> np.ndarray:
        x = rng.normal(centre, spread, n)
        pick = rng.random(n)
        x[pick < odd] = np.nan
        absurd = (pick >= odd) & (pick < 1.5 * odd)
        x[absurd] = rng.choice([-np.inf, np.inf, -5.0, 1e6], int(absurd.sum()))
        return x

    values = {"recovery_pct": column(35, 20), "recovery_pct_yesterday": column(35, 20),
              "ln_hrv": column(4.0, 0.5), "ln_hrv_baseline": column(4.1, 0.2),
              "ln_hrv_baseline_sd": column(0.15, 0.1), "rhr_bpm": column(60, 25),
              "injury": rng.choice([0.0, 1.0, np.nan, 0.5, 3.0], n, p=[.7, .1, .1, .05, .05])}
    # histories drawn so that streaks are common: mostly hard or mostly non-rest
    history = np.where(rng.random((n, 6)) < 0.8, rng.choice([TEMPO, HIIT, STRENGTH, Z2], (n, 6)),
                       rng.integers(TRAINED_DAY, 6, (n, 6)))
    result = hard_mask(SafetyInputs(history=history, **values))
    fired_rules = 0
    for i in range(n):
        expected_ok, expected_fired = reference_mask(
            *(float(values[k][i]) for k in ("recovery_pct", "recovery_pct_yesterday", "ln_hrv",
                                            "ln_hrv_baseline", "ln_hrv_baseline_sd", "rhr_bpm",
                                            "injury")), history[i].tolist())
        assert allowed(result, i) == expected_ok, i
        assert result.reasons[i] == expected_fired, i
        fired_rules |= expected_fired
    assert fired_rules == 2 * max(Rule) - 1  # the cases exercised every rule


# ---------------------------------------------------------------- the history buffer


def test_action_history_is_a_ring_buffer_of_the_last_days():
    history = ActionHistory(3)
    assert history.days == 6
    np.testing.assert_array_equal(history.array(), np.full((3, 6), UNKNOWN_DAY))
    for day in range(8):
        history.push(np.array([day % 6, HIIT, REST]))
    np.testing.assert_array_equal(history.array()[0], [2, 3, 4, 5, 0, 1])
    np.testing.assert_array_equal(history.consecutive_hard(), [0, 6, 0])
    np.testing.assert_array_equal(history.consecutive_non_rest(), [1, 6, 0])
    history.reset(np.array([True, False, False]))
    np.testing.assert_array_equal(history.array()[0], [UNKNOWN_DAY] * 6)
    np.testing.assert_array_equal(history.array()[1], [HIIT] * 6)
    start = np.array([[REST, Z2, Z2, TRAINED_DAY, Z2, STRENGTH]])
    history.reset([2], initial=start)
    np.testing.assert_array_equal(history.array()[2], start[0])
    history.push(np.array([AR, AR, TEMPO]))
    np.testing.assert_array_equal(history.array()[2], [Z2, Z2, TRAINED_DAY, Z2, STRENGTH, TEMPO])
    np.testing.assert_array_equal(history.consecutive_hard(), [0, 0, 2])
    np.testing.assert_array_equal(history.consecutive_non_rest(), [1, 6, 6])
    with pytest.raises(ValueError, match="codes"):
        history.push(np.array([0, 0, 9]))
    with pytest.raises(ValueError, match="shape"):
        history.push(np.array([0, 0]))


def test_streak_helpers_stop_at_unknown_days():
    history = np.array([[HIIT, HIIT, UNKNOWN_DAY, HIIT, TEMPO, STRENGTH],
                        [Z2, Z2, REST, TRAINED_DAY, Z2, AR],
                        [Z2, Z2, Z2, Z2, UNKNOWN_DAY, Z2]])
    np.testing.assert_array_equal(consecutive_hard_days(history), [3, 0, 0])
    np.testing.assert_array_equal(consecutive_non_rest_days(history), [3, 3, 1])


# ---------------------------------------------------------------- soft penalty, overtraining


def test_soft_penalty_matches_the_seed_formula():
    recovery = np.array([60.0, 33.0, 30.0, 0.0, 60.0, 60.0, 60.0, 60.0, 20.0, np.nan, -50.0])
    hard = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 5.0, 0.0, 4.0, np.nan, 0.0])
    drop = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.5, np.nan, 0.0])
    expected = [0, 0, 30, 330, 0, 20, 60, 0, 130 + 40 + 15, 0, 330]
    np.testing.assert_allclose(soft_penalty(recovery, hard, drop), expected)
    np.testing.assert_allclose(soft_penalty(60.0, 0.0, np.nextafter(2.0, 3.0)), 15.0)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, 5, elements=unit_floats), arrays(np.float64, 5, elements=unit_floats),
       arrays(np.float64, 5, elements=unit_floats))
def test_soft_penalty_is_never_negative_or_nan(recovery, hard, drop):
    penalty = soft_penalty(recovery, hard, drop)
    assert not np.isnan(penalty).any() and (penalty >= 0).all()


def test_hrv_drop_sd_is_in_baseline_sds():
    np.testing.assert_allclose(hrv_drop_sd(np.array([3.5, 4.5, 3.0, 3.0]),
                                           np.array([4.0, 4.0, np.nan, 4.0]),
                                           np.array([0.25, 0.25, 0.2, 0.0])),
                               [2.0, -2.0, np.nan, np.nan])


def test_overtraining_score_counts_the_three_signs():
    bad_hrv = np.array([0, 4, 3, 0, 0, 4, np.nan])
    recovery_7d = np.array([60, 60, 60, 39.9, 40, 30, np.nan])
    rest_days_14d = np.array([2, 2, 2, 2, 0, 0, np.nan])
    np.testing.assert_array_equal(overtraining_score(bad_hrv, recovery_7d, rest_days_14d),
                                  [0, 1, 0, 1, 1, 3, 0])


# ---------------------------------------------------------------- configuration


def test_shipped_config_equals_the_defaults():
    assert load_safety_config(ROOT / "configs" / "safety.toml") == SafetyConfig()


def test_config_round_trips(tmp_path):
    config = replace(CFG, recovery_floor_pct=25.5, max_consecutive_hard=2,
                     hard_actions=("hiit", "strength"), penalty_hrv_drop=7.25)
    path = tmp_path / "safety.toml"
    path.write_text(dump_safety_config(config))
    assert load_safety_config(path) == config


def test_config_keys_left_out_keep_their_defaults(tmp_path):
    path = tmp_path / "safety.toml"
    path.write_text("hrv_block_sd = 1.5\nmax_consecutive_hard = 2\n")
    assert load_safety_config(path) == replace(CFG, hrv_block_sd=1.5, max_consecutive_hard=2)


@pytest.mark.parametrize(("text", "problem"), [
    ("recovery_flor_pct = 30\n", "unknown keys ['recovery_flor_pct']"),
    ("recovery_floor_days = 3\n", "recovery_floor_days"),
    ("recovery_floor_pct = 130\n", "recovery_floor_pct"),
    ("max_consecutive_hard = 2.5\n", "max_consecutive_hard must be an integer"),
    ("hrv_block_sd = \"two\"\n", "hrv_block_sd must be a number"),
    ("hard_actions = \"hiit\"\n", "hard_actions must be an array"),
    ("hard_actions = [\"sprint\"]\n", "hard_actions: unknown actions ['sprint']"),
    ("hard_actions = [\"rest\", \"hiit\"]\n", "hard_actions must not contain 'rest'"),
    ("injury_allowed = [\"active_recovery\"]\n", "injury_allowed must contain 'rest'"),
    ("intensity_order = [\"hiit\", \"rest\"]\n", "intensity_order"),
    ("hrv_block_sd = \n", "not valid TOML"),
])
def test_bad_config_errors_name_the_file_and_key(tmp_path, text, problem):
    path = tmp_path / "my_safety.toml"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_safety_config(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_config_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot be read"):
        load_safety_config(tmp_path / "absent.toml")


# ---------------------------------------------------------------- one real athlete's table


def athlete_frame(days: int = 40, seed: int = 3) -> pd.DataFrame:
    """A calm athlete: HRV ≈ 60 ms, rest every third day, recovery ≈ 60 %."""
    rng = np.random.default_rng(seed)
    sessions = np.array(["rest", "z2_aerobic", "hiit"] * days)[:days]
    return pd.DataFrame({
        "user_id": "u1",
        "date": pd.date_range("2024-03-01", periods=days, freq="D"),
        "hrv_rmssd_ms": 60.0 * np.exp(rng.normal(0.0, 0.08, days)),
        "rhr_bpm": rng.normal(52.0, 1.5, days),
        "recovery_pct": rng.uniform(50.0, 80.0, days),
        "injury": 0.0,
        "session": sessions,
        "load_trimp": np.where(sessions == "rest", 0.0, 130.0),
    })


def test_table_mask_of_a_calm_athlete_allows_everything():
    result = mask_from_table(athlete_frame())
    assert result.mask.shape == (1, 6)
    assert result.mask.all() and result.reasons[0] == 0


def test_table_mask_uses_the_feature_builders_hrv_baseline():
    frame = athlete_frame()
    frame.loc[frame.index[-1], "hrv_rmssd_ms"] = 40.0  # ln 40 ≈ ln 60 − 0.41, > 2 SD of 0.08
    assert mask_from_table(frame).reasons[0] == Rule.HRV_DROP
    # with only 5 earlier days the baseline is not established: the rule cannot fire
    assert mask_from_table(frame.iloc[-6:]).reasons[0] == 0


def test_table_mask_reads_the_features_the_caller_built():
    """A planner that has built the morning's features (with its planned events) hands them
    over instead of their being built again: the same verdict."""
    from simulator.observation import observations_from_table

    frame = athlete_frame()
    frame.loc[frame.index[-1], "hrv_rmssd_ms"] = 40.0
    features = observations_from_table(frame, events={"u1": ["2024-04-20"]})
    given, built = mask_from_table(frame, features=features), mask_from_table(frame)
    assert given.reasons[0] == built.reasons[0] == Rule.HRV_DROP
    np.testing.assert_array_equal(given.mask, built.mask)


def test_table_mask_reads_today_and_yesterdays_recovery():
    frame = athlete_frame()
    frame.loc[frame.index[-2:], "recovery_pct"] = 25.0
    assert mask_from_table(frame).reasons[0] == Rule.RECOVERY_FLOOR
    assert mask_from_table(frame).notes == ()
    # yesterday's row absent: yesterday's recovery is missing, which must not switch the rule
    # off for a real athlete (issue 21): today's low morning counts as two, with a note
    gap = mask_from_table(frame.drop(index=frame.index[-2]))
    assert gap.reasons[0] == Rule.RECOVERY_FLOOR and gap.mask[0].tolist() == [
        a == "rest" for a in ACTIONS]
    assert "yesterday's recovery is missing" in gap.explain(0)[-1]
    frame.loc[frame.index[-2], "recovery_pct"] = np.nan
    assert mask_from_table(frame).reasons[0] == Rule.RECOVERY_FLOOR
    frame.loc[frame.index[-2], "recovery_pct"] = 250.0  # out of range: unknown, not fine
    assert mask_from_table(frame).reasons[0] & Rule.RECOVERY_FLOOR
    # a good morning after a missing one: nothing fires
    frame.loc[frame.index[-2:], "recovery_pct"] = [np.nan, 70.0]
    assert mask_from_table(frame).reasons[0] == 0


def test_the_simulators_rule_still_needs_two_measured_low_mornings():
    """The env's masks (hard_mask) keep the seed's rule: the synthetic evaluation is unchanged."""
    inputs = SafetyInputs(
        recovery_pct=np.array([6.0, 6.0]), recovery_pct_yesterday=np.array([np.nan, 20.0]),
        ln_hrv=np.full(2, np.log(60.0)), ln_hrv_baseline=np.full(2, np.log(60.0)),
        ln_hrv_baseline_sd=np.full(2, 0.1), rhr_bpm=np.full(2, 55.0), injury=np.zeros(2),
        history=np.full((2, DEFAULT_SAFETY_CONFIG.history_days), UNKNOWN_DAY))
    assert hard_mask(inputs).reasons.tolist() == [0, int(Rule.RECOVERY_FLOOR)]


def test_table_mask_reads_the_executed_days_before_the_last_row():
    frame = athlete_frame()
    frame.loc[frame.index[-7:-1], "session"] = "z2_aerobic"
    frame.loc[frame.index[-7:-1], "load_trimp"] = 130.0
    frame.loc[frame.index[-1], "session"] = "rest"  # today's own session is the decision
    assert mask_from_table(frame).reasons[0] == Rule.NO_REST
    # a day with unknown type but a training load is not rest; a day of ≤ 20 TRIMP is
    unknown = frame.copy()
    unknown.loc[unknown.index[-4], ["session", "load_trimp"]] = ["unknown", 250.0]
    assert mask_from_table(unknown).reasons[0] == Rule.NO_REST
    unknown.loc[unknown.index[-4], "load_trimp"] = 15.0
    assert mask_from_table(unknown).reasons[0] == 0
    # a day absent from the table is unknown, which breaks the run
    assert mask_from_table(frame.drop(index=frame.index[-3])).reasons[0] == 0


def test_table_mask_flags_missing_and_absurd_readings():
    frame = athlete_frame()
    frame.loc[frame.index[-1], ["hrv_rmssd_ms", "rhr_bpm"]] = np.nan
    result = mask_from_table(frame)
    assert result.reasons[0] == Rule.MISSING_READINGS
    assert set(np.flatnonzero(result.mask[0])) == {REST, AR}
    frame = athlete_frame()
    frame.loc[frame.index[-1], "hrv_rmssd_ms"] = 0.0
    assert mask_from_table(frame).reasons[0] == Rule.OUT_OF_RANGE


def test_table_mask_carries_an_injury_report_forward():
    frame = athlete_frame()
    frame.loc[frame.index[-2], "injury"] = 1.0
    frame.loc[frame.index[-1], "injury"] = np.nan
    assert mask_from_table(frame).reasons[0] == Rule.INJURY


def test_table_mask_rejects_bad_frames():
    frame = athlete_frame()
    with pytest.raises(ValueError, match="one athlete"):
        mask_from_table(pd.concat([frame, frame.assign(user_id="u2")]))
    with pytest.raises(ValueError, match="'date'"):
        mask_from_table(frame.drop(columns="date"))
    with pytest.raises(ValueError, match="no rows"):
        mask_from_table(frame.iloc[:0])
    with pytest.raises(ValueError, match="duplicate"):
        mask_from_table(pd.concat([frame, frame.iloc[-1:]]))


def test_day_codes_follow_the_feature_builders_rest_day():
    session = pd.Series(["hiit", "rest", "unknown", None, "unknown", None, "z2_aerobic"])
    load = pd.Series([150.0, 80.0, 150.0, 150.0, 10.0, np.nan, 5.0])
    np.testing.assert_array_equal(day_codes(session, load),
                                  [HIIT, REST, TRAINED_DAY, TRAINED_DAY, REST, UNKNOWN_DAY, REST])


def test_longest_runs_counts_each_athletes_longest_streak():
    from simulator.constraints import longest_runs

    flags = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0]], bool)
    assert longest_runs(flags).tolist() == [3, 3, 0]
    assert longest_runs(np.zeros((0, 2), bool)).tolist() == [0, 0]
    with pytest.raises(ValueError, match="days, N"):
        longest_runs(np.ones(4, bool))
