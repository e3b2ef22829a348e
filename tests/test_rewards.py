"""Rewards: direction, range, the potential-based telescoping sum and the honest window credit."""

import numpy as np
import pytest

from simulator.rewards import RewardConfig, recovery_term, step_reward


def _episode_sum(config: RewardConfig, perf: np.ndarray, recovery=None, penalty=None):
    n, t = perf.shape[0], perf.shape[1] - 1
    rec = np.zeros(n) if recovery is None else recovery
    pen = np.zeros(n) if penalty is None else penalty
    return sum(step_reward(config, perf, m, m == t, rec, pen) for m in range(1, t + 1))


def test_potential_reward_sums_to_the_performance_gained():
    rng = np.random.default_rng(0)
    perf = 100 + np.cumsum(rng.normal(0, 0.3, size=(5, 91)), axis=1)
    total = _episode_sum(RewardConfig(kind="potential"), perf)
    np.testing.assert_allclose(total, perf[:, -1] - perf[:, 0], atol=1e-9)


def test_multi_horizon_credits_each_window_once_including_the_open_ones():
    cfg = RewardConfig(kind="multi_horizon", alpha=0.0, beta=1.0, gamma=2.0)
    rng = np.random.default_rng(1)
    perf = 100 + np.cumsum(rng.normal(0, 0.3, size=(3, 91)), axis=1)
    t = 90
    expected_beta = sum((perf[:, min(s + 14, t)] - perf[:, s]) / 14 for s in range(t))
    expected_gamma = sum((perf[:, min(s + 30, t)] - perf[:, s]) / 30 for s in range(t))
    total = _episode_sum(cfg, perf)
    np.testing.assert_allclose(total, expected_beta + 2.0 * expected_gamma, atol=1e-9)


def test_multi_horizon_delays_credit_until_the_window_closes():
    cfg = RewardConfig(kind="multi_horizon", alpha=0.0, beta=1.0, gamma=2.0)
    perf = np.full((1, 91), 100.0)
    perf[0, 5:] = 101.0  # a jump on morning 5
    rewards = [step_reward(cfg, perf, m, m == 90, np.zeros(1), np.zeros(1))[0]
               for m in range(1, 91)]
    assert all(r == 0 for r in rewards[:13])       # mornings 1-13: no 14-day window closed
    assert rewards[13] > 0                         # morning 14 closes the window from 0


def test_direction_more_performance_recovery_and_less_penalty_are_better():
    perf = np.array([[100.0, 101.0], [100.0, 99.0]])
    cfg = RewardConfig()
    r = step_reward(cfg, perf, 1, False, np.zeros(2), np.zeros(2))
    assert r[0] > r[1]
    rec = recovery_term(np.array([80.0, 40.0]), np.array([60.0, 60.0]))
    r = step_reward(cfg, np.full((2, 2), 100.0), 1, False, rec, np.zeros(2))
    assert r[0] > 0 > r[1]
    r = step_reward(cfg, np.full((2, 2), 100.0), 1, False, np.zeros(2), np.array([0.0, 30.0]))
    assert r[0] == 0 and r[1] == pytest.approx(-30.0 * cfg.penalty_weight)


def test_no_constant_bonus_and_missing_recovery_counts_zero():
    perf = np.full((2, 91), 100.0)
    for kind in ("potential", "multi_horizon"):
        total = _episode_sum(RewardConfig(kind=kind), perf,
                             recovery=recovery_term(np.array([np.nan, 60.0]), np.full(2, 60.0)))
        np.testing.assert_array_equal(total, 0.0)


def test_weights_follow_the_seed_ordering():
    with pytest.raises(ValueError, match="gamma > beta > alpha"):
        RewardConfig(alpha=0.5, beta=0.3, gamma=0.2)
    with pytest.raises(ValueError, match="kind"):
        RewardConfig(kind="bonus")


def test_short_term_reward_ignores_fitness():
    perf = np.array([[100.0, 105.0], [100.0, 95.0]])
    rec = recovery_term(np.array([70.0, 70.0]), np.array([60.0, 60.0]))
    r = step_reward(RewardConfig(kind="short_term"), perf, 1, False, rec, np.zeros(2))
    np.testing.assert_allclose(r, [0.1, 0.1])
