"""Splits: temporal per athlete, and by user; disjoint, deterministic, in the right proportions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physiology_model.data.splits import temporal_split, user_split


def _table(lengths: dict[str, int], shuffle_seed: int | None = None) -> pd.DataFrame:
    frames = [pd.DataFrame({"user_id": u,
                            "date": pd.date_range("2023-01-01", periods=n, freq="2D")})
              for u, n in lengths.items()]
    frame = pd.concat(frames, ignore_index=True)
    if shuffle_seed is not None:
        frame = frame.sample(frac=1.0, random_state=shuffle_seed)
    return frame


def test_temporal_split_fractions_per_athlete():
    frame = _table({"a": 100, "b": 20, "c": 7})
    split = temporal_split(frame)
    counts = pd.crosstab(frame["user_id"], split)
    assert counts.loc["a"].to_dict() == {"train": 70, "val": 15, "test": 15}
    assert counts.loc["b"].to_dict() == {"train": 14, "val": 3, "test": 3}
    assert counts.loc["c", "train"] == 5  # ⌊7·0.7 + ½⌋
    other = temporal_split(frame, (0.8, 0.2, 0.0))
    assert (pd.crosstab(frame["user_id"], other).loc["a"].to_dict()
            == {"train": 80, "val": 20})


def test_temporal_split_is_aligned_with_the_input_order():
    frame = _table({"a": 50, "b": 30}, shuffle_seed=3)
    split = temporal_split(frame)
    assert split.index.equals(frame.index)
    assert split.name == "split"
    sorted_split = temporal_split(frame.sort_values(["user_id", "date"]))
    pd.testing.assert_series_equal(split.sort_index(), sorted_split.sort_index())


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 80), min_size=1, max_size=5),
       fractions=st.tuples(st.floats(0.05, 1), st.floats(0, 1), st.floats(0, 1)),
       seed=st.integers(0, 1000))
def test_temporal_order_property(lengths, fractions, seed):
    f = np.array(fractions) / sum(fractions)
    frame = _table({f"u{i}": n for i, n in enumerate(lengths)}, shuffle_seed=seed)
    split = temporal_split(frame, tuple(f))
    assert set(split) <= {"train", "val", "test"}
    for _, g in frame.assign(split=split).groupby("user_id"):
        dates = {s: g.loc[g.split == s, "date"] for s in ("train", "val", "test")}
        if len(dates["train"]) and len(dates["val"]):
            assert dates["train"].max() < dates["val"].min()
        if len(dates["val"]) and len(dates["test"]):
            assert dates["val"].max() < dates["test"].min()
        if len(dates["train"]) and len(dates["test"]):
            assert dates["train"].max() < dates["test"].min()
        n = len(g)
        assert abs(len(dates["train"]) - n * f[0]) <= 0.5 + 1e-6
        assert abs(len(dates["train"]) + len(dates["val"]) - n * (f[0] + f[1])) <= 0.5 + 1e-6


def test_temporal_split_refuses_bad_input():
    frame = _table({"a": 5})
    with pytest.raises(ValueError, match="sum to 1"):
        temporal_split(frame, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="duplicate"):
        temporal_split(pd.concat([frame, frame]))
    assert temporal_split(frame.iloc[:0]).empty


def test_user_split_disjoint_complete_and_sized():
    ids = [f"whoop-u{i:02d}" for i in range(50)]
    train, test = user_split(ids)
    assert set(train).isdisjoint(test)
    assert set(train) | set(test) == set(ids)
    assert len(test) == 10
    assert train == sorted(train) and test == sorted(test)


def test_user_split_is_deterministic_and_order_free():
    ids = [f"u{i}" for i in range(30)]
    first = user_split(ids, seed=11)
    assert user_split(list(reversed(ids)) + ids[:5], seed=11) == first  # order, duplicates
    assert user_split(ids, seed=11) == first
    others = {tuple(user_split(ids, seed=s)[1]) for s in range(10)}
    assert len(others) > 1  # the seed matters


def test_user_split_small_cohorts():
    assert user_split(["a"]) == (["a"], [])
    train, test = user_split(["a", "b"], test_fraction=0.2)
    assert len(train) == 1 and len(test) == 1
    assert user_split(["a", "b", "c"], test_fraction=0.0) == (["a", "b", "c"], [])
    with pytest.raises(ValueError):
        user_split(["a"], test_fraction=1.5)
