"""The day of the week in the observation equation, estimated after the fit.

Real mornings have a weekly rhythm that the training loads do not explain: beyond the two
previous days' loads, ln HRV sits about +0.04 above the athlete's weekly mean on Mondays and
−0.05 below it on Saturdays, resting HR −0.65 / +0.84 bpm (`benchmarks/night_covariates.py`,
its `weekday` block; weekend nights). The model had no calendar, so this known cause was noise,
and the simulator's athletes had none of the weekly autocorrelation measured series show.

Model. Each target's observation gets an additive offset for the day of the week,
y = Banister mean + c[weekday] + noise, with Σ c = 0 over the week (so the athlete's level stays
its baseline), the same seven values for every athlete of a source (`params.WEEKDAY_PARAMS`,
carried with the noise parameters). `observation.observation_means` adds it wherever the
caller gives the calendar: forecasts and personalisation (the history's dates), the simulator
(`step`: each athlete's weekday), the planner's roll-outs and belief.

Estimate. On the fit's training athletes: each athlete's residual from its posterior's
Banister mean (the mean of the observation means over up to `MAX_DRAWS` draws, without any
offset), recovery on the logit scale. Within each athlete and calendar week (Monday to Sunday)
the residuals and the effect-coded weekday columns are centred, which removes the athlete's
level and anything that moves slowly (the slow noise, a drifting baseline), and one least-squares
fit over every athlete of a source gives its six free offsets (the seventh is minus their
sum). A source with fewer than `MIN_ATHLETES` athletes or `MIN_MORNINGS` mornings of a target
gets the value pooled over every source. Standard errors: the spread of the pooled estimate
over athletes resampled with replacement (`BOOTSTRAP` times), recorded with the estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import (
    TARGETS,
    WARM_START_DAYS,
    latent_states,
    observation_means,
)
from physiology_model.dynamics.params import WEEKDAY_PARAMS
from physiology_model.features.batch import weekdays
from physiology_model.model.forecast import observed_targets, series_from_frame

MAX_DRAWS = 100
"""Posterior draws of an athlete whose observation means are averaged (evenly spaced)."""
MIN_ATHLETES = 5
"""Fewest athletes for a source's own offsets."""
MIN_MORNINGS = 500
"""Fewest measured mornings of a target for a source's own offsets."""
BOOTSTRAP = 200
"""Resamples of athletes for the pooled offsets' standard errors."""
POOLED = "(all sources)"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class WeekdayEffect:
    """Per source (and `POOLED`), each target's seven offsets Monday … Sunday (`values`,
    summing to 0; ln ms, bpm, recovery logit), the mornings and athletes they rest on, whether
    they are the source's own, the pooled values' bootstrap standard errors, and each
    estimated athlete's source."""

    values: dict[str, dict[str, tuple[float, ...]]]
    mornings: dict[str, dict[str, int]]
    own: dict[str, dict[str, bool]]
    pooled_se: dict[str, tuple[float, ...]]
    athletes: dict[str, str]

    def to_dict(self) -> dict:
        return {"values": {s: {t: dict(zip(DAYS, v)) for t, v in by.items()}
                           for s, by in self.values.items()},
                "mornings": self.mornings, "own": self.own,
                "pooled_se": {t: dict(zip(DAYS, v)) for t, v in self.pooled_se.items()},
                "bootstrap": BOOTSTRAP}


def _effect_columns(weekday: np.ndarray) -> np.ndarray:
    """(T, 6) effect coding: column k is 1 on weekday k, −1 on Sunday, 0 otherwise."""
    x = (weekday[:, None] == np.arange(6)[None, :]).astype(float)
    x[weekday == 6] = -1.0
    return x


Moments = dict[str, tuple[np.ndarray, np.ndarray, int]]


def athlete_moments(model, rows: pd.DataFrame) -> Moments | None:
    """One fitted athlete's within-week-centred normal equations per target: (XᵀX (6, 6),
    Xᵀr (6,), mornings), or None for an athlete not in the model or too short."""
    draws = model.athletes_.get(str(rows["user_id"].iloc[0]))
    if draws is None:
        return None
    series = series_from_frame(rows)
    if len(series.load) <= WARM_START_DAYS:
        return None
    n_draws = len(draws["mu_hrv"])
    keep = np.unique(np.linspace(0, n_draws - 1, min(n_draws, MAX_DRAWS)).astype(int))
    p = {k: np.asarray(v)[keep] for k, v in draws.items()}
    means = observation_means(p, latent_states(p, series.load, series.hi_load))
    day = weekdays(series.dates)
    week = (series.dates.astype("datetime64[D]").astype(np.int64) + 3) // 7
    x_all = _effect_columns(day)
    out = {}
    for target, y in observed_targets(series).items():
        r = y - means[target].mean(axis=0)
        seen = np.isfinite(r)
        seen[:WARM_START_DAYS] = False
        if seen.sum() < 2:
            continue
        r, x, w = r[seen], x_all[seen], week[seen]
        _, group = np.unique(w, return_inverse=True)
        counts = np.bincount(group)
        r_c = r - (np.bincount(group, r) / counts)[group]
        x_c = x - (np.stack([np.bincount(group, x[:, k]) for k in range(6)], axis=1)
                   / counts[:, None])[group]
        out[target] = (x_c.T @ x_c, x_c.T @ r_c, int(seen.sum()))
    return out


def _solve(xtx: np.ndarray, xtr: np.ndarray) -> tuple[float, ...]:
    free = np.linalg.lstsq(xtx, xtr, rcond=None)[0]
    return tuple(float(v) for v in (*free, -free.sum()))


def estimate_weekday(model, frame: pd.DataFrame, say: Callable[[str], None] | None = None,
                     seed: int = 0) -> WeekdayEffect:
    """The weekday offsets of the fitted athletes of `frame` (module docstring), per source of
    the model. Raises ValueError when no athlete of the model is in `frame`."""
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    moments: list[tuple[str, dict]] = []
    used: dict[str, str] = {}
    for athlete, rows in frame.groupby("user_id", sort=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = athlete_moments(model, rows)
        if not m:
            continue
        source = str(rows["source"].dropna().iloc[-1]) if rows["source"].notna().any() else ""
        used[str(athlete)] = source
        moments.append((source, m))
    if not moments:
        raise ValueError("no athlete of the model is in the data: nothing to estimate the "
                         "weekday offsets on")

    def total(which: list[dict], target: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        parts = [m[target] for m in which if target in m]
        if not parts:
            return np.zeros((6, 6)), np.zeros(6), 0, 0
        return (sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts),
                len(parts))

    everyone = [m for _, m in moments]
    values, mornings, own = {}, {}, {}
    pooled, pooled_n = {}, {}
    for target in TARGETS:
        xtx, xtr, pooled_n[target], _ = total(everyone, target)
        pooled[target] = _solve(xtx, xtr) if pooled_n[target] else (0.0,) * 7
    rng = np.random.default_rng(seed)
    boot = {t: [] for t in TARGETS}
    for _ in range(BOOTSTRAP):
        pick = [everyone[i] for i in rng.integers(0, len(everyone), len(everyone))]
        for target in TARGETS:
            xtx, xtr, n, _ = total(pick, target)
            if n:
                boot[target].append(_solve(xtx, xtr))
    pooled_se = {t: tuple(float(v) for v in np.std(np.asarray(b), axis=0, ddof=1))
                 if len(b) > 1 else (0.0,) * 7 for t, b in boot.items()}
    for source in (*model.population_.sources, POOLED):
        mine = [m for s, m in moments if s == source]
        values[source], mornings[source], own[source] = {}, {}, {}
        for target in TARGETS:
            xtx, xtr, n, k = total(mine, target)
            is_own = source != POOLED and n >= MIN_MORNINGS and k >= MIN_ATHLETES
            values[source][target] = _solve(xtx, xtr) if is_own else pooled[target]
            mornings[source][target] = n if is_own else pooled_n[target]
            own[source][target] = bool(is_own)
        if say:
            say(f"weekday {source}: " + "; ".join(
                f"{t} " + " ".join(f"{d} {v:+.3f}" for d, v in zip(DAYS, values[source][t]))
                + ("" if own[source][t] else " (pooled)") for t in TARGETS))
    return WeekdayEffect(values, mornings, own, pooled_se, used)


def apply_weekday(model, effect: WeekdayEffect) -> None:
    """Write the offsets into the model's draws as `params.WEEKDAY_PARAMS`: the population's
    (draw, source) arrays, so that new and synthetic athletes get their source's, and every
    fitted athlete's draws (its source's; the pooled values for one the estimate did not
    see)."""
    population = model.population_
    for target in TARGETS:
        for day in range(7):
            name = WEEKDAY_PARAMS[target][day]
            population.phi[name] = np.tile([effect.values[s][target][day]
                                            for s in population.sources],
                                           (population.n_draws, 1)).astype(float)
    for athlete, draws in model.athletes_.items():
        values = effect.values.get(effect.athletes.get(athlete), effect.values[POOLED])
        for target in TARGETS:
            for day in range(7):
                draws[WEEKDAY_PARAMS[target][day]] = np.full(len(draws["mu_hrv"]),
                                                             values[target][day])
