"""The feature builder: a daily-table history → the policy's observation (seed §2.1, DESIGN §2).

The same code serves real athletes (a `DailyTable` frame, via `build_features`) and simulated ones
(arrays shaped `(n_athletes, n_days)`, via `compute_features`), so that a policy trained in the
simulator reads a real user's history in exactly the same way.

Timing rule (DESIGN §3): the row of day d holds the physiology measured in the sleep that ended on
the morning of d, and the load trained *during* d. The decision on day d is taken in the morning,
so **the features of day d use the physiology of days ≤ d and the load of days < d only**. Day d's
load is the action. Planned events are the one exception: an event date is known in advance.

Missing inputs never make a feature NaN: every feature has a documented fill (see `FEATURES`), and
each physiological signal has an `*_observed` indicator that is 1 only when the signal was
measured on day d itself. Physiological signals are filled in this order:

1. the value of day d;
2. the last observed value, if it is at most `FeatureConfig.ffill_limit_days` old;
3. the athlete's trailing mean over the `baseline_days` before d (any observation in the window);
4. the population reference value (`POPULATION_REFERENCE`), which lies near the centre of real
   WHOOP users' distributions, so that it is close to 0 after scaling.

Load features treat a missing load as unknown, never as 0: ATL and CTL are exponentially weighted
means over the days whose load is known (see `ewma_known`), 7-day sums are rescaled from the
known days, and `load_known_share` tells the policy how much of the recent load it actually saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the observation vector."""

    name: str
    unit: str
    formula: str
    """How it is computed from the daily table (d = the day of the decision)."""
    fill: str
    """What it is when its inputs are missing."""
    scaling: str
    """`robust` (physiology: RobustScaler), `standard` (load: StandardScaler) or `none` (already
    bounded or unit-free: indicators, sin/cos, z-scores). Used by `preprocess.FeatureScaler`."""


_PHYS_FILL = ("day d's value; else the last observed within ffill_limit_days; else the athlete's "
              "trailing baseline_days mean; else POPULATION_REFERENCE")

# (feature name, daily-table column, unit, observed-indicator name); the transform of hrv is ln.
_SIGNALS: tuple[tuple[str, str, str, str], ...] = (
    ("ln_hrv", "hrv_rmssd_ms", "ln(ms)", "hrv_observed"),
    ("rhr_bpm", "rhr_bpm", "bpm", "rhr_observed"),
    ("sleep_min", "sleep_min", "min", "sleep_observed"),
    ("sleep_efficiency_pct", "sleep_efficiency_pct", "%", "sleep_efficiency_observed"),
    ("rem_pct", "rem_pct", "% of sleep", "rem_observed"),
    ("deep_pct", "deep_pct", "% of sleep", "deep_observed"),
    ("recovery_pct", "recovery_pct", "%", "recovery_observed"),
    ("resp_rate_rpm", "resp_rate_rpm", "breaths/min", "resp_rate_observed"),
    ("skin_temp_dev_c", "skin_temp_dev_c", "°C", "skin_temp_observed"),
    ("spo2_pct", "spo2_pct", "%", "spo2_observed"),
)

FEATURES: tuple[FeatureSpec, ...] = (
    # Physiology of the morning of day d.
    FeatureSpec("ln_hrv", "ln(ms)", "ln(hrv_rmssd_ms) of day d", _PHYS_FILL, "robust"),
    *(FeatureSpec(name, unit, f"{col} of day d" + (
        "; if the device gives none: skin_temp_c − the athlete's median skin_temp_c over the "
        "skin_temp_median_days before d (at least 3 nights)" if name == "skin_temp_dev_c" else ""),
        _PHYS_FILL, "robust") for name, col, unit, _ in _SIGNALS[1:]),
    *(FeatureSpec(ind, "0/1", f"1 when {col} (or skin_temp_c, for skin temperature) was measured "
                  f"on day d itself", "never missing", "none") for _, col, _, ind in _SIGNALS),
    # Training load: days < d only.
    FeatureSpec("atl_trimp", "TRIMP/day",
                "acute load: EWMA of load_trimp over days < d, time constant atl_days (7), "
                "α = 1 − exp(−1/τ), normalised by the weight of the known days (`ewma_known`)",
                "POPULATION_REFERENCE when no load was ever known", "standard"),
    FeatureSpec("ctl_trimp", "TRIMP/day", "chronic load: as atl_trimp with ctl_days (42)",
                "POPULATION_REFERENCE when no load was ever known", "standard"),
    FeatureSpec("tsb_trimp", "TRIMP/day", "training stress balance: ctl_trimp − atl_trimp",
                "0 when no load was ever known", "standard"),
    FeatureSpec("load_yesterday_trimp", "TRIMP", "load_trimp of day d − 1",
                "atl_trimp (the EWMA's estimate) when unknown", "standard"),
    FeatureSpec("strain_yesterday", "WHOOP strain 0-21", "strain of day d − 1",
                "POPULATION_REFERENCE when unknown (non-WHOOP sources)", "standard"),
    FeatureSpec("z45_min_7d", "min", "z4_min + z5_min summed over days d−7..d−1; the known "
                "days' sum × 7 / known days when some are missing",
                "POPULATION_REFERENCE when no day of the window is known", "standard"),
    FeatureSpec("strength_min_7d", "min", "strength_min over days d−7..d−1, rescaled as "
                "z45_min_7d", "POPULATION_REFERENCE when no day of the window is known",
                "standard"),
    FeatureSpec("load_known_share", "0-1", "EWMA (ctl_days, started at 0) of the indicator "
                "'load_trimp known' over days < d: the weight behind ctl_trimp",
                "never missing", "none"),
    # Context.
    FeatureSpec("dow_sin", "-1..1", "sin(2π·weekday/7), Monday = 0", "never missing", "none"),
    FeatureSpec("dow_cos", "-1..1", "cos(2π·weekday/7)", "never missing", "none"),
    FeatureSpec("days_since_rest", "days", "d − the last day k < d that was a rest day "
                "(load_trimp ≤ rest_max_trimp or session = rest); the day before the history "
                "counts as rest; capped at days_since_rest_cap (28). A day of unknown load is not "
                "a rest day", "never missing", "standard"),
    FeatureSpec("days_to_event", "days", "days from d to the next planned event (≥ 0), capped "
                "at days_to_event_cap (180)", "days_to_event_cap when no event is planned",
                "standard"),
    FeatureSpec("injury", "0/1", "injury of day d", "last report within ffill_limit_days, else 0",
                "none"),
    FeatureSpec("cycle_sin", "-1..1", "sin(2π·(cycle_day − 1)/cycle_length_days) of day d",
                "0 when the cycle day is unknown", "none"),
    FeatureSpec("cycle_cos", "-1..1", "cos(2π·(cycle_day − 1)/cycle_length_days)",
                "0 when the cycle day is unknown", "none"),
    FeatureSpec("cycle_observed", "0/1", "1 when the cycle day of day d is known",
                "never missing", "none"),
    FeatureSpec("age_years", "years", "age, latest value on or before d",
                "POPULATION_REFERENCE", "standard"),
    FeatureSpec("sex", "+1/−1", "+1 female, −1 male, latest value on or before d",
                "0 when unknown", "none"),
    FeatureSpec("rhr_baseline_bpm", "bpm", "baseline fitness proxy: mean rhr_bpm over the "
                "baseline_days (28) before d (resting HR falls as aerobic fitness rises)",
                "the filled rhr_bpm of day d when fewer than min_baseline_days are known",
                "robust"),
    # Temporal.
    FeatureSpec("ln_hrv_slope_7d", "ln(ms)/day", "least-squares slope of ln HRV over days "
                "d−6..d (observed days only, at least min_trend_days)", "0", "robust"),
    FeatureSpec("rhr_slope_7d", "bpm/day", "as ln_hrv_slope_7d for rhr_bpm", "0", "robust"),
    FeatureSpec("sleep_slope_7d", "min/day", "as ln_hrv_slope_7d for sleep_min", "0", "robust"),
    FeatureSpec("ln_hrv_sd_7d", "ln(ms)", "sample SD of ln HRV over days d−6..d (at least "
                "min_trend_days observed)", "POPULATION_REFERENCE", "robust"),
    FeatureSpec("ln_hrv_z_28d", "SD", "(ln_hrv − ln_hrv_baseline_28d) / ln_hrv_baseline_sd_28d, "
                "clipped to ±z_clip", "0 when the baseline is not established", "none"),
    FeatureSpec("rhr_z_28d", "SD", "as ln_hrv_z_28d for rhr_bpm (28-day baseline before d)",
                "0 when the baseline is not established", "none"),
    FeatureSpec("ln_hrv_baseline_28d", "ln(ms)", "mean ln HRV over the baseline_days (28) before d "
                "(excluding d; at least min_baseline_days observed). The safety rule 'HRV < "
                "baseline − 2 SD' reads ln_hrv < ln_hrv_baseline_28d − 2·ln_hrv_baseline_sd_28d",
                "ln_hrv of day d (so the rule cannot fire) when not established", "robust"),
    FeatureSpec("ln_hrv_baseline_sd_28d", "ln(ms)", "sample SD of ln HRV over the same window, "
                "at least sd_floor_ln_hrv", "POPULATION_REFERENCE when not established", "robust"),
    FeatureSpec("recovery_x_days_since_rest", "days", "recovery_pct / 100 × days_since_rest "
                "(seed §5.2 interaction term)", "uses the filled recovery_pct", "standard"),
)
"""Every feature, in observation-vector order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
"""Names of the observation vector's entries, in order."""

POPULATION_REFERENCE: Mapping[str, float] = {
    # Near the medians of the 17 real WHOOP users shipped in data/real (4,488 nights): ln RMSSD
    # 4.29 (73 ms), RHR 53, sleep 419 min, efficiency 91 %, REM 22 %, deep 21 %, recovery 59 %,
    # respiratory rate 14.5, SpO2 96 %, day strain 12.4. HRV and RHR are set towards general
    # adult values (RMSSD ~60 ms, RHR ~58 bpm; Nunan et al. 2010) since WHOOP users skew fit.
    "ln_hrv": float(np.log(60.0)),
    "rhr_bpm": 58.0,
    "sleep_min": 420.0,
    "sleep_efficiency_pct": 90.0,
    "rem_pct": 22.0,
    "deep_pct": 20.0,
    "recovery_pct": 60.0,
    "resp_rate_rpm": 15.0,
    "skin_temp_dev_c": 0.0,
    "spo2_pct": 96.0,
    # A moderately active adult: ~45 min a day, mostly zone 2 (≈ 90 Edwards TRIMP).
    "load_trimp": 90.0,
    "strain_yesterday": 12.0,
    "z45_min_7d": 30.0,
    "strength_min_7d": 30.0,
    "age_years": 35.0,
    # Night-to-night SD of ln RMSSD within a week: the real WHOOP users' median is 0.18-0.22.
    "ln_hrv_sd": 0.2,
}
"""Population-neutral fills, in each feature's unit (see the module docstring)."""


@dataclass(frozen=True)
class FeatureConfig:
    """Windows, thresholds and fills of the feature builder."""

    atl_days: float = 7.0
    """Time constant τ of the acute load EWMA (Banister 1975; TrainingPeaks' ATL), days."""
    ctl_days: float = 42.0
    """Time constant τ of the chronic load EWMA (TrainingPeaks' CTL), days."""
    ffill_limit_days: int = 2
    """A physiological value is carried forward at most this many days ("gaps shorter than 3
    days", seed §5.2); older values give way to the trailing baseline."""
    baseline_days: int = 28
    """Length of the trailing baseline window (days before d, d excluded)."""
    min_baseline_days: int = 7
    """Observed days a baseline needs before its SD and z-scores are used."""
    trend_days: int = 7
    """Window of slopes and of ln_hrv_sd_7d (days d−trend_days+1..d)."""
    min_trend_days: int = 3
    """Observed days a slope or a 7-day SD needs."""
    load_window_days: int = 7
    """Window of z45_min_7d and strength_min_7d (days d−7..d−1)."""
    rest_max_trimp: float = 20.0
    """A day with load_trimp at or below this counts as a rest day (≈ 20 min of zone 1: a walk,
    not training)."""
    days_since_rest_cap: int = 28
    days_to_event_cap: int = 180
    """Also the value when no event is planned: a far event and no event look alike."""
    cycle_length_days: float = 28.0
    """Menstrual cycle length used for the cycle phase when the data give only the cycle day."""
    skin_temp_median_days: int = 28
    """Window of the trailing median that turns absolute skin temperature into a deviation."""
    z_clip: float = 5.0
    sd_floor_ln_hrv: float = 0.02
    """Lower bound of the ln HRV baseline SD, so a flat baseline cannot blow up the z-score."""
    sd_floor_rhr_bpm: float = 0.5
    reference: Mapping[str, float] = field(default_factory=lambda: dict(POPULATION_REFERENCE))
    """Population-neutral fills (see `POPULATION_REFERENCE` for the keys)."""

    def __post_init__(self) -> None:
        for what in ("baseline_days", "trend_days", "load_window_days",
                     "skin_temp_median_days", "min_baseline_days", "min_trend_days"):
            value = getattr(self, what)
            if int(value) != value or value < 1:
                raise ValueError(f"FeatureConfig.{what} must be a positive whole number, "
                                 f"got {value}")
        if self.min_baseline_days < 2:
            raise ValueError("FeatureConfig.min_baseline_days must be at least 2 (a baseline's "
                             f"SD needs two observed days), got {self.min_baseline_days}")
        if not (self.atl_days > 0 and self.ctl_days > 0):
            raise ValueError(f"FeatureConfig.atl_days and ctl_days must be positive, got "
                             f"{self.atl_days}, {self.ctl_days}")


INPUT_COLUMNS: tuple[str, ...] = (
    "hrv_rmssd_ms", "rhr_bpm", "sleep_min", "sleep_efficiency_pct", "rem_pct", "deep_pct",
    "recovery_pct", "resp_rate_rpm", "skin_temp_dev_c", "skin_temp_c", "spo2_pct",
    "load_trimp", "strain", "z4_min", "z5_min", "strength_min", "injury",
)
"""Daily-table columns `compute_features` reads (each `(n_athletes, n_days)`, NaN = missing).
Absent columns count as missing everywhere."""


# ---------------------------------------------------------------------------------------------
# Array helpers, all over arrays shaped (n_athletes, n_days), vectorised across athletes.


def _window_sums(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """For each day d, the sum of `x` over days d+lo..d+hi (lo ≤ hi ≤ 0), clipped at day 0.

    Uses a prefix sum, so the value on day d depends on x[:, :d+hi+1] only (the causality the
    tests check).
    """
    n_days = x.shape[1]
    prefix = np.zeros((x.shape[0], n_days + 1))
    np.cumsum(x, axis=1, out=prefix[:, 1:])
    d = np.arange(n_days)
    end = np.clip(d + hi + 1, 0, n_days)
    start = np.clip(d + lo, 0, n_days)
    start = np.minimum(start, end)
    return prefix[:, end] - prefix[:, start]


def _trailing_stats(y: np.ndarray, lo: int, hi: int, centre: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sample variance) of the finite values of `y` over days d+lo..d+hi.

    Values are centred on `centre` before summing to keep the variance free of cancellation.
    Mean is NaN where count = 0, variance NaN where count < 2.
    """
    known = np.isfinite(y)
    z = np.where(known, y - centre, 0.0)
    n = _window_sums(known.astype(float), lo, hi)
    s1 = _window_sums(z, lo, hi)
    s2 = _window_sums(z * z, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / n, np.nan)
        var = np.where(n > 1, (s2 - s1 * s1 / n) / (n - 1), np.nan)
    return n, mean + centre, np.maximum(var, 0.0)


def _trailing_slope(y: np.ndarray, window: int, min_count: int, centre: float) -> np.ndarray:
    """Least-squares slope per day of the finite values of `y` over days d−window+1..d; 0 where
    fewer than `min_count` are known. A short loop over the lags keeps every day's value a
    function of that day's window only (no prefix sums over the whole history)."""
    n = np.zeros(y.shape)
    sx = np.zeros(y.shape)
    sy = np.zeros(y.shape)
    sxy = np.zeros(y.shape)
    sxx = np.zeros(y.shape)
    for lag in range(window):
        v = _shift(y, lag) - centre
        known = np.isfinite(v)
        v = np.where(known, v, 0.0)
        x = -float(lag) * known
        n += known
        sx += x
        sy += v
        sxy += x * v
        sxx += x * x
    with np.errstate(invalid="ignore", divide="ignore"):
        den = sxx - sx * sx / n
        slope = (sxy - sx * sy / n) / den
    ok = (n >= max(min_count, 2)) & (den > 1e-9)
    return np.where(ok, slope, 0.0)


def _last_known(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each day d, (the last finite value of y on a day ≤ d, its age in days); NaN and a
    huge age where none is known yet."""
    n_days = y.shape[1]
    known = np.isfinite(y)
    idx = np.where(known, np.arange(n_days), -1)
    last = np.maximum.accumulate(idx, axis=1)
    value = np.take_along_axis(y, np.maximum(last, 0), axis=1)
    value = np.where(last >= 0, value, np.nan)
    age = np.where(last >= 0, np.arange(n_days) - last, np.iinfo(np.int64).max)
    return value, age


def _shift(x: np.ndarray, days: int = 1) -> np.ndarray:
    """x of day d − days on day d (NaN before the start)."""
    if days == 0:
        return x
    out = np.full(x.shape, np.nan)
    out[:, days:] = x[:, :-days]
    return out


def ewma_known(load: np.ndarray, tau_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially weighted mean of the known loads of the days before each day.

    Recursion along the day axis (vectorised across athletes), with α = 1 − exp(−1/τ) as in
    Banister's impulse response (Banister 1975; the same decay GoldenCheetah's PMC uses):

        S_{d+1} = (1 − α)·S_d + α·m_d·L_d,   W_{d+1} = (1 − α)·W_d + α·m_d,   S_0 = W_0 = 0,

    where m_d = 1 when L_d is known. Returns (E, W) with E_d = S_d / W_d (NaN while W_d = 0):
    the mean of the loads of days < d, day k weighted (1 − α)^(d−1−k), over known days only.
    With a complete history E_d equals the usual zero-started EWMA divided by 1 − (1 − α)^d
    (the bias correction of Kingma & Ba 2015), so it does not start at 0 for a new athlete and
    agrees with the usual ATL/CTL once the history is a few τ long; a missing day leaves E
    unchanged (it neither counts as rest nor as a typical day) and lowers W, the share of the
    recent load that is known.

    Shapes: load (n_athletes, n_days) → E, W (n_athletes, n_days).
    """
    if tau_days <= 0:
        raise ValueError(f"tau_days must be positive, got {tau_days}")
    load = np.asarray(load, dtype=float)
    decay = float(np.exp(-1.0 / tau_days))
    alpha = 1.0 - decay
    known = np.isfinite(load)
    x = np.where(known, load, 0.0)
    m = known.astype(float)
    s = np.zeros(load.shape[0])
    w = np.zeros(load.shape[0])
    s_out = np.empty(load.shape)
    w_out = np.empty(load.shape)
    for d in range(load.shape[1]):
        s_out[:, d] = s
        w_out[:, d] = w
        s = decay * s + alpha * x[:, d]
        w = decay * w + alpha * m[:, d]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(w_out > 0, s_out / w_out, np.nan)
    return mean, w_out


def _trailing_median(y: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """Median of the finite values of y over the `window` days before d (d excluded); NaN where
    fewer than `min_count` are known."""
    n_athletes, n_days = y.shape
    padded = np.concatenate([np.full((n_athletes, window), np.nan), y], axis=1)
    # stack[..., j] = y of day d − window + j, for j = 0..window−1 (days before d).
    stack = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)[:, :n_days]
    stack = np.sort(stack, axis=-1)  # NaN sorts last
    count = np.isfinite(stack).sum(axis=-1)
    lo = np.take_along_axis(stack, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(stack, np.maximum(count // 2, 0)[..., None], axis=-1)[..., 0]
    return np.where(count >= min_count, (lo + hi) / 2.0, np.nan)


def _as_2d(x: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if x is None:
        return np.full(shape, np.nan)
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = np.broadcast_to(a[:, None], shape)
    if a.shape != shape:
        raise ValueError(f"expected shape {shape} (or ({shape[0]},)), got {a.shape}")
    return a


def weekdays(dates: np.ndarray) -> np.ndarray:
    """0 = Monday … 6 = Sunday of datetime64 dates, any shape (1970-01-01 was a Thursday)."""
    return (np.asarray(dates, dtype="datetime64[D]").astype(np.int64) + 3) % 7


def compute_features(
    signals: Mapping[str, np.ndarray],
    weekday: np.ndarray,
    *,
    age_years: np.ndarray | None = None,
    sex: np.ndarray | None = None,
    rest_session: np.ndarray | None = None,
    days_to_event: np.ndarray | None = None,
    cycle_day: np.ndarray | None = None,
    config: FeatureConfig = FeatureConfig(),
) -> np.ndarray:
    """The observation of every athlete on every day: array `(n_athletes, n_days, n_features)`.

    Arguments (all `(n_athletes, n_days)` over a continuous daily calendar, NaN = missing; day 0
    is each athlete's first day, and padding after an athlete's last day does not affect the
    days before it):

    - `signals`: daily-table columns by name (see `INPUT_COLUMNS`; absent = all missing; other
      keys are an error, so that a misspelt column cannot vanish silently);
    - `weekday`: 0 = Monday … 6 = Sunday;
    - `age_years`, `sex` (+1 female, −1 male, NaN unknown): `(n_athletes,)` or per day;
    - `rest_session`: 1 where the day's session was labelled rest (counts as a rest day);
    - `days_to_event`: days from each day to the next planned event (NaN or < 0: none);
    - `cycle_day`: day of the menstrual cycle (1 = first day of menses), NaN unknown.

    Feature order is `FEATURE_NAMES`; every value is finite.
    """
    unknown = set(signals) - set(INPUT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown signal columns {sorted(unknown)}; expected some of "
                         f"{INPUT_COLUMNS}")
    weekday = np.asarray(weekday)
    if weekday.ndim != 2:
        raise ValueError(f"weekday must be (n_athletes, n_days), got shape {weekday.shape}")
    shape = weekday.shape
    cfg = config
    ref = cfg.reference
    col = {name: _as_2d(signals.get(name), shape) for name in INPUT_COLUMNS}
    out: dict[str, np.ndarray] = {}

    # --- Physiology of the morning of d, with causal fills and observed indicators.
    hrv = col["hrv_rmssd_ms"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ln_hrv = np.where(hrv > 0, np.log(np.where(hrv > 0, hrv, 1.0)), np.nan)
    skin_dev = col["skin_temp_dev_c"]
    if np.isfinite(col["skin_temp_c"]).any():
        med = _trailing_median(col["skin_temp_c"], cfg.skin_temp_median_days, 3)
        skin_dev = np.where(np.isfinite(skin_dev), skin_dev, col["skin_temp_c"] - med)
    raw = {
        "ln_hrv": ln_hrv, "rhr_bpm": col["rhr_bpm"], "sleep_min": col["sleep_min"],
        "sleep_efficiency_pct": col["sleep_efficiency_pct"], "rem_pct": col["rem_pct"],
        "deep_pct": col["deep_pct"], "recovery_pct": col["recovery_pct"],
        "resp_rate_rpm": col["resp_rate_rpm"], "skin_temp_dev_c": skin_dev,
        "spo2_pct": col["spo2_pct"],
    }
    base_lo, base_hi = -cfg.baseline_days, -1
    stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, _, _, indicator in _SIGNALS:
        y = raw[name]
        stats[name] = _trailing_stats(y, base_lo, base_hi, ref[name])
        last, age = _last_known(y)
        filled = np.where(age <= cfg.ffill_limit_days, last, np.nan)
        filled = np.where(np.isnan(filled), stats[name][1], filled)
        out[name] = np.where(np.isnan(filled), ref[name], filled)
        out[indicator] = np.isfinite(y).astype(float)

    # --- Training load of the days before d.
    load = col["load_trimp"]
    atl, _ = ewma_known(load, cfg.atl_days)
    ctl, ctl_weight = ewma_known(load, cfg.ctl_days)
    out["atl_trimp"] = np.where(np.isnan(atl), ref["load_trimp"], atl)
    out["ctl_trimp"] = np.where(np.isnan(ctl), ref["load_trimp"], ctl)
    out["tsb_trimp"] = out["ctl_trimp"] - out["atl_trimp"]
    yesterday = _shift(load)
    out["load_yesterday_trimp"] = np.where(np.isfinite(yesterday), yesterday, out["atl_trimp"])
    strain_y = _shift(col["strain"])
    out["strain_yesterday"] = np.where(np.isfinite(strain_y), strain_y, ref["strain_yesterday"])
    z45 = np.where(np.isfinite(col["z4_min"]) | np.isfinite(col["z5_min"]),
                   np.nan_to_num(col["z4_min"]) + np.nan_to_num(col["z5_min"]), np.nan)
    w = cfg.load_window_days
    for name, daily in (("z45_min_7d", z45), ("strength_min_7d", col["strength_min"])):
        n, mean, _ = _trailing_stats(daily, -w, -1, 0.0)
        out[name] = np.where(n > 0, mean * w, ref[name])
    out["load_known_share"] = ctl_weight

    # --- Context.
    angle = 2.0 * np.pi * weekday.astype(float) / 7.0
    out["dow_sin"], out["dow_cos"] = np.sin(angle), np.cos(angle)
    rest = np.isfinite(load) & (np.where(np.isfinite(load), load, np.inf) <= cfg.rest_max_trimp)
    if rest_session is not None:
        rest |= _as_2d(rest_session, shape) == 1
    days = np.arange(shape[1])
    last_rest = np.maximum.accumulate(np.where(rest, days, -1), axis=1)
    last_rest_before = np.concatenate([np.full((shape[0], 1), -1), last_rest[:, :-1]], axis=1)
    days_since_rest = np.minimum(days - last_rest_before, cfg.days_since_rest_cap).astype(float)
    out["days_since_rest"] = days_since_rest
    dte = _as_2d(days_to_event, shape)
    dte = np.where(np.isfinite(dte) & (dte >= 0), dte, cfg.days_to_event_cap)
    out["days_to_event"] = np.minimum(dte, cfg.days_to_event_cap)
    injury, injury_age = _last_known(col["injury"])
    out["injury"] = np.where(injury_age <= cfg.ffill_limit_days, (injury > 0).astype(float), 0.0)
    cyc = _as_2d(cycle_day, shape)
    known_cycle = np.isfinite(cyc)
    phase = 2.0 * np.pi * (np.where(known_cycle, cyc, 1.0) - 1.0) / cfg.cycle_length_days
    out["cycle_sin"] = np.where(known_cycle, np.sin(phase), 0.0)
    out["cycle_cos"] = np.where(known_cycle, np.cos(phase), 0.0)
    out["cycle_observed"] = known_cycle.astype(float)
    age_last, _ = _last_known(np.array(_as_2d(age_years, shape)))
    out["age_years"] = np.where(np.isfinite(age_last), age_last, ref["age_years"])
    sex_last, _ = _last_known(np.array(_as_2d(sex, shape)))
    out["sex"] = np.where(np.isfinite(sex_last), np.sign(sex_last), 0.0)

    # --- Baselines, trends, variability (observed values only, never the fills).
    def baseline(name: str, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, mean, var = stats[name]
        ok = n >= cfg.min_baseline_days
        sd = np.maximum(np.sqrt(np.where(ok, var, 0.0)), floor)
        with np.errstate(invalid="ignore"):
            z = np.clip((out[name] - mean) / sd, -cfg.z_clip, cfg.z_clip)
        return ok, np.where(ok, mean, out[name]), np.where(ok, z, 0.0)

    hrv_ok, hrv_base, out["ln_hrv_z_28d"] = baseline("ln_hrv", cfg.sd_floor_ln_hrv)
    _, rhr_base, out["rhr_z_28d"] = baseline("rhr_bpm", cfg.sd_floor_rhr_bpm)
    out["rhr_baseline_bpm"] = rhr_base
    out["ln_hrv_baseline_28d"] = hrv_base
    hrv_sd = np.sqrt(stats["ln_hrv"][2])
    out["ln_hrv_baseline_sd_28d"] = np.where(
        hrv_ok, np.maximum(np.nan_to_num(hrv_sd), cfg.sd_floor_ln_hrv), ref["ln_hrv_sd"])
    t = cfg.trend_days
    for slope_name, name in (("ln_hrv_slope_7d", "ln_hrv"), ("rhr_slope_7d", "rhr_bpm"),
                             ("sleep_slope_7d", "sleep_min")):
        out[slope_name] = _trailing_slope(raw[name], t, cfg.min_trend_days, ref[name])
    n7, _, var7 = _trailing_stats(ln_hrv, -(t - 1), 0, ref["ln_hrv"])
    out["ln_hrv_sd_7d"] = np.where(n7 >= cfg.min_trend_days, np.sqrt(np.nan_to_num(var7)),
                                   ref["ln_hrv_sd"])
    out["recovery_x_days_since_rest"] = out["recovery_pct"] / 100.0 * days_since_rest

    # Stacked feature-major (fast, contiguous writes) and returned as a (athlete, day, feature)
    # view.
    result = np.moveaxis(np.stack([out[name] for name in FEATURE_NAMES], axis=0), 0, -1)
    if not np.isfinite(result).all():  # a bug, not a data problem: every fill is finite
        bad = [n for i, n in enumerate(FEATURE_NAMES) if not np.isfinite(result[..., i]).all()]
        raise RuntimeError(f"non-finite features {bad}")
    return result


# ---------------------------------------------------------------------------------------------
# The daily-table front end.

_SEX_CODE = {"female": 1.0, "male": -1.0}


def build_features(
    frame: pd.DataFrame,
    *,
    events: Mapping[str, Sequence[object]] | None = None,
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """Features of every athlete on every day of their history, as a frame.

    `frame` is a daily table (`DailyTable.frame` or any frame with `user_id`, `date` and some of
    `INPUT_COLUMNS`, plus optional `age`, `sex`, `session`, and two optional planning columns:
    `days_to_event` and `cycle_day`). Each athlete is first reindexed to a continuous daily
    calendar from their first to their last date: days absent from the table become days with
    every input missing, so that EWMAs decay and windows count in calendar days. The result has
    one row per (user_id, calendar day), sorted, with columns `user_id`, `date` and then
    `FEATURE_NAMES`; rows the input lacked are included (their `*_observed` indicators are 0).

    `events` maps user_id → planned event dates (e.g. races); `days_to_event` counts to the next
    one on or after each day. Give events either here or as a `days_to_event` column, not both.
    The input frame is not modified.
    """
    for key in ("user_id", "date"):
        if key not in frame.columns:
            raise ValueError(f"the frame has no {key!r} column")
    if events is not None and "days_to_event" in frame.columns:
        raise ValueError("give planned events either as `events` or as a `days_to_event` "
                         "column, not both")
    columns = ["user_id", "date"] + list(FEATURE_NAMES)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).astype(
            {"user_id": "object", "date": "datetime64[ns]"})
    user = frame["user_id"].astype(str).to_numpy()
    date = pd.to_datetime(frame["date"]).dt.normalize().to_numpy(dtype="datetime64[D]")
    keys = pd.DataFrame({"u": user, "d": date})
    if keys.duplicated().any():
        first = keys[keys.duplicated()].iloc[0]
        raise ValueError(f"duplicate (user_id, date) rows, e.g. {first['u']} on {first['d']}")
    users, code = np.unique(user, return_inverse=True)
    n_athletes = len(users)
    start = np.full(n_athletes, np.datetime64("9999-12-31", "D"))
    end = np.full(n_athletes, np.datetime64("0001-01-01", "D"))
    np.minimum.at(start, code, date)
    np.maximum.at(end, code, date)
    day = (date - start[code]).astype(int)
    length = (end - start).astype(int) + 1
    shape = (n_athletes, int(length.max()))

    def to_grid(values: np.ndarray) -> np.ndarray:
        grid = np.full(shape, np.nan)
        grid[code, day] = values
        return grid

    signals = {c: to_grid(pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float))
               for c in INPUT_COLUMNS if c in frame.columns}
    calendar = start[:, None] + np.arange(shape[1])
    weekday = weekdays(calendar)
    optional: dict[str, np.ndarray | None] = {}
    if "age" in frame.columns:
        optional["age_years"] = to_grid(pd.to_numeric(frame["age"], errors="coerce")
                                        .to_numpy(dtype=float))
    if "sex" in frame.columns:
        optional["sex"] = to_grid(frame["sex"].map(_SEX_CODE).to_numpy(dtype=float))
    if "session" in frame.columns:
        optional["rest_session"] = to_grid((frame["session"] == "rest").to_numpy(dtype=float))
    if "cycle_day" in frame.columns:
        optional["cycle_day"] = to_grid(pd.to_numeric(frame["cycle_day"], errors="coerce")
                                        .to_numpy(dtype=float))
    if "days_to_event" in frame.columns:
        optional["days_to_event"] = to_grid(pd.to_numeric(frame["days_to_event"],
                                                          errors="coerce").to_numpy(dtype=float))
    elif events:
        optional["days_to_event"] = _days_to_events(users, calendar, events)
    features = compute_features(signals, weekday, config=config, **optional)

    valid = np.arange(shape[1])[None, :] < length[:, None]
    rows = np.nonzero(valid)
    result = pd.DataFrame(features[rows], columns=list(FEATURE_NAMES))
    result.insert(0, "date", calendar[rows].astype("datetime64[ns]"))
    result.insert(0, "user_id", users[rows[0]].astype(object))
    return result


def _days_to_events(users: np.ndarray, calendar: np.ndarray,
                    events: Mapping[str, Sequence[object]]) -> np.ndarray:
    """Days from each calendar day to the next event of that user on or after it (NaN: none)."""
    out = np.full(calendar.shape, np.nan)
    for i, uid in enumerate(users):
        dates = events.get(str(uid))
        if not dates:
            continue
        ev = np.sort(pd.to_datetime(list(dates)).normalize().to_numpy(dtype="datetime64[D]"))
        nxt = np.searchsorted(ev, calendar[i], side="left")
        has = nxt < len(ev)
        out[i, has] = (ev[nxt[has]] - calendar[i, has]).astype(int)
    return out
