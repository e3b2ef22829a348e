"""Small helpers shared by the loader tests."""

from __future__ import annotations

import pandas as pd


def day_row(frame: pd.DataFrame, user: str, date: str) -> pd.Series:
    """The one daily-table row of `user` on `date`; fails the test unless there is exactly one."""
    rows = frame[(frame["user_id"] == user) & (frame["date"] == pd.Timestamp(date))]
    assert len(rows) == 1, f"{user} {date}: {len(rows)} rows"
    return rows.iloc[0]
