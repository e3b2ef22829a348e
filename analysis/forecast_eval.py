"""Scoring forecasts of morning physiology: metrics, the evaluation protocol, the JSON report.

The protocol (world-model issue, item 7), run by `evaluate_forecasters` on any canonical frame:

1. Athletes: those `preprocess.assess_athletes` keeps that have at least `min_hrv_days` days of
   HRV (the world model's athletes). Each is calendar-filled (`preprocess.fill_calendar`).
2. `splits.user_split(athletes, test_fraction, seed)` → training and unseen athletes.
3. `splits.temporal_split` of each training athlete's rows (70/15/15 of the days present): the
   first test date is that athlete's cutoff. Every forecaster is fitted **once**, on the
   training athletes' rows before their cutoffs (train + val), and then
   (a) `temporal`: conditioned on each training athlete's rows before the cutoff, it forecasts
       from every origin on or after the cutoff;
   (b) `unseen`: conditioned on each unseen athlete's first `condition_days` calendar days, it
       forecasts from every origin after them. An unseen athlete with fewer than
       `MIN_CONDITION_MEASURED` mornings with HRV or RHR in those days is left out for every
       method (a personalisation needs that many; `short_conditioning` names them).
   An origin is used for horizon h when its target row d0+h−1 exists, and a day is scored only
   where the target was observed. HRV is scored on the ln scale.
4. Per target × horizon × method × split, one record: `n` (scored days), `mae` (of the
   predictive median), `crps` (mean over days, pooled over athletes), `cover50` / `cover90`
   (share of days inside the central 50 % / 90 % interval), and `crps_lo` / `crps_hi` (a
   percentile bootstrap 95 % interval of the pooled mean CRPS, resampling athletes). Undefined
   values (n = 0) are None.
5. With `baselines` named, each other method's record also holds `best_baseline` (the named
   baseline with the lowest pooled CRPS on the same target, horizon and split), `crps_ratio`
   (its CRPS over that baseline's: under 1 is better) and `crps_ratio_lo` / `crps_ratio_hi` (a
   paired percentile bootstrap 95 % interval: each resample draws athletes with replacement,
   recomputes every method's pooled CRPS on the same draw and divides by the best baseline of
   that draw, so the choice of the baseline is inside the interval). A baseline's record holds
   None there.

CRPS (continuous ranked probability score; Gneiting & Raftery 2007, J Am Stat Assoc 102:359):
CRPS(F, y) = E|X − y| − ½·E|X − X'|, with X, X' independent draws from F. Lower is better; it is
in the target's units and equals the absolute error for a point forecast. A forecaster with
Gaussian predictive distributions (`GaussianAthleteForecaster`: every baseline) is scored in
closed form (its median is its mean, its intervals μ ± z·σ, and `n_samples` is not used); any
other from its `n_samples` samples, with the exact CRPS of their empirical distribution.

A model loaded from disk can take part through an adapter whose `fit` does nothing; its
scores are out of sample only if it was fitted on `split_for_forecasting(...).fit_frame` with
the same seed, test fraction and athlete selection.

Everything is deterministic given `seed`: the user split uses it directly, and each forecast's
sampling and each bootstrap draw a stream keyed by (seed, method, split, athlete, horizon).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from physiology_model.data.table import atomic_write
from physiology_model.model.fitting import split_for_forecasting
from physiology_model.model.forecasters import (
    TARGETS,
    AthleteForecaster,
    Forecaster,
    GaussianAthleteForecaster,
    target_values,
)

RECORD_KEYS: tuple[str, ...] = ("target", "horizon", "method", "split", "n", "mae", "crps",
                                "cover50", "cover90", "crps_lo", "crps_hi")
"""Keys of every record, in order."""

RATIO_KEYS: tuple[str, ...] = ("best_baseline", "crps_ratio", "crps_ratio_lo", "crps_ratio_hi")
"""Keys added after `RECORD_KEYS` when `evaluate_forecasters` is given baselines."""

SPLITS: tuple[str, str] = ("temporal", "unseen")

MIN_CONDITION_MEASURED = 7
"""Mornings with HRV or RHR an unseen athlete needs in its conditioning days (the world
model's personalisation needs 7)."""

INTERVAL_LEVELS: tuple[float, float] = (0.5, 0.9)
"""Central predictive intervals whose coverage is reported (`cover50`, `cover90`)."""

N_BOOTSTRAP = 2000
"""Bootstrap resamples of athletes for the 95 % interval of the mean CRPS."""


# ---------------------------------------------------------------------------------------------
# Metrics.


def crps_samples(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of `samples` (..., m) at `observed` (...).

    Exact for the m-point empirical distribution, O(m log m) by sorting: the kernel form
    E|X − y| − ½·E|X − X'| of Gneiting & Raftery (2007), with E|X − X'| over sorted samples
    (the estimator the R package scoringRules uses; Jordan, Krüger & Lerch 2019, J Stat Softw
    90(12)):

        CRPS = (1/m)·Σ_i |x_i − y| − (1/m²)·Σ_i (2i − m − 1)·x_(i),   x_(1) ≤ … ≤ x_(m).

    For m = 1 (a point forecast) it is |x − y|.
    """
    x = np.sort(np.asarray(samples, dtype=float), axis=-1)
    y = np.asarray(observed, dtype=float)
    m = x.shape[-1]
    if m == 0:
        raise ValueError("need at least one sample")
    weights = 2.0 * np.arange(1, m + 1) - m - 1
    spread = (x * weights).sum(axis=-1) / m ** 2
    return np.abs(x - y[..., None]).mean(axis=-1) - spread


def crps_gaussian(mean: np.ndarray, sd: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """CRPS of N(mean, sd²) at `observed`, in closed form (Gneiting, Raftery, Westveld &
    Goldman 2005, Mon Weather Rev 133:1098; Gneiting & Raftery 2007):

        CRPS = σ·[z·(2Φ(z) − 1) + 2φ(z) − 1/√π],   z = (y − μ)/σ.

    Arrays broadcast together; σ must be positive.
    """
    mu = np.asarray(mean, dtype=float)
    sigma = np.asarray(sd, dtype=float)
    if np.any(sigma <= 0):
        raise ValueError("Gaussian CRPS needs positive SDs")
    z = (np.asarray(observed, dtype=float) - mu) / sigma
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return sigma * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * density - 1.0 / math.sqrt(math.pi))


def interval_hits(samples: np.ndarray, observed: np.ndarray, level: float) -> np.ndarray:
    """Whether `observed` (...) lies in the central `level` interval of `samples` (..., m),
    bounds the empirical (1 ± level)/2 quantiles (numpy's default linear interpolation),
    inclusive."""
    lo, hi = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=-1)
    y = np.asarray(observed, dtype=float)
    return (y >= lo) & (y <= hi)


def gaussian_interval_hits(mean: np.ndarray, sd: np.ndarray, observed: np.ndarray,
                           level: float) -> np.ndarray:
    """As `interval_hits` for N(mean, sd²): |y − μ| ≤ Φ⁻¹((1 + level)/2)·σ."""
    z = float(ndtri((1.0 + level) / 2.0))
    return np.abs(np.asarray(observed, dtype=float) - mean) <= z * np.asarray(sd, dtype=float)


def bootstrap_mean_ci(sums: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
                      n_boot: int = N_BOOTSTRAP, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a pooled mean, resampling athletes (clusters).

    `sums[a]` and `counts[a]` are athlete a's total score and number of scored days; each
    resample draws athletes with replacement and recomputes Σ sums / Σ counts over the draw
    (days of one athlete stay together: they are not independent). Athletes with no scored day
    are ignored. Returns (lo, hi); (nan, nan) without scored days.
    """
    keep = np.asarray(counts) > 0
    s = np.asarray(sums, dtype=float)[keep]
    c = np.asarray(counts, dtype=float)[keep]
    if c.size == 0:
        return math.nan, math.nan
    draws = _athlete_draws(c.size, rng, n_boot)
    means = (draws @ s) / (draws @ c)
    return _percentiles(means, level)


def _athlete_draws(n_athletes: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """How often each athlete is drawn in each of `n_boot` resamples, (n_boot, n_athletes)."""
    return rng.multinomial(n_athletes, np.full(n_athletes, 1.0 / n_athletes), size=n_boot)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


def bootstrap_ratio_ci(sums: np.ndarray, baseline_sums: np.ndarray, counts: np.ndarray,
                       rng: np.random.Generator, n_boot: int = N_BOOTSTRAP,
                       level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap interval of a method's pooled mean score over the best of
    some baselines' (resampling athletes, as `bootstrap_mean_ci`).

    `sums` (A,) and `baseline_sums` (B, A): each athlete's total score under the method and
    under each of B baselines, on the same `counts` (A,) scored days. Each resample draws
    athletes with replacement and divides the method's pooled mean by the lowest of the
    baselines' pooled means on the same draw. Returns (lo, hi); (nan, nan) without scored days.
    """
    keep = np.asarray(counts) > 0
    if not keep.any():
        return math.nan, math.nan
    s = np.asarray(sums, dtype=float)[keep]
    b = np.asarray(baseline_sums, dtype=float)[:, keep]
    draws = _athlete_draws(s.size, rng, n_boot)
    return _percentiles((draws @ s) / (draws @ b.T).min(axis=1), level)


# ---------------------------------------------------------------------------------------------
# The protocol.


def _stream(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent generator for (seed, keys), whatever order things are run in."""
    key = tuple(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys)
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


@dataclass
class _Scores:
    """Per-day scores of one (target, horizon, method, split), by athlete."""

    crps: list[np.ndarray]
    abs_error: list[np.ndarray]
    hits50: list[np.ndarray]
    hits90: list[np.ndarray]


def _check_finite(target: str, *forecasts: np.ndarray) -> None:
    """A forecast of a day that is scored must be a number: NaN would silently void the mean."""
    for values in forecasts:
        if not np.isfinite(values).all():
            raise ValueError(f"the forecast of {target} is not finite on a day with an "
                             f"observed {target}")


def _score_athlete(conditioned: AthleteForecaster, frame: pd.DataFrame, origins: np.ndarray,
                   horizon: int, n_samples: int, rng: np.random.Generator
                   ) -> dict[str, tuple[np.ndarray, ...]]:
    """Per target: (crps, absolute error of the median, in 50 %, in 90 %) of the scored days
    (origins whose target row d0+h−1 was observed)."""
    truth = target_values(frame)
    rows = origins + horizon - 1
    out = {}
    if isinstance(conditioned, GaussianAthleteForecaster):
        forecast = conditioned.forecast_gaussian(frame, origins, horizon)
        for target in TARGETS:
            mean, sd = (np.asarray(a)[:, horizon - 1] for a in forecast[target])
            y = truth[target][rows]
            seen = np.isfinite(y)
            mean, sd, y = mean[seen], sd[seen], y[seen]
            _check_finite(target, mean, sd)
            out[target] = (crps_gaussian(mean, sd, y), np.abs(mean - y),
                           *(gaussian_interval_hits(mean, sd, y, lv) for lv in INTERVAL_LEVELS))
        return out
    samples = conditioned.forecast(frame, origins, horizon, n_samples, rng)
    for target in TARGETS:
        draws = np.asarray(samples[target])
        if draws.shape != (origins.size, n_samples, horizon):
            raise ValueError(f"forecast of {target} has shape {draws.shape}, expected "
                             f"{(origins.size, n_samples, horizon)}")
        y = truth[target][rows]
        seen = np.isfinite(y)
        last, y = draws[seen, :, horizon - 1], y[seen]
        _check_finite(target, last)
        out[target] = (crps_samples(last, y), np.abs(np.median(last, axis=-1) - y),
                       *(interval_hits(last, y, lv) for lv in INTERVAL_LEVELS))
    return out


def _record(target: str, horizon: int, method: str, split: str, scores: _Scores,
            rng: np.random.Generator) -> dict:
    counts = np.array([c.size for c in scores.crps])
    n = int(counts.sum())
    record: dict = {"target": target, "horizon": int(horizon), "method": method, "split": split,
                    "n": n}
    if n == 0:
        record.update({k: None for k in RECORD_KEYS[5:]})
        return record
    def pooled(parts: list[np.ndarray]) -> float:
        return float(np.concatenate(parts).astype(float).mean())

    lo, hi = bootstrap_mean_ci(np.array([c.sum() for c in scores.crps]), counts, rng)
    record.update({"mae": pooled(scores.abs_error), "crps": pooled(scores.crps),
                   "cover50": pooled(scores.hits50), "cover90": pooled(scores.hits90),
                   "crps_lo": lo, "crps_hi": hi})
    return record


def evaluate_forecasters(table_frame: pd.DataFrame, forecasters: Sequence[Forecaster], *,
                         seed: int, horizons: Sequence[int] = (1, 7), n_samples: int = 200,
                         test_fraction: float = 0.2, condition_days: int = 14,
                         min_hrv_days: int = 28, baselines: Sequence[str] = (),
                         say: Callable[[str], None] | None = None) -> list[dict]:
    """Run the forecast evaluation protocol (module docstring) and return its records.

    `table_frame`: a canonical daily-table frame (`DailyTable.frame`, any athletes); each
    forecaster is fitted once (on `split_for_forecasting(...).fit_frame`), then conditioned and
    scored per athlete. Returns one record per target × horizon × method × split (targets in
    `TARGETS` order, then horizons, methods in the given order, splits temporal then unseen),
    each with the keys `RECORD_KEYS`, and `RATIO_KEYS` after them when `baselines` (names of
    some of the forecasters) is given (item 5 of the module docstring). Method names must be
    unique. `say` is told which unseen athletes the protocol leaves out, if any.
    """
    names = [f.name for f in forecasters]
    if len(set(names)) != len(names):
        raise ValueError(f"forecaster names must be unique, got {names}")
    unknown = [b for b in baselines if b not in names]
    if unknown:
        raise ValueError(f"baselines {unknown} are not among the forecasters {names}")
    horizons = tuple(int(h) for h in horizons)
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive day counts, got {horizons}")
    if condition_days < 1:
        raise ValueError("condition_days must be ≥ 1")
    split = split_for_forecasting(table_frame, seed=seed, test_fraction=test_fraction,
                                  min_hrv_days=min_hrv_days)
    # (split, athlete) → (conditioning rows, first origin)
    short = short_conditioning(split, condition_days)
    if short and say:
        say(f"left out {len(short)} unseen athletes with under {MIN_CONDITION_MEASURED} "
            f"mornings of HRV or RHR in their first {condition_days} days: {', '.join(short)}")
    plan: list[tuple[str, str, int]] = (
        [("temporal", u, split.cutoff_rows[u]) for u in split.train_users]
        + [("unseen", u, condition_days) for u in split.test_users if u not in short])
    scores = {(t, h, m, s): _Scores([], [], [], [])
              for t in TARGETS for h in horizons for m in names for s in SPLITS}
    for forecaster in forecasters:
        forecaster.fit(split.fit_frame)
        for split_name, user, first in plan:
            frame = split.frames[user]
            if first < 1 or first >= len(frame):
                continue
            conditioned = forecaster.condition(frame.iloc[:first])
            for horizon in horizons:
                origins = np.arange(first, len(frame) - horizon + 1, dtype=np.int64)
                if not origins.size:
                    continue
                rng = _stream(seed, forecaster.name, split_name, user, horizon)
                per_target = _score_athlete(conditioned, frame, origins, horizon, n_samples,
                                            rng)
                for target, (crps, error, hit50, hit90) in per_target.items():
                    bucket = scores[(target, horizon, forecaster.name, split_name)]
                    bucket.crps.append(crps)
                    bucket.abs_error.append(error)
                    bucket.hits50.append(hit50)
                    bucket.hits90.append(hit90)
    records = []
    for target in TARGETS:
        for horizon in horizons:
            for method in names:
                for split_name in SPLITS:
                    # One bootstrap stream per (target, horizon, split), shared by the methods:
                    # the same athlete resamples, so their intervals are comparable.
                    rng = _stream(seed, "bootstrap", target, split_name, horizon)
                    records.append(_record(target, horizon, method, split_name,
                                           scores[(target, horizon, method, split_name)], rng))
    if baselines:
        _add_ratios(records, scores, list(baselines), seed)
    return records


def short_conditioning(split, condition_days: int) -> list[str]:
    """The unseen athletes of `split` (`fitting.split_for_forecasting`) with fewer than
    `MIN_CONDITION_MEASURED` mornings with HRV or RHR in their first `condition_days` calendar
    days, which the protocol leaves out."""
    out = []
    for user in split.test_users:
        head = split.frames[user].iloc[:condition_days]
        measured = head["hrv_rmssd_ms"].notna() | head["rhr_bpm"].notna()
        if int(measured.sum()) < MIN_CONDITION_MEASURED:
            out.append(user)
    return out


def _add_ratios(records: list[dict], scores: dict[tuple, _Scores], baselines: list[str],
                seed: int) -> None:
    """Add `RATIO_KEYS` to every record (module docstring, item 5), in place."""
    by_key = {(r["target"], r["horizon"], r["method"], r["split"]): r for r in records}
    for (target, horizon, method, split_name), record in by_key.items():
        record.update(dict.fromkeys(RATIO_KEYS))
        if method in baselines or not record["n"]:
            continue
        best = min(baselines, key=lambda b: by_key[(target, horizon, b, split_name)]["crps"])
        if not by_key[(target, horizon, best, split_name)]["crps"] > 0:
            continue
        own = scores[(target, horizon, method, split_name)].crps
        others = [scores[(target, horizon, b, split_name)].crps for b in baselines]
        counts = np.array([c.size for c in own])
        # every method is scored on the same days of the same athletes, in the same order
        assert all(np.array_equal([c.size for c in o], counts) for o in others)
        rng = _stream(seed, "ratio", target, split_name, horizon, method)
        lo, hi = bootstrap_ratio_ci(np.array([c.sum() for c in own]),
                                    np.array([[c.sum() for c in o] for o in others]), counts,
                                    rng)
        record.update({"best_baseline": best,
                       "crps_ratio": record["crps"] / by_key[(target, horizon, best,
                                                              split_name)]["crps"],
                       "crps_ratio_lo": lo, "crps_ratio_hi": hi})


def write_forecast_report(records: Sequence[dict], path: str | Path) -> None:
    """Write the records as a JSON list atomically (either the whole file or none); NaN → null."""
    def clean(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    payload = [{k: clean(v) for k, v in record.items()} for record in records]
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
