"""Per-athlete summary of a daily table: what `periodize data summary` prints."""

from __future__ import annotations

import pandas as pd

from physiology_model.data.table import DailyTable
from physiology_model.features.preprocess import PreprocessConfig, assess_athletes

SUMMARY_COLUMNS = ["user_id", "source", "first_date", "last_date", "days", "hrv_days", "rhr_days",
                   "recovery_days", "load_days", "kept", "reason"]


def summarize_table(table: DailyTable, config: PreprocessConfig = PreprocessConfig()) -> pd.DataFrame:
    """One row per athlete with the counts of days that carry each signal, and kept/dropped."""
    f = table.frame
    g = f.groupby("user_id", sort=True)
    out = pd.DataFrame({
        "source": g["source"].agg(lambda s: ",".join(sorted(set(s.dropna())))),
        "first_date": g["date"].min().dt.strftime("%Y-%m-%d"),
        "last_date": g["date"].max().dt.strftime("%Y-%m-%d"),
        "days": g.size(),
        "hrv_days": g["hrv_rmssd_ms"].count(),
        "rhr_days": g["rhr_bpm"].count(),
        "recovery_days": g["recovery_pct"].count(),
        "load_days": g["load_trimp"].count(),
    }).reset_index()
    status = assess_athletes(table, config)[["user_id", "kept", "reason"]]
    return out.merge(status, on="user_id", how="left")[SUMMARY_COLUMNS]


def totals_by_source(summary: pd.DataFrame) -> pd.DataFrame:
    """Athletes, user-days and signal-days per source, and how many athletes are kept."""
    t = summary.groupby("source").agg(
        athletes=("user_id", "size"), kept=("kept", "sum"), user_days=("days", "sum"),
        hrv_days=("hrv_days", "sum"), rhr_days=("rhr_days", "sum"),
        recovery_days=("recovery_days", "sum"), load_days=("load_days", "sum"),
    ).reset_index()
    total = t.drop(columns="source").sum().to_frame().T
    total.insert(0, "source", "all")
    return pd.concat([t, total], ignore_index=True)
