"""The Policy protocol helpers and the rule-based baselines (agents/policy.py, agents/baselines.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from agents.baselines import (
    FixedPeriodizationConfig,
    FixedPeriodizationPolicy,
    HRVGuidedConfig,
    HRVGuidedPolicy,
    RandomPolicy,
    SeedRulePolicy,
    hrv_baseline_established,
    week_nominal_load,
)
from agents.policy import (
    ACTION_INDEX,
    N_ACTIONS,
    N_FEATURES,
    DayCounter,
    Policy,
    check_batch,
    masked_choice,
    masked_sample,
    step_down,
    weekday_of,
)
from physiology_model.data.load import action_loads
from physiology_model.features.batch import POPULATION_REFERENCE, build_features, compute_features
from simulator.constraints import enforce
from simulator.observation import FEATURE_INDEX, observation_matrix

REST, AR, Z2, TEMPO, HIIT, STRENGTH = (ACTION_INDEX[a] for a in (
    "rest", "active_recovery", "z2_aerobic", "tempo_threshold", "hiit", "strength"))
MONDAY, TUESDAY = 0, 1


def make_obs(n: int, *, weekday: int | np.ndarray = 0, **values: float | np.ndarray) -> np.ndarray:
    """(n, F) observations at the population reference (no HRV baseline), on `weekday`, with
    the named features overridden."""
    obs = np.zeros((n, N_FEATURES), dtype=np.float32)
    obs[:, FEATURE_INDEX["ln_hrv"]] = POPULATION_REFERENCE["ln_hrv"]
    obs[:, FEATURE_INDEX["ln_hrv_baseline_28d"]] = POPULATION_REFERENCE["ln_hrv"]
    obs[:, FEATURE_INDEX["ln_hrv_baseline_sd_28d"]] = POPULATION_REFERENCE["ln_hrv_sd"]
    obs[:, FEATURE_INDEX["recovery_pct"]] = POPULATION_REFERENCE["recovery_pct"]
    angle = 2 * np.pi * np.asarray(weekday) / 7
    obs[:, FEATURE_INDEX["dow_sin"]] = np.sin(angle)
    obs[:, FEATURE_INDEX["dow_cos"]] = np.cos(angle)
    for name, value in values.items():
        obs[:, FEATURE_INDEX[name]] = value
    return obs


def random_masks(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random non-empty masks, with rest-only, active-recovery-only and all-allowed rows."""
    mask = rng.random((n, N_ACTIONS)) < 0.5
    mask[~mask.any(axis=1), REST] = True
    mask[0::5] = np.eye(N_ACTIONS, dtype=bool)[REST]
    mask[1::5] = np.eye(N_ACTIONS, dtype=bool)[AR]
    mask[2::5] = True
    return mask


def all_allowed(n: int) -> np.ndarray:
    return np.ones((n, N_ACTIONS), dtype=bool)


def baselines() -> list[Policy]:
    return [RandomPolicy(seed=1), SeedRulePolicy(), HRVGuidedPolicy(), FixedPeriodizationPolicy()]


# --------------------------------------------------------------------------------------------
# Every baseline


@pytest.mark.parametrize("policy", baselines(), ids=lambda p: p.name)
def test_policy_only_chooses_allowed_actions(policy: Policy) -> None:
    rng = np.random.default_rng(0)
    assert isinstance(policy, Policy)
    policy.reset(seed=3)
    n = 200
    for day in range(30):
        obs = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        obs[:, FEATURE_INDEX["recovery_pct"]] = rng.uniform(0, 100, n)
        obs[:, FEATURE_INDEX["ln_hrv"]] = rng.normal(4.2, 0.3, n)
        obs[:, FEATURE_INDEX["ln_hrv_baseline_28d"]] = rng.normal(4.2, 0.1, n)
        obs[:, FEATURE_INDEX["ln_hrv_baseline_sd_28d"]] = rng.uniform(0.05, 0.3, n)
        mask = random_masks(n, rng)
        actions = policy.act(obs, mask)
        assert actions.dtype == np.int64 and actions.shape == (n,)
        assert mask[np.arange(n), actions].all(), f"masked action on day {day}"
        assert (actions[0::5] == REST).all() and (actions[1::5] == AR).all()


@pytest.mark.parametrize("policy", baselines(), ids=lambda p: p.name)
def test_policy_rejects_bad_batches(policy: Policy) -> None:
    obs, mask = make_obs(3), all_allowed(3)
    with pytest.raises(ValueError, match="shape"):
        policy.act(obs[:, :10], mask)
    with pytest.raises(ValueError, match="rows"):
        policy.act(obs, all_allowed(2))
    with pytest.raises(ValueError, match="allows no action for athlete 1"):
        policy.act(obs, np.array([[True] * 6, [False] * 6, [True] * 6]))
    bad = obs.copy()
    bad[2, FEATURE_INDEX["recovery_pct"]] = np.nan
    with pytest.raises(ValueError, match="recovery_pct"):
        policy.act(bad, mask)


def test_check_batch_accepts_integer_masks_and_rejects_other_values() -> None:
    _, m = check_batch(make_obs(2), np.ones((2, 6), dtype=np.int8))
    assert m.dtype == bool and m.all()
    with pytest.raises(ValueError, match="boolean"):
        check_batch(make_obs(2), np.full((2, 6), 2))


# --------------------------------------------------------------------------------------------
# Helpers


def test_masked_choice_is_the_argmax_over_allowed_actions() -> None:
    scores = np.array([[5.0, 1, 2, 3, 4, 0], [5.0, 1, 2, 3, 4, 0], [-np.inf, 1, 1, 1, 1, 1],
                       [9.0, 9, -np.inf, 9, -np.inf, 9]])
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 1], [1, 0, 0, 0, 0, 0],
                     [0, 0, 1, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(masked_choice(scores, mask), [0, 4, 0, 2])
    with pytest.raises(ValueError, match="NaN"):
        masked_choice(np.full((1, 6), np.nan), np.ones((1, 6), dtype=bool))


def test_masked_sample_follows_the_renormalised_probabilities() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    probs = np.tile([0.1, 0.2, 0.3, 0.4, 0.0, 0.0], (n, 1))
    mask = np.tile([True, False, True, True, True, False], (n, 1))
    drawn = masked_sample(probs, mask, rng)
    freq = np.bincount(drawn, minlength=N_ACTIONS) / n
    np.testing.assert_allclose(freq, [0.125, 0, 0.375, 0.5, 0, 0], atol=0.01)
    # no allowed mass: uniform over the allowed actions
    drawn = masked_sample(np.tile([1.0, 0, 0, 0, 0, 0], (n, 1)),
                          np.tile([False, True, False, False, True, False], (n, 1)), rng)
    freq = np.bincount(drawn, minlength=N_ACTIONS) / n
    np.testing.assert_allclose(freq, [0, 0.5, 0, 0, 0.5, 0], atol=0.01)
    with pytest.raises(ValueError, match="negative"):
        masked_sample(-np.ones((1, 6)), np.ones((1, 6), dtype=bool), rng)


def test_step_down_executes_what_the_env_would_whenever_rest_is_allowed() -> None:
    masks = np.array([[True, *bits] for bits in itertools.product([False, True], repeat=5)])
    planned = np.repeat(np.arange(N_ACTIONS), len(masks))
    mask = np.tile(masks, (N_ACTIONS, 1))
    executed, _ = enforce(planned, mask)
    np.testing.assert_array_equal(step_down(planned, mask), executed)


def test_step_down_without_rest_takes_the_closest_allowed_session() -> None:
    only = np.eye(N_ACTIONS, dtype=bool)
    mask = np.array([only[AR], only[AR] | only[HIIT], only[TEMPO] | only[STRENGTH]])
    np.testing.assert_array_equal(step_down(np.array([REST, TEMPO, HIIT]), mask),
                                  [AR, AR, TEMPO])


def test_weekday_of_reads_the_feature_builders_weekday() -> None:
    dates = pd.date_range("2024-03-04", periods=14, freq="D")  # starts on a Monday
    frame = pd.DataFrame({"user_id": "u", "date": dates, "hrv_rmssd_ms": 60.0})
    obs = observation_matrix(build_features(frame))
    np.testing.assert_array_equal(weekday_of(obs), dates.day_of_week)


def test_day_counter_counts_per_episode_and_keeps_the_batch() -> None:
    counter = DayCounter()
    np.testing.assert_array_equal(counter.advance(3), [0, 0, 0])
    np.testing.assert_array_equal(counter.advance(3), [1, 1, 1])
    with pytest.raises(ValueError, match="reset"):
        counter.advance(4)
    counter.reset()
    np.testing.assert_array_equal(counter.advance(4), [0, 0, 0, 0])


# --------------------------------------------------------------------------------------------
# Random


def test_random_policy_is_reproducible_after_reset_and_uses_every_allowed_action() -> None:
    rng = np.random.default_rng(5)
    masks = [random_masks(50, rng) for _ in range(20)]
    obs = make_obs(50)
    policy = RandomPolicy()

    def episode(seed: int) -> np.ndarray:
        policy.reset(seed)
        return np.stack([policy.act(obs, m) for m in masks])

    first = episode(7)
    np.testing.assert_array_equal(episode(7), first)
    assert not np.array_equal(episode(8), first)
    full = policy.act(make_obs(6000), all_allowed(6000))
    assert np.bincount(full, minlength=N_ACTIONS).min() > 800  # ≈ 1000 each


# --------------------------------------------------------------------------------------------
# Seed rule


def test_seed_rule_trains_hard_above_70_percent_recovery_and_rests_otherwise() -> None:
    policy = SeedRulePolicy()
    obs = make_obs(3, recovery_pct=np.array([71.0, 69.0, 70.0]))
    np.testing.assert_array_equal(policy.act(obs, all_allowed(3)), [HIIT, REST, REST])


def test_seed_rule_falls_back_to_tempo_then_to_the_most_intense_allowed() -> None:
    policy = SeedRulePolicy()
    obs = make_obs(3, recovery_pct=90.0)
    mask = all_allowed(3)
    mask[:, HIIT] = False
    mask[1:, TEMPO] = False
    mask[2, STRENGTH] = False
    np.testing.assert_array_equal(policy.act(obs, mask), [TEMPO, STRENGTH, Z2])
    # a low-recovery athlete whose rest is masked (not the env's rule, but a valid mask)
    only_ar = np.eye(N_ACTIONS, dtype=bool)[[AR]] | np.eye(N_ACTIONS, dtype=bool)[[Z2]]
    assert policy.act(make_obs(1, recovery_pct=20.0), only_ar)[0] == AR


# --------------------------------------------------------------------------------------------
# HRV-guided


def hrv_obs(z_scores: np.ndarray, weekday: int, sd: float = 0.1) -> np.ndarray:
    """Observations with an established baseline (ln 70 ms, SD `sd`) and ln HRV at z."""
    base = np.log(70.0)
    ln_hrv = base + np.asarray(z_scores) * sd
    return make_obs(len(z_scores), weekday=weekday, ln_hrv=ln_hrv, ln_hrv_baseline_28d=base,
                    ln_hrv_baseline_sd_28d=sd, ln_hrv_z_28d=np.asarray(z_scores))


def test_hrv_guided_turns_a_hard_day_easy_when_hrv_is_below_the_normal_range() -> None:
    policy = HRVGuidedPolicy()
    assert HRVGuidedConfig().week[TUESDAY] == "hiit"
    z = np.array([1.5, 0.0, -0.4, -0.6, -0.9, -1.1, -3.0])
    actions = policy.act(hrv_obs(z, TUESDAY), all_allowed(len(z)))
    np.testing.assert_array_equal(actions, [HIIT, HIIT, HIIT, Z2, Z2, AR, AR])
    # the planned rest day stays rest whatever HRV does
    assert (policy.act(hrv_obs(z, MONDAY), all_allowed(len(z))) == REST).all()


def test_hrv_guided_follows_its_week_when_hrv_is_normal() -> None:
    policy = HRVGuidedPolicy()
    actions = [int(policy.act(hrv_obs(np.zeros(1), day), all_allowed(1))[0]) for day in range(7)]
    assert actions == [ACTION_INDEX[a] for a in HRVGuidedConfig().week]


def test_hrv_guided_uses_recovery_before_a_baseline_exists() -> None:
    policy = HRVGuidedPolicy()
    obs = make_obs(3, weekday=TUESDAY, recovery_pct=np.array([60.0, 45.0, 30.0]))
    assert not hrv_baseline_established(obs).any()
    np.testing.assert_array_equal(policy.act(obs, all_allowed(3)), [HIIT, Z2, AR])


def test_hrv_guided_steps_down_a_masked_plan() -> None:
    mask = all_allowed(1)
    mask[0, [TEMPO, HIIT]] = False  # e.g. the env's HRV-drop rule
    assert HRVGuidedPolicy().act(hrv_obs(np.zeros(1), TUESDAY), mask)[0] == Z2


def test_baseline_detection_matches_the_feature_builder() -> None:
    hrv = np.full((1, 20), 60.0)
    hrv[0, 3] = np.nan
    obs = compute_features({"hrv_rmssd_ms": hrv * np.exp(np.sin(np.arange(20)) / 10)},
                           np.arange(20)[None, :] % 7)[0].astype(np.float32)
    observed_before = np.concatenate([[0], np.cumsum(np.isfinite(hrv[0]))[:-1]])
    np.testing.assert_array_equal(hrv_baseline_established(obs), observed_before >= 7)


# --------------------------------------------------------------------------------------------
# Fixed periodization


def weekly_loads(actions: np.ndarray) -> np.ndarray:
    """Nominal TRIMP per week of a (days,) action sequence."""
    return action_loads(actions).trimp.reshape(-1, 7).sum(axis=1)


def test_fixed_periodization_builds_for_three_weeks_then_deloads_and_repeats() -> None:
    policy = FixedPeriodizationPolicy()
    policy.reset()
    obs = make_obs(2)
    days = np.stack([policy.act(obs, all_allowed(2)) for _ in range(8 * 7)])
    assert (days[:, 0] == days[:, 1]).all()
    load = weekly_loads(days[:, 0])
    assert load[0] < load[1] < load[2]
    assert load[3] < load[0]
    np.testing.assert_allclose(load[4:], load[:4])
    policy.reset()
    np.testing.assert_array_equal(
        np.stack([policy.act(obs, all_allowed(2)) for _ in range(7)]), days[:7])


def test_fixed_periodization_has_a_rest_day_in_every_seven_days() -> None:
    plan = np.concatenate([[ACTION_INDEX[a] for a in week]
                           for week in FixedPeriodizationConfig().weeks] * 2)
    windows = np.lib.stride_tricks.sliding_window_view(plan == REST, 7)
    assert windows.any(axis=1).all()


def test_fixed_periodization_steps_down_masked_days() -> None:
    policy = FixedPeriodizationPolicy()
    mask = all_allowed(1)
    mask[0, [TEMPO, HIIT, STRENGTH]] = False
    days = [int(policy.act(make_obs(1), mask)[0]) for _ in range(28)]
    planned = [ACTION_INDEX[a] for week in FixedPeriodizationConfig().weeks for a in week]
    expected = [Z2 if p in (TEMPO, HIIT) else p for p in planned]
    assert days == expected


def test_templates_reject_unknown_actions_and_short_weeks() -> None:
    with pytest.raises(ValueError, match="unknown actions"):
        FixedPeriodizationConfig(weeks=(("rest",) * 6 + ("sprint",),))
    with pytest.raises(ValueError, match="7 days"):
        HRVGuidedConfig(week=("rest", "hiit"))


def test_docstrings_quote_the_nominal_weekly_loads() -> None:
    loads = [week_nominal_load(week) for week in FixedPeriodizationConfig().weeks]
    quoted = (", ".join(f"{w.trimp:.0f}" for w in loads) + " TRIMP ("
              + ", ".join(f"{w.z45_min:.0f}" for w in loads) + " Z4-5 minutes)")
    assert quoted in " ".join(FixedPeriodizationPolicy.__doc__.split())
    load = week_nominal_load(HRVGuidedConfig().week)
    assert f"{load.trimp:.0f} TRIMP and {load.z45_min:.0f} Z4-5" in HRVGuidedPolicy.__doc__
