"""Sim-to-real replay: a real athlete's actual loads through their digital twin (DESIGN §9).

The twin is the world model's posterior for that athlete (the fitted posterior for an athlete in
the fit, `WorldModel.personalize` on the whole history otherwise). Its simulated mornings come
from `step.simulate_observations` (the same observation equations and AR(1) noise the
simulator steps), driven by the loads the athlete actually did (missing load days filled as the
world model fills them, `forecast.series_from_frame`). Each replicate uses one posterior draw
and its own noise path, so the spread of the replicates is what the simulator believes about
this athlete; comparing it with what was measured tests the simulator, not a forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import TARGETS, logit_to_recovery
from physiology_model.dynamics.params import LOAD_SCALE_TRIMP
from physiology_model.dynamics.step import simulate_observations
from physiology_model.features.batch import weekdays
from physiology_model.model.forecast import series_from_frame


@dataclass(frozen=True)
class Replay:
    """Measured and simulated mornings of one athlete over its calendar."""

    athlete: str
    dates: np.ndarray
    load: np.ndarray
    """Daily load w (100 TRIMP/day) that drove the twin, missing days filled."""
    load_known: np.ndarray
    """Whether each day's load was measured."""
    measured: dict[str, np.ndarray]
    """{target: (T,)}, NaN where not measured."""
    simulated: dict[str, np.ndarray]
    """{target: (R, T)} for R replicates."""


def replay_athlete(model, history: pd.DataFrame, n_replicates: int = 20,
                   rng: np.random.Generator | None = None) -> Replay:
    """Replay one athlete's actual loads through its twin (module docstring)."""
    rng = rng or np.random.default_rng(0)
    series = series_from_frame(history)
    draws = model.athlete_params(history, rng)
    n_draws = len(next(iter(draws.values())))
    pick = rng.integers(0, n_draws, size=n_replicates)
    p = {k: np.asarray(v)[pick] for k, v in draws.items()}
    sim = simulate_observations(p, series.load, series.hi_load, rng, weekdays(series.dates))
    f = history.sort_values("date").set_index("date").reindex(
        pd.DatetimeIndex(series.dates.astype("datetime64[ns]")))
    known = f["load_trimp"].notna().to_numpy()
    measured = {"hrv": series.hrv, "rhr": series.rhr,
                "recovery": logit_to_recovery(series.recovery_logit)}
    measured["recovery"] = np.where(np.isnan(series.recovery_logit), np.nan,
                                    measured["recovery"])
    return Replay(str(history["user_id"].iloc[0]), series.dates, series.load, known, measured,
                  {k: np.asarray(sim[k]) for k in TARGETS})


REST_TRIMP = 20.0
"""A day with a measured load at or below this many TRIMP is a rest day (as `analysis.real`
classes the actual plan)."""
HARD_QUANTILE = 0.8
"""A hard day: a measured load at or above this quantile of the athlete's measured loads."""
MIN_PAIRS = 10
"""Fewest pairs of measured days for an autocorrelation or a correlation; fewest days per group
is 3."""


def lag_autocorrelation(y: np.ndarray, lag: int) -> float:
    """Correlation of y_t and y_{t+lag} over pairs both measured (NaN under `MIN_PAIRS` pairs)."""
    y = np.asarray(y, dtype=float)
    if lag >= y.size:
        return math.nan
    a, b = y[:-lag], y[lag:]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_PAIRS or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def day_groups(load_trimp: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hard, rest) masks over days: hard = measured load ≥ the athlete's `HARD_QUANTILE`
    quantile of measured loads and > `REST_TRIMP`; rest = measured load ≤ `REST_TRIMP`."""
    load = np.asarray(load_trimp, dtype=float)
    known = np.asarray(known, dtype=bool) & np.isfinite(load)
    if not known.any():
        return np.zeros(load.size, bool), np.zeros(load.size, bool)
    cut = np.quantile(load[known], HARD_QUANTILE)
    hard = known & (load >= cut) & (load > REST_TRIMP)
    rest = known & (load <= REST_TRIMP)
    return hard, rest


def hard_day_response(y: np.ndarray, hard: np.ndarray, rest: np.ndarray) -> float:
    """Mean next-morning change y[d+1] − y[d] after hard days minus after rest days (NaN when
    either group has fewer than 3 measured pairs)."""
    y = np.asarray(y, dtype=float)
    change = y[1:] - y[:-1]
    ok = np.isfinite(change)
    h, r = hard[:-1] & ok, rest[:-1] & ok
    if h.sum() < 3 or r.sum() < 3:
        return math.nan
    return float(change[h].mean() - change[r].mean())


def describe_replay(replay: Replay) -> list[dict]:
    """Measured vs simulated mean, SD, lag-1 autocorrelation and hard-day response per target
    (the simulated statistics averaged over replicates, each replicate masked to the measured
    days so both sides see the same calendar)."""
    rows = []
    hard, rest = day_groups(replay.load * LOAD_SCALE_TRIMP, replay.load_known)
    for target in TARGETS:
        y = replay.measured[target]
        seen = np.isfinite(y)
        if seen.sum() < 7:
            continue
        sims = np.where(seen[None, :], replay.simulated[target], np.nan)
        stats = {}
        for name, fn in (("mean", np.nanmean), ("sd", np.nanstd)):
            stats[name] = (float(fn(y)), float(np.mean([fn(s) for s in sims])))
        stats["lag1"] = (lag_autocorrelation(y, 1),
                         float(np.nanmean([lag_autocorrelation(s, 1) for s in sims])))
        stats["hard_day_response"] = (
            hard_day_response(y, hard, rest),
            float(np.nanmean([hard_day_response(s, hard, rest) for s in sims])))
        for stat, (measured, simulated) in stats.items():
            rows.append({"athlete": replay.athlete, "target": target, "statistic": stat,
                         "measured": measured, "simulated": simulated,
                         "n_days": int(seen.sum())})
    return rows
