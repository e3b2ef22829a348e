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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import TARGETS, logit_to_recovery
from physiology_model.dynamics.step import simulate_observations
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
    sim = simulate_observations(p, series.load, series.hi_load, rng)
    f = history.sort_values("date").set_index("date").reindex(
        pd.DatetimeIndex(series.dates.astype("datetime64[ns]")))
    known = f["load_trimp"].notna().to_numpy()
    measured = {"hrv": series.hrv, "rhr": series.rhr,
                "recovery": logit_to_recovery(series.recovery_logit)}
    measured["recovery"] = np.where(np.isnan(series.recovery_logit), np.nan,
                                    measured["recovery"])
    return Replay(str(history["user_id"].iloc[0]), series.dates, series.load, known, measured,
                  {k: np.asarray(sim[k]) for k in TARGETS})


def lag1_autocorrelation(y: np.ndarray) -> float:
    """Lag-1 autocorrelation over consecutive observed days (NaN if < 5 pairs)."""
    y = np.asarray(y, float)
    a, b = y[:-1], y[1:]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 5 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def hard_day_response(y: np.ndarray, load: np.ndarray, known: np.ndarray) -> float:
    """Mean change of a signal from the morning of a hard day to the next morning, minus the
    same after the other known days. A hard day: a measured load in the athlete's top quarter of
    measured loads. NaN when either group has fewer than 3 pairs."""
    y = np.asarray(y, float)
    change = y[1:] - y[:-1]
    k = known[:-1] & np.isfinite(change)
    if k.sum() < 6:
        return float("nan")
    cut = np.quantile(load[:-1][known[:-1]], 0.75)
    hard = k & (load[:-1] >= cut) & (load[:-1] > 0)
    easy = k & ~hard
    if hard.sum() < 3 or easy.sum() < 3:
        return float("nan")
    return float(change[hard].mean() - change[easy].mean())


def describe_replay(replay: Replay) -> list[dict]:
    """Measured vs simulated mean, SD, lag-1 autocorrelation and hard-day response per target
    (the simulated statistics averaged over replicates, each replicate masked to the measured
    days so both sides see the same calendar)."""
    rows = []
    for target in TARGETS:
        y = replay.measured[target]
        seen = np.isfinite(y)
        if seen.sum() < 7:
            continue
        sims = np.where(seen[None, :], replay.simulated[target], np.nan)
        stats = {}
        for name, fn in (("mean", np.nanmean), ("sd", np.nanstd)):
            stats[name] = (float(fn(y)), float(np.mean([fn(s) for s in sims])))
        stats["lag1"] = (lag1_autocorrelation(y),
                         float(np.nanmean([lag1_autocorrelation(s) for s in sims])))
        stats["hard_day_response"] = (
            hard_day_response(y, replay.load, replay.load_known),
            float(np.nanmean([hard_day_response(s, replay.load, replay.load_known)
                              for s in sims])) if replay.load_known.sum() >= 6 else np.nan)
        for stat, (measured, simulated) in stats.items():
            rows.append({"athlete": replay.athlete, "target": target, "statistic": stat,
                         "measured": measured, "simulated": simulated,
                         "n_days": int(seen.sum())})
    return rows
