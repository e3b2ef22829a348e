"""Rows for the daily-loop store tests, and the writer process of the concurrent-writers test.

Kept apart from test_daily.py so that each spawned writer imports only the store (pandas,
numpy, sqlite, scipy.stats), not everything test_daily.py imports (the CLI, the loop, the
report, torch): under load that import was most of the test's time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.daily_store import DailyStore


def morning(athlete: str, date: str, session: str = "z2_aerobic", **extra) -> dict:
    observation = {"hrv_ms": extra.pop("hrv_ms", 60.0), "rhr_bpm": extra.pop("rhr_bpm", 50.0),
                   "recovery_pct": extra.pop("recovery_pct", 60.0),
                   "ln_hrv_z": extra.pop("ln_hrv_z", 0.0), "features": {"x": 1.0}}
    return {"athlete": athlete, "date": date, "observation": observation, "policy": "mpc",
            "session": session, "load_trimp": 135.0, "plan": {"days": [{"session": session}]},
            "rule_changed": None, **extra}


def forecasts(athlete: str, date: str, center: dict[str, float] | None = None,
              spread: float = 1.0) -> list[dict]:
    """Normal forecasts of the next morning: quantiles and 200 samples around `center`."""
    from scipy.stats import norm

    center = center or {"hrv_ms": 60.0, "rhr_bpm": 50.0, "recovery_pct": 60.0}
    levels = {"q005": 0.005, "q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95,
              "q995": 0.995}
    for_date = str((pd.Timestamp(date) + pd.Timedelta(days=1)).date())
    grid = norm.ppf((np.arange(200) + 0.5) / 200)
    return [{"athlete": athlete, "date": date, "target": t, "for_date": for_date,
             **{k: c + spread * norm.ppf(q) for k, q in levels.items()},
             "samples": list(c + spread * grid)} for t, c in center.items()]


def writer(path: str, worker: int, mornings: int) -> None:
    with DailyStore(path) as store:
        for i in range(mornings):
            date = str((pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)).date())
            store.log_morning(morning(f"w{worker}", date), forecasts(f"w{worker}", date))
            # every writer also tries the same shared morning: exactly one must win
            store.log_morning(morning("shared", date, session="z2_aerobic"),
                              forecasts("shared", date))
            store.log_after([{"athlete": f"w{worker}", "date": date, "session": "rest"}], [])
