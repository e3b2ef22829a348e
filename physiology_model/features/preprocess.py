"""Preprocessing of the daily table (seed §5.2): which athletes are usable, gap filling, scaling.

Every rule is configurable (`PreprocessConfig`) and reported: an athlete that is dropped gets a
reason (`assess_athletes`), and every filled value is counted (`impute` → `ImputeReport`).

`impute` is for fitting and evaluating models on historical data. With the default centred median
window it looks at the days after a gap, so it must not feed a policy's observation: the feature
builder (`features.build_features`) has its own causal fills.

`FeatureScaler` scales feature columns the seed's way (RobustScaler for physiology, StandardScaler
for load), fitted on training rows only, and saves to JSON.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import RobustScaler, StandardScaler

from physiology_model.data.table import NUMERIC_COLUMNS, DailyTable, atomic_write
from physiology_model.errors import DataError
from physiology_model.features.batch import FEATURES

PHYSIOLOGY_COLUMNS: tuple[str, ...] = (
    "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min", "sleep_efficiency_pct", "rem_pct",
    "deep_pct", "resp_rate_rpm", "skin_temp_c", "skin_temp_dev_c", "spo2_pct",
)
"""Daily-table columns measured in the night's sleep: the only ones `impute` may fill."""

LOAD_COLUMNS: tuple[str, ...] = (
    "load_trimp", "strain", "z1_min", "z2_min", "z3_min", "z4_min", "z5_min", "strength_min",
)
"""Training-load columns. Never imputed: a missing load is neither 0 nor a typical day."""


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
    median_centred: bool = True
    """Centre the median window on the missing day (uses the days after it: fine for fitting on
    history). False: use the `median_window_days` days before it only (causal)."""
    impute_columns: tuple[str, ...] = PHYSIOLOGY_COLUMNS
    """Columns `impute` fills; load columns are refused."""
    fill_calendar: bool = True
    """Before filling, give each athlete one row per calendar day from their first to their last
    date (inserted rows carry the athlete's static columns age, sex, source, and nothing else)."""

    def __post_init__(self) -> None:
        load = sorted(set(self.impute_columns) & set(LOAD_COLUMNS))
        if load:
            raise ValueError(f"impute_columns may not include load columns {load}: a missing "
                             f"load is not zero and not a median")
        unknown = sorted(set(self.impute_columns) - set(NUMERIC_COLUMNS))
        if unknown:
            raise ValueError(f"impute_columns {unknown} are not numeric daily-table columns")
        if self.ffill_max_gap_days < 0 or self.median_window_days < 2:
            raise ValueError("ffill_max_gap_days must be ≥ 0 and median_window_days ≥ 2")


def assess_athletes(table: DailyTable,
                    config: PreprocessConfig = PreprocessConfig()) -> pd.DataFrame:
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


STATIC_COLUMNS: tuple[str, ...] = ("age", "sex", "source")


@dataclass(frozen=True)
class ImputeReport:
    """What `impute` did. `counts` has one row per imputed column (index = column name) with
    `missing_before`, `median_filled`, `forward_filled` and `missing_after` (value counts, over
    the calendar-filled frame when `rows_inserted` > 0)."""

    rows_inserted: int
    counts: pd.DataFrame

    @property
    def total_filled(self) -> int:
        return int(self.counts["median_filled"].sum() + self.counts["forward_filled"].sum())

    def __str__(self) -> str:
        lines = [f"rows inserted for missing calendar days: {self.rows_inserted}",
                 f"values filled: {self.total_filled}"]
        for name, r in self.counts.iterrows():
            if r["median_filled"] or r["forward_filled"]:
                lines.append(f"  {name}: {r['median_filled']} by rolling median, "
                             f"{r['forward_filled']} forward-filled, {r['missing_after']} "
                             f"still missing")
        return "\n".join(lines)


def fill_calendar(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Each athlete gets one row per calendar day between their first and last date.

    Inserted rows have NaN/None everywhere except `user_id`, `date` and the athlete's static
    columns (`STATIC_COLUMNS`, the first non-missing value of the athlete). Returns the new frame,
    sorted by (user_id, date), and the number of rows inserted.
    """
    if frame.empty:
        return frame.copy(), 0
    parts = []
    for user_id, g in frame.groupby("user_id", sort=True):
        calendar = pd.date_range(g["date"].min(), g["date"].max(), freq="D")
        full = g.set_index("date").reindex(calendar)
        full.index.name = "date"
        full["user_id"] = user_id
        for c in STATIC_COLUMNS:
            if c in full.columns:
                known = g[c].dropna()
                if len(known):
                    full[c] = full[c].where(full[c].notna(), known.iloc[0])
        parts.append(full.reset_index())
    out = pd.concat(parts, ignore_index=True)[list(frame.columns)]
    out["date"] = out["date"].astype(frame["date"].dtype)
    return out, len(out) - len(frame)


def _impute_series(y: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, int, int]:
    """Fill one athlete's column (consecutive calendar days). Returns (values, n_median,
    n_forward)."""
    y = y.astype(float).copy()
    missing = np.isnan(y)
    if not missing.any() or missing.all():
        return y, 0, 0
    n = len(y)
    known = ~missing
    prev_known = np.concatenate([[False], known[:-1]])
    next_known = np.concatenate([known[1:], [False]])
    isolated = missing & prev_known & next_known
    half = config.median_window_days // 2
    n_median = 0
    original = y.copy()
    for i in np.flatnonzero(isolated):
        if config.median_centred:
            window = original[max(0, i - half): i + half + 1]
        else:
            window = original[max(0, i - config.median_window_days): i]
        y[i] = np.nanmedian(window)  # neighbours are known, so the window has values
        n_median += 1
    # Forward-fill the remaining runs of at most ffill_max_gap_days that follow a known value.
    still = np.isnan(y)
    n_forward = 0
    i = 0
    while i < n:
        if not still[i]:
            i += 1
            continue
        j = i
        while j < n and still[j]:
            j += 1
        if i > 0 and j - i <= config.ffill_max_gap_days:
            y[i:j] = y[i - 1]
            n_forward += j - i
        i = j
    return y, n_median, n_forward


def impute(frame: pd.DataFrame, config: PreprocessConfig = PreprocessConfig()
           ) -> tuple[pd.DataFrame, ImputeReport]:
    """Fill short gaps in the physiology columns of a daily-table frame (seed §5.2).

    Per athlete and per column of `config.impute_columns`, over a continuous calendar (see
    `config.fill_calendar`):

    1. an isolated missing value (known days on both sides) becomes the median of the known
       values in the `median_window_days` window (centred, or trailing when not
       `median_centred`);
    2. every other run of at most `ffill_max_gap_days` missing days that follows a known value is
       forward-filled;
    3. longer gaps, and gaps at the start of the series, stay missing.

    Load columns are never touched. Dropping athletes with too much missing data is
    `assess_athletes`' job. Returns a new frame and the report; the input is not modified.
    """
    for key in ("user_id", "date"):
        if key not in frame.columns:
            raise ValueError(f"the frame has no {key!r} column")
    columns = [c for c in config.impute_columns if c in frame.columns]
    out = frame.sort_values(["user_id", "date"], kind="stable").reset_index(drop=True)
    inserted = 0
    if config.fill_calendar:
        out, inserted = fill_calendar(out)
    counts = {c: [int(out[c].isna().sum()), 0, 0] for c in columns}
    bounds = np.flatnonzero(np.r_[True, out["user_id"].to_numpy()[1:]
                                  != out["user_id"].to_numpy()[:-1], True])
    for c in columns:
        values = out[c].to_numpy(dtype=float).copy()
        for a, b in itertools.pairwise(bounds):
            filled, n_med, n_fwd = _impute_series(values[a:b], config)
            values[a:b] = filled
            counts[c][1] += n_med
            counts[c][2] += n_fwd
        out[c] = values
    table = pd.DataFrame.from_dict(counts, orient="index",
                                   columns=["missing_before", "median_filled", "forward_filled"])
    table["missing_after"] = [int(out[c].isna().sum()) for c in columns]
    table.index.name = "column"
    return out, ImputeReport(inserted, table)


# ---------------------------------------------------------------------------------------------
# Scaling.


def default_scaling() -> dict[str, str]:
    """Feature name → `robust` / `standard` / `none`, from `features.FEATURES`."""

    return {f.name: f.scaling for f in FEATURES}


class NotFittedError(RuntimeError):
    """A scaler was used before `fit`."""


_SCALER_FORMAT = "physiology_model.FeatureScaler"
_SCALER_VERSION = 1


class FeatureScaler:
    """Scale feature columns: RobustScaler for physiology, StandardScaler for load (seed §5.2).

    `scaling` maps column → `robust` (median / IQR), `standard` (mean / SD) or `none` (passed
    through); by default it is `features.FEATURES`' own choice. Fit it on training rows only.
    Fitted attributes: `columns_` (scaled columns, in order), `method_`, `center_`, `scale_`
    (one entry per column; a constant column gets scale 1, as in scikit-learn). Columns not in
    `scaling` pass through unchanged. Saves to and loads from JSON (no pickle).
    """

    def __init__(self, scaling: dict[str, str] | None = None) -> None:
        self.scaling = scaling

    def fit(self, frame: pd.DataFrame) -> FeatureScaler:
        """Learn each scaled column's centre and scale from `frame` (NaN values are ignored)."""
        scaling = self.scaling if self.scaling is not None else default_scaling()
        bad = {k: v for k, v in scaling.items() if v not in ("robust", "standard", "none")}
        if bad:
            raise ValueError(f"unknown scaling methods {bad}; use robust, standard or none")
        columns = [c for c, m in scaling.items() if m != "none" and c in frame.columns]
        missing = [c for c, m in scaling.items() if m != "none" and c not in frame.columns]
        if self.scaling is not None and missing:
            raise ValueError(f"columns {missing} to scale are not in the frame")
        if frame.empty:
            raise ValueError("cannot fit a scaler on an empty frame")
        center = np.zeros(len(columns))
        scale = np.ones(len(columns))
        for method, make in (("robust", RobustScaler), ("standard", StandardScaler)):
            idx = [i for i, c in enumerate(columns) if scaling[c] == method]
            if not idx:
                continue
            x = frame[[columns[i] for i in idx]].to_numpy(dtype=float)
            fitted = make().fit(x)
            center[idx] = fitted.center_ if method == "robust" else fitted.mean_
            scale[idx] = fitted.scale_
        self.columns_ = columns
        self.method_ = [scaling[c] for c in columns]
        self.center_ = center
        self.scale_ = scale
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("this FeatureScaler is not fitted yet: call fit(train_rows) "
                                 "or FeatureScaler.load(path) first")

    def _apply(self, frame: pd.DataFrame, inverse: bool) -> pd.DataFrame:
        self._check_fitted()
        absent = [c for c in self.columns_ if c not in frame.columns]
        if absent:
            raise ValueError(f"the frame lacks the fitted columns {absent}")
        out = frame.copy()
        x = frame[self.columns_].to_numpy(dtype=float)
        x = x * self.scale_ + self.center_ if inverse else (x - self.center_) / self.scale_
        out[self.columns_] = x
        return out

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of `frame` with the fitted columns scaled; other columns unchanged."""
        return self._apply(frame, inverse=False)

    def inverse_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Undo `transform`."""
        return self._apply(frame, inverse=True)

    def fit_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.fit(frame).transform(frame)

    def to_dict(self) -> dict:
        self._check_fitted()
        return {"format": _SCALER_FORMAT, "version": _SCALER_VERSION,
                "scaling": self.scaling, "columns": list(self.columns_),
                "method": list(self.method_), "center": [float(v) for v in self.center_],
                "scale": [float(v) for v in self.scale_]}

    def save(self, path: str | Path) -> None:
        """Write the fitted scaler as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=1)
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> FeatureScaler:
        """Read a scaler written by `save`."""

        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a readable scaler JSON file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != _SCALER_FORMAT:
            raise DataError(path, "not a FeatureScaler file")
        if data.get("version") != _SCALER_VERSION:
            raise DataError(path, f"FeatureScaler version {data.get('version')} is not "
                                  f"supported (expected {_SCALER_VERSION})")
        try:
            columns = [str(c) for c in data["columns"]]
            center = np.asarray(data["center"], dtype=float)
            scale = np.asarray(data["scale"], dtype=float)
            method = [str(m) for m in data["method"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"incomplete FeatureScaler file ({exc})") from None
        if center.ndim != 1 or scale.ndim != 1 or not (
                len(columns) == len(center) == len(scale) == len(method)):
            raise DataError(path, "FeatureScaler file: columns, center, scale differ in length")
        if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise DataError(path, "FeatureScaler file: 'center' and 'scale' must be finite, "
                                  "'scale' > 0")
        try:
            scaler = cls(data.get("scaling"))
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(path, f"FeatureScaler file: field 'scaling' ({exc})") from None
        scaler.columns_, scaler.method_ = columns, method
        scaler.center_, scaler.scale_ = center, scale
        return scaler
