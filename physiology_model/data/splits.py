"""Train / validation / test splits (seed §5.3).

Two splits, used together: a **temporal** split inside each athlete's timeline (models are tuned
and tested on days after the ones they were fitted on, never on shuffled days), and a **user-level**
split (athletes in the test set are never seen in training). Both are deterministic: the temporal
split from date order, the user split from a seed (`np.random.default_rng(seed)` over the sorted
ids; no global random state).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def temporal_split(frame: pd.DataFrame,
                   fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> pd.Series:
    """Label each row `train`, `val` or `test` by its position in its athlete's timeline.

    Per athlete, rows are ordered by date; with n rows, the first ⌊n·f_train + ½⌋ are `train`,
    the rows up to ⌊n·(f_train + f_val) + ½⌋ are `val`, the rest `test`. So every train date
    precedes every val date, which precedes every test date. Fractions count rows (days present in
    the table), not calendar days. Returns a Series aligned with `frame.index`, named `split`.
    """
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {fractions}")
    f = np.asarray(fractions, dtype=float)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    for key in ("user_id", "date"):
        if key not in frame.columns:
            raise ValueError(f"the frame has no {key!r} column")
    if frame.duplicated(["user_id", "date"]).any():
        raise ValueError("duplicate (user_id, date) rows: the temporal order is ambiguous")
    if frame.empty:
        return pd.Series([], index=frame.index, dtype="object", name="split")
    dates = pd.to_datetime(frame["date"])
    order = pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "date": dates.to_numpy()},
                         index=frame.index)
    rank = order.groupby("user_id", sort=False)["date"].rank(method="first").to_numpy() - 1
    n = order.groupby("user_id", sort=False)["date"].transform("size").to_numpy()
    # Round half up (not to even), with a hair of tolerance for 0.7 + 0.15 ≠ 0.85 in binary.
    train_end = np.floor(n * f[0] + 0.5 + 1e-9)
    val_end = np.floor(n * (f[0] + f[1]) + 0.5 + 1e-9)
    labels = np.where(rank < train_end, "train", np.where(rank < val_end, "val", "test"))
    return pd.Series(labels, index=frame.index, dtype="object", name="split")


def user_split(user_ids: Iterable[str], test_fraction: float = 0.2,
               seed: int = 0) -> tuple[list[str], list[str]]:
    """Split athletes into (train_ids, test_ids), both sorted.

    The unique ids are sorted, shuffled with `np.random.default_rng(seed)`, and the first
    round(n·test_fraction) become the test set (at least 1 and at most n − 1 when there are two
    or more athletes and 0 < test_fraction < 1). Same ids and seed, same split, whatever the
    input order.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    ids = sorted({str(u) for u in user_ids})
    n = len(ids)
    n_test = round(n * test_fraction)
    if n >= 2 and 0.0 < test_fraction < 1.0:
        n_test = min(max(n_test, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    test = sorted(ids[i] for i in order[:n_test])
    train = sorted(ids[i] for i in order[n_test:])
    return train, test
