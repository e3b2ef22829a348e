"""Behaviour cloning of the real athletes' sessions (agents/bc.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.bc import BCConfig, BCPolicy, label_observations, train_bc
from agents.policy import N_FEATURES, Policy
from physiology_model.data.loaders import load_exports
from physiology_model.data.splits import user_split
from physiology_model.data.table import ACTIONS, N_ACTIONS
from simulator.observation import observation_matrix, observations_from_table

SMALL_SLICE = "data/real/whoop_api"  # 3 athletes, ~1,200 labelled days: trains in seconds


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return load_exports([SMALL_SLICE]).frame


@pytest.fixture(scope="module")
def small_policy(small_frame: pd.DataFrame) -> BCPolicy:
    return train_bc(small_frame, seed=0)


def random_batch(policy_rows: int, rng: np.random.Generator,
                 rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Real observations of the slice and random non-empty masks (some rest-only)."""
    obs = observation_matrix(rows.sample(policy_rows, replace=True, random_state=1))
    mask = rng.random((policy_rows, N_ACTIONS)) < 0.4
    mask[~mask.any(axis=1), 0] = True
    mask[::4] = np.eye(N_ACTIONS, dtype=bool)[0]
    return obs, mask


def test_labels_are_the_days_own_sessions_on_that_mornings_features(
        small_frame: pd.DataFrame) -> None:
    rows = label_observations(small_frame)
    labelled = small_frame[small_frame["session"].isin(ACTIONS)]
    assert len(rows) == len(labelled)
    day = labelled.iloc[len(labelled) // 2]
    row = rows[(rows["user_id"] == day["user_id"]) & (rows["date"] == day["date"])]
    assert ACTIONS[int(row["action"].iloc[0])] == day["session"]
    obs = observations_from_table(small_frame)
    same_day = obs[(obs["user_id"] == day["user_id"]) & (obs["date"] == day["date"])]
    np.testing.assert_array_equal(observation_matrix(row), observation_matrix(same_day))


def test_bc_fits_on_training_athletes_only(small_frame: pd.DataFrame,
                                           small_policy: BCPolicy) -> None:
    train_ids, test_ids = user_split(small_frame["user_id"].astype(str).unique(), 0.2, 0)
    report = small_policy.report
    assert set(report.train_user_ids) <= set(train_ids) and report.train_user_ids
    assert set(report.test_user_ids) <= set(test_ids) and report.test_user_ids
    assert report.train_days + report.test_days == len(label_observations(small_frame))
    # relabelling every held-out day changes nothing the fit learned
    config = BCConfig(c_grid=(0.01,))
    changed = small_frame.copy()
    changed.loc[changed["user_id"].isin(test_ids), "session"] = "hiit"
    before, after = train_bc(small_frame, 0, config), train_bc(changed, 0, config)
    for name in ("mean", "scale", "coef", "intercept"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    assert after.report.test_counts["hiit"] == after.report.test_days


def test_bc_policy_acts_within_the_mask_from_its_probabilities(small_frame: pd.DataFrame,
                                                                small_policy: BCPolicy) -> None:
    assert isinstance(small_policy, Policy)
    rng = np.random.default_rng(0)
    rows = label_observations(small_frame)
    obs, mask = random_batch(400, rng, rows)
    p = small_policy.probabilities(obs)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    for greedy in (False, True):
        small_policy.greedy = greedy
        actions = small_policy.act(obs, mask)
        assert actions.dtype == np.int64 and mask[np.arange(len(obs)), actions].all()
    small_policy.greedy = False
    # with everything allowed, sampled actions follow the predicted probabilities
    many = np.repeat(obs[:1], 20_000, axis=0)
    small_policy.reset(3)
    freq = np.bincount(small_policy.act(many, np.ones((20_000, N_ACTIONS), dtype=bool)),
                       minlength=N_ACTIONS) / 20_000
    np.testing.assert_allclose(freq, p[0], atol=0.015)


def test_save_and_load_give_identical_actions(small_frame: pd.DataFrame,
                                              small_policy: BCPolicy, tmp_path: Path) -> None:
    path = small_policy.save(tmp_path / "bc.npz")
    loaded = BCPolicy.load(path)
    assert loaded.report == small_policy.report
    rows = label_observations(small_frame)
    obs, mask = random_batch(300, np.random.default_rng(1), rows)
    np.testing.assert_array_equal(loaded.probabilities(obs), small_policy.probabilities(obs))
    small_policy.reset(11)
    loaded.reset(11)
    for _ in range(5):
        np.testing.assert_array_equal(loaded.act(obs, mask), small_policy.act(obs, mask))


def test_load_rejects_other_files_with_the_path(small_policy: BCPolicy, tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="junk.npz: not a saved BCPolicy"):
        BCPolicy.load(junk)
    path = small_policy.save(tmp_path / "bc.npz")
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["header"]))
    header["feature_names"] = header["feature_names"][:-1]
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ValueError, match="other features"):
        BCPolicy.load(tmp_path / "other.npz")


def test_actions_unseen_in_training_are_never_preferred() -> None:
    policy = BCPolicy(mean=np.zeros(N_FEATURES), scale=np.ones(N_FEATURES),
                      coef=np.zeros((2, N_FEATURES)), intercept=np.array([0.0, 1.0]),
                      classes=np.array([0, 2]), greedy=True)
    obs = np.zeros((3, N_FEATURES))
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(policy.act(obs, mask), [2, 0, 1])
    policy.greedy = False
    policy.reset(0)
    assert mask[2, policy.act(obs, mask)[2]]
    with pytest.raises(ValueError, match="coef must have shape"):
        BCPolicy(np.zeros(N_FEATURES), np.ones(N_FEATURES), np.zeros((3, N_FEATURES)),
                 np.zeros(2), np.array([0, 2]))


def test_train_bc_needs_sessions(small_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no 'session' column"):
        train_bc(small_frame.drop(columns="session"))
    one_kind = small_frame.assign(session="rest")
    with pytest.raises(ValueError, match="only one kind of session"):
        train_bc(one_kind)


@pytest.mark.slow
def test_bc_beats_the_majority_class_on_held_out_athletes() -> None:
    frame = load_exports(["data/real"]).frame
    report = train_bc(frame, seed=0).report
    assert len(report.test_user_ids) >= 10 and report.test_days >= 1000
    assert report.accuracy > report.majority_accuracy + 0.05
    assert report.macro_f1 > report.majority_macro_f1 + 0.1
    assert report.log_loss < report.majority_log_loss
