"""Preprocessing of the daily table (seed §5.2): which athletes are usable, gap filling, scaling.

Every rule is configurable (`PreprocessConfig`) and reported: an athlete that is dropped gets a
reason, and every filled value is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.table import DailyTable


@dataclass(frozen=True)
class PreprocessConfig:
    """Seed §5.2 defaults."""

    core_signals: tuple[str, ...] = ("hrv_rmssd_ms", "rhr_bpm")
    """A day counts as observed when at least one of these is present."""
    max_missing_share: float = 0.20
    """Drop an athlete when more than this share of the days between their first and last
    observed day has none of `core_signals` (seed: "drop users with >20% missing data")."""
    min_observed_days: int = 14
    """Drop an athlete with fewer observed days than this: too few to fit or to evaluate."""
    ffill_max_gap_days: int = 2
    """Forward-fill gaps of at most this many days ("gaps shorter than 3 days")."""
    median_window_days: int = 7
    """Centred window of the rolling median used for isolated missing values."""


def assess_athletes(table: DailyTable, config: PreprocessConfig = PreprocessConfig()) -> pd.DataFrame:
    """Per athlete: observed days, span, missing share, and whether it is kept and why not.

    Columns: user_id, span_days, observed_days, missing_share, kept (bool), reason (str).
    """
    rows = []
    for user_id, g in table.frame.groupby("user_id", sort=True):
        observed = g[list(config.core_signals)].notna().any(axis=1)
        dates = g.loc[observed, "date"]
        if dates.empty:
            rows.append((user_id, 0, 0, 1.0, False,
                         f"no {' or '.join(config.core_signals)} at all"))
            continue
        span = int((dates.max() - dates.min()).days) + 1
        n_obs = int(dates.nunique())
        missing = 1.0 - n_obs / span
        if n_obs < config.min_observed_days:
            kept, reason = False, f"only {n_obs} observed days (< {config.min_observed_days})"
        elif missing > config.max_missing_share:
            kept, reason = False, (f"{missing:.0%} of days missing "
                                   f"(> {config.max_missing_share:.0%})")
        else:
            kept, reason = True, ""
        rows.append((user_id, span, n_obs, round(missing, 4), kept, reason))
    return pd.DataFrame(rows, columns=["user_id", "span_days", "observed_days", "missing_share",
                                       "kept", "reason"])
