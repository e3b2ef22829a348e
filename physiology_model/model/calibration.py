"""Predictive intervals that hold for people the model has never seen (issue 24, item 3).

On athletes outside the fit the world model's predictive distribution (posterior draws ×
filtered noise, `world_model.forecast_samples`) is a little too narrow and too light-tailed:
the personalised posterior treats the model as right, and what it misses (a wandering
baseline, nights the loads do not explain) shows up as errors larger than it predicted.

The rule (quantile recalibration of the standardised error; Kuleshov, Fenner & Ermon 2018,
ICML, "Accurate uncertainties for deep learning using calibrated regression", here on the
standardised scale so that one table serves every athlete and origin):

1. Learning, on the **training athletes only** (the rows the posterior was fitted on): each is
   personalised on its first c calendar days (c in `CONDITION_DAYS`), as a new user would be,
   and forecast from every later origin up to `max_horizon` days ahead, exactly as
   `WorldModelForecaster` forecasts an unseen athlete (neural residual included). For every
   scored day the error is standardised by the forecast's own sample mean m and SD s:
   z = (y − m)/s (recovery on the logit scale). Per target, horizon and c, the table stores
   the quantiles of z at `PROBS`.
2. Applying (`IntervalCalibration.apply`), to the forecasts of an athlete the model
   personalised: each predictive sample x with rank i among the n samples of its day becomes
   m + s · Q_z((i + ½)/n), with Q_z the table's quantile function (linear between the stored
   levels) for that target, horizon and the table c nearest to the athlete's number of
   measured days (on a log scale; more than 28 days use c = 28). The map is monotone within
   each day, so the joint order of the samples across days and targets (the trajectories)
   is kept; only each day's marginal is re-shaped. Horizons beyond the table use its last.
   Few days → a larger s already (parameter uncertainty), and a c = 7 table learned from
   7-day personalisations → as much extra width as such forecasts needed on the training
   athletes.
3. Leave-athletes-out check, stored with the table: the training athletes are split into
   `N_FOLDS` folds; each fold's coverage of the central 50 % / 90 % intervals is measured with a
   table learned on the other folds (`cross_validation`), so the numbers say how the rule
   does on athletes it did not learn from.

Athletes in the fit keep their fitted posterior and are not recalibrated (their in-sample
posterior is a different situation). The table is stored as JSON (`calibration.json` in the
model directory), validated on load; nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.table import atomic_write
from physiology_model.dynamics.observation import TARGETS, logit_to_recovery, recovery_to_logit
from physiology_model.errors import DataError

FILE_NAME = "calibration.json"
FORMAT = "adaptive-periodization.IntervalCalibration"
FORMAT_VERSION = 1
PROBS: tuple[float, ...] = tuple(float(p) for p in np.round(
    np.concatenate([[0.001, 0.0025], np.linspace(0.005, 0.995, 199), [0.9975, 0.999]]), 6))
"""Levels at which the standardised error's quantiles are stored."""
CONDITION_DAYS: tuple[int, ...] = (7, 14, 28)
MAX_HORIZON = 14
N_FOLDS = 5
MIN_SCORED = 50
"""Fewest scored days for a (target, horizon, c) table; with fewer the table is the standard
normal's quantiles (no recalibration)."""


def _logit(pct: np.ndarray) -> np.ndarray:

    return recovery_to_logit(pct)


def _expit(logit: np.ndarray) -> np.ndarray:

    return logit_to_recovery(logit)


def model_scale(target: str, values: np.ndarray) -> np.ndarray:
    return _logit(values) if target == "recovery" else np.asarray(values, dtype=float)


def _report_scale(target: str, values: np.ndarray) -> np.ndarray:
    return _expit(values) if target == "recovery" else values


@dataclass(frozen=True)
class IntervalCalibration:
    """Per target, condition days c and horizon h: quantiles of z at `probs`."""

    probs: tuple[float, ...]
    condition_days: tuple[int, ...]
    quantiles: dict[str, np.ndarray]
    """{target: (n_condition, n_horizons, n_probs)}, non-decreasing along the last axis."""
    counts: dict[str, np.ndarray]
    """{target: (n_condition, n_horizons)} scored days behind each table."""
    info: dict

    @property
    def max_horizon(self) -> int:
        return next(iter(self.quantiles.values())).shape[1]

    def _row(self, n_days: int) -> int:
        c = np.log(np.asarray(self.condition_days, dtype=float))
        return int(np.argmin(np.abs(c - math.log(max(min(n_days, max(self.condition_days)), 1)))))

    def apply(self, samples: Mapping[str, np.ndarray], n_days: int) -> dict[str, np.ndarray]:
        """Recalibrated copies of forecast samples {target: (n_origins, n_samples, horizon)}
        (report units: ln ms, bpm, %) of an athlete personalised on `n_days` measured days
        (module docstring, step 2). Targets not in the table are returned unchanged."""
        row = self._row(n_days)
        out = {}
        for target, values in samples.items():
            x = np.asarray(values, dtype=float)
            if target not in self.quantiles or x.ndim != 3 or x.shape[1] < 2:
                out[target] = x
                continue
            y = model_scale(target, x)
            centre = y.mean(axis=1, keepdims=True)
            spread = np.maximum(y.std(axis=1, keepdims=True), 1e-9)
            n = y.shape[1]
            ranks = np.argsort(np.argsort(y, axis=1, kind="stable"), axis=1, kind="stable")
            levels = (ranks + 0.5) / n
            z = np.empty_like(y)
            for h in range(y.shape[2]):
                table = self.quantiles[target][row, min(h, self.max_horizon - 1)]
                z[:, :, h] = np.interp(levels[:, :, h], self.probs, table)
            out[target] = _report_scale(target, centre + spread * z)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "probs": list(self.probs),
                "condition_days": list(self.condition_days),
                "quantiles": {t: np.round(q, 4).tolist() for t, q in self.quantiles.items()},
                "counts": {t: c.astype(int).tolist() for t, c in self.counts.items()},
                "info": self.info}

    @classmethod
    def from_json(cls, data: object, path: str | Path) -> IntervalCalibration:
        """Validate and build; anything malformed is one `DataError` naming `path`."""
        def bad(problem: str) -> DataError:
            return DataError(path, f"not a valid interval calibration: {problem}")

        if not isinstance(data, dict):
            raise bad("the top level is not an object")
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise bad(f"format {data.get('format')!r} version {data.get('format_version')!r}, "
                      f"this code reads {FORMAT} version {FORMAT_VERSION}")
        try:
            probs = np.asarray(data["probs"], dtype=float)
            condition = tuple(int(c) for c in data["condition_days"])
            quantiles = {str(t): np.asarray(q, dtype=float) for t, q in data["quantiles"].items()}
            counts = {str(t): np.asarray(c, dtype=float) for t, c in data["counts"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise bad(f"missing or unreadable field ({exc})") from None
        if probs.ndim != 1 or probs.size < 3 or not np.all(np.diff(probs) > 0) \
                or probs[0] <= 0 or probs[-1] >= 1:
            raise bad("probs must be increasing levels inside (0, 1)")
        if not condition or min(condition) < 1 or list(condition) != sorted(set(condition)):
            raise bad("condition_days must be increasing positive day counts")
        if set(quantiles) - set(TARGETS) or not quantiles:
            raise bad(f"targets must be among {TARGETS}, got {sorted(quantiles)}")
        for target, q in quantiles.items():
            if q.ndim != 3 or q.shape[0] != len(condition) or q.shape[2] != probs.size \
                    or q.shape[1] < 1:
                raise bad(f"{target} quantiles have shape {q.shape}, expected "
                          f"({len(condition)}, horizons, {probs.size})")
            if not np.all(np.isfinite(q)) or np.any(np.diff(q, axis=2) < 0):
                raise bad(f"{target} quantiles must be finite and non-decreasing")
            if target not in counts or counts[target].shape != q.shape[:2]:
                raise bad(f"{target} counts do not match its quantiles")
        info = data.get("info", {})
        if not isinstance(info, dict):
            raise bad("info must be an object")
        return cls(tuple(float(p) for p in probs), condition, quantiles, counts, info)

    def save(self, directory: str | Path) -> None:

        path = Path(directory) / FILE_NAME
        text = json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def load_calibration(directory: str | Path) -> IntervalCalibration | None:
    """The calibration saved in a model directory, or None when it has none."""
    path = Path(directory) / FILE_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    return IntervalCalibration.from_json(data, path)


# ---------------------------------------------------------------------------------------------
# Learning.


@dataclass
class StandardisedErrors:
    """z values of the training athletes, by (target, condition index, horizon index)."""

    z: dict[tuple[str, int, int], list[np.ndarray]]
    athlete: dict[tuple[str, int, int], list[np.ndarray]]


def measured_days(history: pd.DataFrame) -> int:
    """Days with HRV or RHR measured: what a personalisation learns from."""
    return int((history["hrv_rmssd_ms"].notna() | history["rhr_bpm"].notna()).sum())


def _table(values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    if values.size < MIN_SCORED:
        return ndtri(probs)
    return np.quantile(values, probs)


def build_calibration(errors: StandardisedErrors, *, condition_days: Sequence[int] =
                      CONDITION_DAYS, max_horizon: int = MAX_HORIZON,
                      exclude: set[int] | frozenset[int] = frozenset(), info: dict | None = None
                      ) -> IntervalCalibration:
    """The table from standardised errors, leaving out the athletes (indices) in `exclude`."""
    probs = np.asarray(PROBS)
    quantiles, counts = {}, {}
    for target in TARGETS:
        q = np.empty((len(condition_days), max_horizon, probs.size))
        n = np.zeros((len(condition_days), max_horizon))
        for ci in range(len(condition_days)):
            for h in range(max_horizon):
                parts = errors.z.get((target, ci, h), [])
                owners = errors.athlete.get((target, ci, h), [])
                values = np.concatenate([v[~np.isin(o, list(exclude))]
                                         for v, o in zip(parts, owners)]) if parts else np.zeros(0)
                values = values[np.isfinite(values)]
                q[ci, h] = np.maximum.accumulate(_table(values, probs))
                n[ci, h] = values.size
        quantiles[target], counts[target] = q, n
    return IntervalCalibration(tuple(float(p) for p in probs), tuple(int(c) for c in condition_days),
                               quantiles, counts, dict(info or {}))


def interval_coverage(z: np.ndarray, table: np.ndarray, probs: np.ndarray,
                      level: float) -> float:
    """Share of standardised errors inside the central `level` interval of the table."""
    lo, hi = np.interp([(1 - level) / 2, (1 + level) / 2], probs, table)
    return float(np.mean((z >= lo) & (z <= hi))) if z.size else math.nan


def cross_validate(errors: StandardisedErrors, n_athletes: int, *, condition_days: Sequence[int]
                   = CONDITION_DAYS, max_horizon: int = MAX_HORIZON, seed: int = 0,
                   horizons: Sequence[int] = (1, 7, 14)) -> list[dict]:
    """Leave-athletes-out coverage (module docstring, step 3): per target, c and horizon, the
    50 % / 90 % coverage of held-out folds' errors under tables learned without them."""
    rng = np.random.default_rng([seed, zlib.crc32(b"calibration-folds")])
    fold_of = rng.permutation(n_athletes) % N_FOLDS
    probs = np.asarray(PROBS)
    out = []
    tables = [build_calibration(errors, condition_days=condition_days, max_horizon=max_horizon,
                                exclude=frozenset(np.flatnonzero(fold_of == k).tolist()))
              for k in range(N_FOLDS)]
    for target in TARGETS:
        for ci, c in enumerate(condition_days):
            for h in horizons:
                if h > max_horizon:
                    continue
                parts = errors.z.get((target, ci, h - 1), [])
                owners = errors.athlete.get((target, ci, h - 1), [])
                if not parts:
                    continue
                z, o = np.concatenate(parts), np.concatenate(owners)
                record = {"target": target, "condition_days": int(c), "horizon": int(h),
                          "n": int(z.size)}
                for level in (0.5, 0.9):
                    hits = []
                    for k in range(N_FOLDS):
                        held = fold_of[o] == k
                        table = tables[k].quantiles[target][ci, h - 1]
                        if held.any():
                            hits.append(interval_coverage(z[held], table, probs, level)
                                        * held.sum())
                    record[f"cover{round(100 * level)}"] = float(sum(hits) / z.size)
                out.append(record)
    return out

