"""Forecasting morning physiology: one protocol, and the baselines the world model must beat.

The evaluation (`analysis.forecast_eval`, `periodize model evaluate`) scores any object that
follows `Forecaster`: the world model and every baseline here alike (STYLE: accept a protocol,
not a class).

Timing (the one thing every forecaster must respect)
----------------------------------------------------
`frame` is one athlete's calendar-filled canonical rows (sorted, one row per day), and an
origin d0 is an integer row position. A forecast made at d0 knows every row < d0 completely
(physiology and load) and the loads actually trained on days d0 .. d0+h−2, and it predicts the
morning physiology of rows d0 .. d0+h−1. So step k = 1..h of the returned arrays is the morning
of row d0+k−1, "horizon h" is its last step, and h = 1 is tomorrow morning given today's
training (rows < d0 include today, d0−1). Nothing else of the frame may be read:
`tests/test_forecast.py` perturbs the physiology of rows ≥ d0 and the loads of rows ≥ d0+h−1
and requires identical forecasts.

Targets, in the units they are scored in: `hrv` = ln RMSSD (ln ms), `rhr` = resting heart rate
(bpm), `recovery` = the device's recovery score (%). Loads follow `params.py`:
w = load_trimp / 100 and u = (z4_min + z5_min + strength_min) / 60.

Missing loads. A day of unknown load inside the frame is filled as everywhere in the project
(`arrays.fill_missing_loads`, the same fill as the world model's fit and forecasts): with the
median of the athlete's known w (and u) before that day, so later loads never leak into a
forecast; before the athlete's first known load, with the median known load of the
conditioning rows (the population median of the training rows when the athlete has none, and
`features.POPULATION_REFERENCE["load_trimp"]` when nobody has any).

The baselines
-------------
All four are Gaussian: besides `forecast` (samples) their athlete forecasters have
`forecast_gaussian` (means and SDs), which the evaluation uses for the closed-form CRPS. None
clips recovery to 0-100: the predictive distributions are exactly the stated Gaussians.

- `PersistenceForecaster`: tomorrow looks like the last observation; spread from a random walk.
- `RollingMeanForecaster`: the mean of the last 7 days, spread from their SD.
- `BanisterLeastSquaresForecaster`: Banister fitness-fatigue with fixed τ (42/7 as TrainingPeaks'
  PMC, 50/11 as GoldenCheetah's Banister model), gains and baseline fitted per athlete by
  Levenberg-Marquardt.
- `RidgeFeatureForecaster`: ridge regression on the policy's features, one model per target and
  horizon, fitted on all training athletes (Imbach et al. 2022).
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from physiology_model.dynamics import banister
from physiology_model.dynamics.observation import TARGETS
from physiology_model.dynamics.params import LOAD_SCALE_TRIMP
from physiology_model.features.batch import FEATURE_NAMES, POPULATION_REFERENCE, build_features
from physiology_model.features.preprocess import fill_calendar
from physiology_model.model.arrays import daily_loads, fill_missing_loads

TARGET_UNITS: dict[str, str] = {"hrv": "ln ms", "rhr": "bpm", "recovery": "%"}

TARGET_SOURCE_COLUMNS: dict[str, str] = {
    "hrv": "hrv_rmssd_ms", "rhr": "rhr_bpm", "recovery": "recovery_pct"}
"""The daily-table column behind each target (`hrv` is its natural log)."""

DEFAULT_TARGET_SD: dict[str, float] = {"hrv": 0.45, "rhr": 7.0, "recovery": 20.0}
"""Last-resort spread when no training athlete observed a target: the between-adult SD of ln
RMSSD (~0.4-0.5, Nunan et al. 2010, Pacing Clin Electrophysiol 33:1407), of resting HR (~7 bpm)
and of WHOOP recovery (~20 %, the shipped exports)."""

DEFAULT_TARGET_MEAN: dict[str, float] = {
    "hrv": POPULATION_REFERENCE["ln_hrv"], "rhr": POPULATION_REFERENCE["rhr_bpm"],
    "recovery": POPULATION_REFERENCE["recovery_pct"]}
"""Last-resort centre when no training athlete observed a target (the feature builder's)."""

MIN_COUNT = 3
"""Observations (or day-to-day pairs) an athlete needs before its own SD replaces the
population's."""

SD_FLOOR = 1e-6
"""Lower bound of every predictive SD, so that a constant series cannot give a zero SD."""


# ---------------------------------------------------------------------------------------------
# The protocol.


class AthleteForecaster(Protocol):
    """A forecaster personalised to one athlete (made by `Forecaster.condition`)."""

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int, n_samples: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Predictive samples of the mornings of rows d0 .. d0+horizon−1 for each origin d0.

        `frame`: the athlete's full calendar-filled canonical rows (sorted, one per day);
        `origins`: integer row positions (≥ 1, with d0+horizon−1 < len(frame)). Uses only the
        physiology of rows < d0 and the loads of rows < d0+horizon−1. Returns
        {"hrv": ln ms, "rhr": bpm, "recovery": %}, each shaped (n_origins, n_samples, horizon).
        """
        ...


@runtime_checkable
class GaussianAthleteForecaster(AthleteForecaster, Protocol):
    """An athlete forecaster whose predictive distributions are Gaussian, given in closed form
    (the evaluation then scores it with the exact Gaussian CRPS instead of samples)."""

    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{target: (mean, sd)}, each (n_origins, horizon), same timing as `forecast`."""
        ...


class Forecaster(Protocol):
    """A forecasting method: fitted on training athletes, then conditioned on each athlete."""

    name: str

    def fit(self, train: pd.DataFrame) -> Forecaster:
        """Fit on the canonical frame of all training athletes' training rows; returns self."""
        ...

    def condition(self, athlete: pd.DataFrame) -> AthleteForecaster:
        """Personalise on one athlete's conditioning rows (calendar-filled, sorted; they are the
        first rows of the frame later passed to `forecast`)."""
        ...


# ---------------------------------------------------------------------------------------------
# Shared helpers.


def target_values(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The three targets per row of `frame` (NaN = not observed): ln ms, bpm, %."""
    out = {}
    for target, column in TARGET_SOURCE_COLUMNS.items():
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        else:
            values = np.full(len(frame), np.nan)
        if target == "hrv":
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(values > 0, np.log(values), np.nan)
        out[target] = values
    return out


def _median_or(values: np.ndarray, fallback: float) -> float:
    known = values[np.isfinite(values)]
    return float(np.median(known)) if known.size else float(fallback)


def _day_step_rms(y: np.ndarray) -> tuple[float, int]:
    """Root mean square of y_t − y_{t−1} over consecutive rows both observed, and their count."""
    diffs = np.diff(y)
    diffs = diffs[np.isfinite(diffs)]
    return (float(np.sqrt(np.mean(diffs ** 2))) if diffs.size else np.nan), int(diffs.size)


@dataclass(frozen=True)
class PopulationStats:
    """Pooled statistics of the training rows, the fallback for athletes with too little data."""

    mean: dict[str, float]
    """Mean of each target over all observed training rows (target units)."""
    sd: dict[str, float]
    """SD of each target over all observed training rows (between and within athletes)."""
    step_sd: dict[str, float]
    """Root mean square day-to-day change of each target, pooled over athletes."""
    load_w: float
    """Median known w (hundreds of TRIMP per day)."""
    load_u: float
    """Median known u (hours of zone 4-5 + strength per day)."""


def population_stats(train: pd.DataFrame) -> PopulationStats:
    """`PopulationStats` of a multi-athlete canonical frame (any row order)."""
    frame = train.sort_values(["user_id", "date"], kind="stable")
    targets = target_values(frame)
    users = frame["user_id"].to_numpy()
    same_user_next = users[1:] == users[:-1]
    consecutive = same_user_next & (np.diff(pd.to_datetime(frame["date"]).to_numpy())
                                    == np.timedelta64(1, "D"))
    mean, sd, step = {}, {}, {}
    for target, y in targets.items():
        known = y[np.isfinite(y)]
        mean[target] = float(known.mean()) if known.size else DEFAULT_TARGET_MEAN[target]
        sd[target] = float(known.std(ddof=1)) if known.size >= 2 else DEFAULT_TARGET_SD[target]
        diffs = np.diff(y)[consecutive]
        diffs = diffs[np.isfinite(diffs)]
        # Without pairs, a day-to-day change of about the whole spread is a safe (wide) guess.
        step[target] = (float(np.sqrt(np.mean(diffs ** 2))) if diffs.size >= MIN_COUNT
                        else sd[target])
    w, u = daily_loads(frame)
    return PopulationStats(mean, sd, step,
                           _median_or(w, POPULATION_REFERENCE["load_trimp"] / LOAD_SCALE_TRIMP),
                           _median_or(u, 0.0))


@dataclass(frozen=True)
class AthleteStats:
    """One athlete's conditioning-period statistics, with population fallbacks filled in."""

    mean: dict[str, float]
    """Mean of each target over the conditioning rows (population mean if none observed)."""
    sd: dict[str, float]
    """SD (ddof 1) of each target over the conditioning rows (population SD if < MIN_COUNT)."""
    step_sd: dict[str, float]
    """RMS day-to-day change of each target (population value if < MIN_COUNT pairs)."""
    load_w: float
    """Fill for w before the athlete's first known load: the median known w of the
    conditioning rows (`filled_loads`)."""
    load_u: float
    """The same for u."""
    mean_w: float
    """Mean of the filled w over the conditioning rows (sets the initial Banister state)."""


def athlete_stats(athlete: pd.DataFrame, population: PopulationStats) -> AthleteStats:
    """`AthleteStats` of one athlete's conditioning rows (calendar-filled, sorted)."""
    _check_athlete_frame(athlete)
    targets = target_values(athlete)
    mean, sd, step = {}, {}, {}
    for target, y in targets.items():
        known = y[np.isfinite(y)]
        mean[target] = float(known.mean()) if known.size else population.mean[target]
        sd[target] = (float(known.std(ddof=1)) if known.size >= MIN_COUNT
                      else population.sd[target])
        rms, pairs = _day_step_rms(y)
        step[target] = rms if pairs >= MIN_COUNT else population.step_sd[target]
    w, u = daily_loads(athlete)
    fill_w = _median_or(w, population.load_w)
    fill_u = _median_or(u, population.load_u)
    filled_w = fill_missing_loads(w, fill_w)
    return AthleteStats(mean, sd, step, fill_w, fill_u,
                        float(filled_w.mean()) if filled_w.size else fill_w)


def _check_athlete_frame(frame: pd.DataFrame) -> None:
    """One athlete, sorted, one row per consecutive calendar day; else ValueError."""
    if "user_id" in frame.columns and frame["user_id"].nunique() > 1:
        raise ValueError("a forecast frame holds one athlete; got "
                         f"{frame['user_id'].nunique()} user_ids")
    if "date" in frame.columns and len(frame) > 1:
        steps = np.diff(pd.to_datetime(frame["date"]).to_numpy())
        if not (steps == np.timedelta64(1, "D")).all():
            raise ValueError("a forecast frame must be calendar-filled and sorted (one row per "
                             "consecutive day): use preprocess.fill_calendar")


def check_origins(frame: pd.DataFrame, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Validate origins and horizon against `frame`; return the origins as an int array.

    Origins must be ≥ 1 (a forecast needs at least one known row) and d0+horizon−1 must be a
    row of the frame.
    """
    _check_athlete_frame(frame)
    d0 = np.asarray(origins)
    if d0.ndim != 1 or (d0.size and not np.issubdtype(d0.dtype, np.integer)):
        raise ValueError(f"origins must be a 1-d array of integer row positions, got {origins!r}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive number of days, got {horizon!r}")
    d0 = d0.astype(np.int64)
    if d0.size and (d0.min() < 1 or d0.max() + horizon - 1 >= len(frame)):
        raise ValueError(f"origins must lie in [1, {len(frame) - horizon}] for a frame of "
                         f"{len(frame)} rows and horizon {horizon}")
    return d0


def target_rows(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Row positions forecast at each step: (n_origins, horizon), step k → d0+k−1."""
    return origins[:, None] + np.arange(horizon)[None, :]


def filled_loads(frame: pd.DataFrame, stats: AthleteStats) -> tuple[np.ndarray, np.ndarray]:
    """(w, u) per row of `frame` (one athlete, calendar-filled) with unknown days filled as
    everywhere in the project (`arrays.fill_missing_loads`: the median of the athlete's known
    loads before that day); before any known load, the conditioning medians of `stats`."""
    w, u = daily_loads(frame)
    return fill_missing_loads(w, stats.load_w), fill_missing_loads(u, stats.load_u)


def sample_gaussian(mean: np.ndarray, sd: np.ndarray, n_samples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian draws per step: (n, h) mean and SD → (n, n_samples, h)."""
    noise = rng.standard_normal((mean.shape[0], n_samples, mean.shape[1]))
    return mean[:, None, :] + sd[:, None, :] * noise


class _GaussianAthlete(abc.ABC):
    """Samples from `forecast_gaussian`, independently per step (only the marginals are
    scored). Subclasses implement `forecast_gaussian`."""

    @abc.abstractmethod
    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per target, the (mean, sd) arrays shaped (n_origins, horizon)."""

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int, n_samples: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
        gaussian = self.forecast_gaussian(frame, origins, horizon)
        return {t: sample_gaussian(m, s, n_samples, rng) for t, (m, s) in gaussian.items()}


class _NotFittedMixin:
    def _check_fitted(self) -> None:
        if not hasattr(self, "population_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")


# ---------------------------------------------------------------------------------------------
# Persistence.


@dataclass(frozen=True)
class PersistenceAthlete(_GaussianAthlete):
    """Persistence for one athlete: the last observed value, spread as a random walk."""

    stats: AthleteStats

    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        d0 = check_origins(frame, origins, horizon)
        rows = target_rows(d0, horizon)
        out = {}
        for target, y in target_values(frame).items():
            index = np.where(np.isfinite(y), np.arange(len(y)), -1)
            last = np.maximum.accumulate(index)[d0 - 1] if d0.size else d0  # ≤ d0−1
            seen = last >= 0
            level = np.where(seen, y[np.maximum(last, 0)], self.stats.mean[target])
            mean = np.broadcast_to(level[:, None], rows.shape).astype(float)
            lag = rows - last[:, None]
            sd = np.where(seen[:, None], self.stats.step_sd[target] * np.sqrt(lag),
                          self.stats.sd[target])
            out[target] = (mean, np.maximum(sd, SD_FLOOR))
        return out

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int, n_samples: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random-walk sample paths: Gaussian increments whose variances make step k's marginal
        N(mean, sd_k²) exactly (sd_k is non-decreasing in k)."""
        out = {}
        for target, (mean, sd) in self.forecast_gaussian(frame, origins, horizon).items():
            variance = sd ** 2
            increment_sd = np.sqrt(np.diff(variance, axis=1, prepend=0.0).clip(min=0.0))
            noise = rng.standard_normal((mean.shape[0], n_samples, mean.shape[1]))
            out[target] = mean[:, None, :] + np.cumsum(increment_sd[:, None, :] * noise, axis=2)
        return out


class PersistenceForecaster(_NotFittedMixin):
    """Persistence: every future morning equals the last observed one.

    The naive forecast, the reference every forecast skill score starts from (Hyndman &
    Athanasopoulos, Forecasting: Principles and Practice, 3rd ed. 2021, §5.2 "naïve method").
    Predictive distribution: the target follows a random walk from its last observation at row
    L < d0, so step k (row d0+k−1) is N(y_L, σ_Δ²·(d0+k−1−L)), where σ_Δ is the root mean
    square of the athlete's day-to-day changes over the conditioning rows (the population's when
    the athlete has fewer than `MIN_COUNT` pairs). A random walk's variance grows without bound,
    while real HRV and RHR revert to the athlete's mean: the intervals are honest for short
    horizons and conservative for long ones. Without any earlier observation: the athlete's
    conditioning mean and SD.
    """

    name = "persistence"

    def fit(self, train: pd.DataFrame) -> PersistenceForecaster:
        self.population_ = population_stats(train)
        return self

    def condition(self, athlete: pd.DataFrame) -> PersistenceAthlete:
        self._check_fitted()
        return PersistenceAthlete(athlete_stats(athlete, self.population_))


# ---------------------------------------------------------------------------------------------
# Rolling mean.


@dataclass(frozen=True)
class RollingMeanAthlete(_GaussianAthlete):
    """The rolling mean for one athlete."""

    stats: AthleteStats
    window_days: int
    min_count: int

    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        d0 = check_origins(frame, origins, horizon)
        start = np.maximum(d0 - self.window_days, 0)
        out = {}
        for target, y in target_values(frame).items():
            known = np.isfinite(y)
            centred = np.where(known, y - self.stats.mean[target], 0.0)  # no cancellation
            prefix = [np.concatenate([[0.0], np.cumsum(v)])
                      for v in (known.astype(float), centred, centred ** 2)]
            n, s1, s2 = (p[d0] - p[start] for p in prefix)  # rows start .. d0−1
            with np.errstate(invalid="ignore", divide="ignore"):
                level = np.where(n > 0, s1 / n, 0.0) + self.stats.mean[target]
                var = np.where(n > 1, (s2 - s1 ** 2 / np.maximum(n, 1)) / (n - 1), np.nan)
            sd = np.where(n >= self.min_count, np.sqrt(np.maximum(var, 0.0)),
                          self.stats.sd[target])
            shape = (d0.size, horizon)
            out[target] = (np.broadcast_to(level[:, None], shape).astype(float),
                           np.broadcast_to(np.maximum(sd, SD_FLOOR)[:, None], shape).astype(float))
        return out


class RollingMeanForecaster(_NotFittedMixin):
    """The 7-day rolling mean, with intervals from the rolling SD.

    Every future morning is N(m, s²), where m and s are the mean and sample SD of the target's
    observations in the `window_days` rows before the origin (d0−7 .. d0−1). The 7-day rolling
    average is how HRV is monitored in practice (Plews et al. 2012, Eur J Appl Physiol
    112:3729; Plews et al. 2013, Sports Med 43:773: the weekly mean of ln RMSSD is more
    meaningful than single days). With no observation in the window the mean is the athlete's
    conditioning mean; with fewer than `min_count` the SD is the athlete's conditioning SD. The
    SD is the spread of single days, not the (smaller) uncertainty of the mean.
    """

    def __init__(self, window_days: int = 7, min_count: int = MIN_COUNT) -> None:
        self.window_days = window_days
        self.min_count = min_count
        self.name = f"rolling_mean_{window_days}d"

    def fit(self, train: pd.DataFrame) -> RollingMeanForecaster:
        if self.window_days < 1 or self.min_count < 2:
            raise ValueError("window_days must be ≥ 1 and min_count ≥ 2")
        self.population_ = population_stats(train)
        return self

    def condition(self, athlete: pd.DataFrame) -> RollingMeanAthlete:
        self._check_fitted()
        return RollingMeanAthlete(athlete_stats(athlete, self.population_), self.window_days,
                                  self.min_count)


# ---------------------------------------------------------------------------------------------
# Fixed-τ least-squares Banister.


@dataclass(frozen=True)
class FixedTauFit:
    """The fitted observation equation of one target: y = p0 + k_fit·G̃ − k_fat·H̃ + N(0, σ²)."""

    baseline: float
    """p0, in target units."""
    fitness_gain: float
    """k_fit, target units per 100 TRIMP/day of sustained load (EWMA-normalised state)."""
    fatigue_gain: float
    """k_fat, same units."""
    residual_sd: float
    """σ, the SD of the fit's residuals (ddof = number of fitted parameters)."""
    n_days: int
    """Observed conditioning days the fit used."""


def normalised_states(w: np.ndarray, tau_fit_days: float, tau_fat_days: float,
                      initial_load: float) -> tuple[np.ndarray, np.ndarray]:
    """Morning fitness G̃ and fatigue H̃ of a daily load series w (one athlete, (n_days,)).

    States come from `banister.morning_states` (row d holds loads of rows < d), started at the
    steady morning state of a constant `initial_load` (so a series does not start untrained),
    and are normalised to EWMA form, G̃ = (1 − e^{−1/τ})·G (params.py; TrainingPeaks' CTL/ATL),
    so that gains are per 100 TRIMP/day of sustained load whatever τ is.
    """
    decays = banister.decay_factors(tau_fit_days, tau_fat_days)
    initial = banister.steady_morning_state(initial_load, 0.0, decays)
    states = banister.morning_states(w, None, decays, initial)
    return ((1.0 - decays[banister.FITNESS]) * states[:, banister.FITNESS],
            (1.0 - decays[banister.FATIGUE]) * states[:, banister.FATIGUE])


def fit_banister_gains(fitness: np.ndarray, fatigue: np.ndarray, y: np.ndarray,
                       fallback_mean: float, fallback_sd: float) -> FixedTauFit:
    """Fit p0, k_fit, k_fat of y = p0 + k_fit·fitness − k_fat·fatigue by Levenberg-Marquardt.

    `scipy.optimize.least_squares(method="lm")` (MINPACK) on the rows where y is observed, as
    GoldenCheetah fits its Banister model (lmcurve, τ held fixed). The problem is linear in the
    parameters, so LM converges to the ordinary least-squares solution. A state that does not vary
    over the observed rows (e.g. no load was ever known) is left out with gain 0; with fewer
    observed rows than parameters only p0 is fitted, and with none the fallbacks are used.
    """
    observed = np.isfinite(y)
    n_obs = int(observed.sum())
    if n_obs == 0:
        return FixedTauFit(fallback_mean, 0.0, 0.0, fallback_sd, 0)
    design = np.column_stack([np.ones(n_obs), fitness[observed], -fatigue[observed]])
    target = y[observed]
    active = [0] + [j for j in (1, 2) if np.ptp(design[:, j]) > 1e-9]
    if n_obs < len(active) + 1:  # LM needs m ≥ n; keep one residual degree of freedom
        active = [0]
    x = design[:, active]
    start = np.zeros(len(active))
    start[0] = target.mean()
    result = least_squares(lambda theta: x @ theta - target, start, jac=lambda theta: x,
                           method="lm")
    theta = np.zeros(3)
    theta[active] = result.x
    dof = n_obs - len(active)
    residual_sd = (float(np.sqrt(np.sum(result.fun ** 2) / dof)) if dof >= MIN_COUNT - 1
                   else fallback_sd)
    return FixedTauFit(float(theta[0]), float(theta[1]), float(theta[2]),
                       max(residual_sd, SD_FLOOR), n_obs)


@dataclass(frozen=True)
class BanisterAthlete(_GaussianAthlete):
    """Fixed-τ Banister fits of one athlete, one per target."""

    fits: dict[str, FixedTauFit]
    stats: AthleteStats
    tau_fit_days: float
    tau_fat_days: float

    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        d0 = check_origins(frame, origins, horizon)
        rows = target_rows(d0, horizon)
        w, _ = filled_loads(frame, self.stats)
        # The state of row r holds loads of rows < r only, so a step-k forecast (row d0+k−1)
        # uses the loads of rows < d0+k−1: those actually trained before that morning.
        fitness, fatigue = normalised_states(w, self.tau_fit_days, self.tau_fat_days,
                                             self.stats.mean_w)
        out = {}
        for target, fit in self.fits.items():
            mean = (fit.baseline + fit.fitness_gain * fitness[rows]
                    - fit.fatigue_gain * fatigue[rows])
            out[target] = (mean, np.full(rows.shape, fit.residual_sd))
        return out


class BanisterLeastSquaresForecaster(_NotFittedMixin):
    """Banister's fitness-fatigue model with fixed time constants and least-squares gains.

    The model of Banister et al. (1975, Aust J Sports Med 7:57) as performance-management
    software fits it: the time constants fixed, at 42/7 days (TrainingPeaks' CTL/ATL; Allen &
    Coggan, Training and Racing with a Power Meter) or at 50/11 days (GoldenCheetah's Banister
    model, `src/Metrics/Banister.cpp`, whose defaults are t1 = 50, t2 = 11 and which fits k1, k2
    and p0 by Levenberg-Marquardt with t1, t2 held fixed), and, per athlete and per target, the
    baseline p0 and the two gains fitted by Levenberg-Marquardt to the conditioning rows
    (`fit_banister_gains`):

        y_d = p0 + k_fit·G̃_d − k_fat·H̃_d + ε_d,   ε_d ~ N(0, σ²)

    with G̃, H̃ the EWMA-normalised morning states of w (`normalised_states`: the
    `banister.morning_states` timing, so a morning sees the loads of the days before it, where
    GoldenCheetah's performance test of day d also includes that day's load). The gains are
    unconstrained in sign (for RHR, fitness lowers the value). The predictive distribution is
    Gaussian with the residual SD of the fit, the same at every horizon (the model has no
    memory of recent residuals).
    """

    def __init__(self, tau_fit_days: float = 42.0, tau_fat_days: float = 7.0,
                 name: str | None = None) -> None:
        self.tau_fit_days = tau_fit_days
        self.tau_fat_days = tau_fat_days
        self.name = name or f"banister_{tau_fit_days:g}_{tau_fat_days:g}"

    def fit(self, train: pd.DataFrame) -> BanisterLeastSquaresForecaster:
        if not self.tau_fit_days > self.tau_fat_days > 0:
            raise ValueError("need tau_fit_days > tau_fat_days > 0")
        self.population_ = population_stats(train)
        return self

    def condition(self, athlete: pd.DataFrame) -> BanisterAthlete:
        self._check_fitted()
        stats = athlete_stats(athlete, self.population_)
        w, _ = filled_loads(athlete, stats)
        fitness, fatigue = normalised_states(w, self.tau_fit_days, self.tau_fat_days,
                                             stats.mean_w)
        fits = {target: fit_banister_gains(fitness, fatigue, y, stats.mean[target],
                                           stats.sd[target])
                for target, y in target_values(athlete).items()}
        return BanisterAthlete(fits, stats, self.tau_fit_days, self.tau_fat_days)


# ---------------------------------------------------------------------------------------------
# Ridge regression on the policy's features.

LOAD_INPUT_NAMES: tuple[str, ...] = ("w_mean_window", "u_mean_window", "w_last", "u_last")
"""Inputs appended to the features for a step-k forecast at origin d0: the mean w and u over
the known-load days d0−1 .. d0+k−2, and w and u of day d0+k−2 (the day before the morning)."""


def _design(features: np.ndarray, w: np.ndarray, u: np.ndarray, last_rows: np.ndarray,
            step: int) -> np.ndarray:
    """Inputs of a step-`step` forecast whose last fully known row is each of `last_rows`
    (= d0−1): that row's features (physiology ≤ d0−1, loads < d0−1) and the loads of rows
    d0−1 .. d0+step−2."""
    prefix_w = np.concatenate([[0.0], np.cumsum(w)])
    prefix_u = np.concatenate([[0.0], np.cumsum(u)])
    end = last_rows + step  # exclusive: rows last .. last+step−1
    return np.column_stack([
        features[last_rows],
        (prefix_w[end] - prefix_w[last_rows]) / step,
        (prefix_u[end] - prefix_u[last_rows]) / step,
        w[end - 1],
        u[end - 1],
    ])


@dataclass(frozen=True)
class RidgeStep:
    """One fitted ridge model (one target, one step ahead)."""

    coef: np.ndarray
    """Coefficients on the standardised inputs."""
    intercept: float
    x_mean: np.ndarray
    x_scale: np.ndarray
    alpha: float
    """The cross-validated penalty."""
    residual_sd: float
    """RMS of the out-of-fold residuals at `alpha` (target units)."""
    n_rows: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_scale) @ self.coef + self.intercept


@dataclass(frozen=True)
class RidgeAthlete(_GaussianAthlete):
    """The population ridge models applied to one athlete (personal only through the features
    and the athlete's load fill)."""

    models: dict[str, tuple[RidgeStep, ...]]
    stats: AthleteStats

    def forecast_gaussian(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        d0 = check_origins(frame, origins, horizon)
        max_step = min(len(steps) for steps in self.models.values())
        if horizon > max_step:
            raise ValueError(f"this ridge forecaster was fitted up to {max_step} days ahead, "
                             f"asked for {horizon}")
        features = _athlete_features(frame)
        w, u = filled_loads(frame, self.stats)
        out = {}
        for target, steps in self.models.items():
            mean = np.empty((d0.size, horizon))
            sd = np.empty((d0.size, horizon))
            for k in range(1, horizon + 1):
                model = steps[k - 1]
                mean[:, k - 1] = model.predict(_design(features, w, u, d0 - 1, k))
                sd[:, k - 1] = model.residual_sd
            out[target] = (mean, sd)
        return out


def ridge_path_out_of_fold(x: np.ndarray, y: np.ndarray,
                           folds: Iterable[tuple[np.ndarray, np.ndarray]], alphas: np.ndarray
                           ) -> np.ndarray:
    """Out-of-fold predictions of ridge regressions with intercept for every penalty at once.

    For each (train, test) index pair of `folds`, the ridge solution on the centred training
    rows, β(α) = (XᵀX + αI)⁻¹Xᵀy, the objective of scikit-learn's `Ridge(alpha,
    fit_intercept=True)`, is computed for all `alphas` in one batched linear solve.
    Returns (n_rows, n_alphas); rows in no test fold are NaN.
    """
    out = np.full((y.size, alphas.size), np.nan)
    for train, test in folds:
        x_centre = x[train].mean(axis=0)
        y_centre = y[train].mean()
        xc = x[train] - x_centre
        gram = xc.T @ xc
        moment = xc.T @ (y[train] - y_centre)
        # One batched solve per fold (an eigendecomposition would serve every α too, but
        # LAPACK's eigh was ~1000× slower than solve for these small matrices here).
        systems = gram[None] + alphas[:, None, None] * np.eye(gram.shape[0])[None]
        coefs = np.linalg.solve(systems, np.broadcast_to(moment, (alphas.size, moment.size))
                                [..., None])[..., 0]  # (n_alphas, n_features)
        out[test] = (x[test] - x_centre) @ coefs.T + y_centre
    return out


def _athlete_features(frame: pd.DataFrame) -> np.ndarray:
    """`build_features` of one calendar-filled athlete frame, aligned row by row."""
    built = build_features(frame)
    if len(built) != len(frame):
        raise ValueError("the feature builder did not return one row per frame row: is the "
                         "frame calendar-filled?")
    return built[list(FEATURE_NAMES)].to_numpy(dtype=float)


class RidgeFeatureForecaster(_NotFittedMixin):
    """Ridge regression on the policy's features, one model per target and step ahead.

    Imbach, Perrey, Chailan, Meline & Candau (2022, "Training load responses modelling and model
    generalisation in elite sports", Sci Rep 12, doi:10.1038/s41598-022-05392-8) compared the
    variable dose-response impulse-response model with regularised and other regressions
    (elastic net, principal component regression, random forest) on training-load features in
    seven elite short-track speed skaters, under time-series cross-validation, and found that the
    elastic net and principal component regression generalised better than the dose-response
    model. This is that baseline for morning physiology: for step k (1..`max_horizon`), a ridge
    regression of the target on the features of the last fully known row d0−1
    (`features.build_features`, the observation the policy sees) plus the loads actually done
    over d0−1 .. d0+k−2 (`LOAD_INPUT_NAMES`), fitted on all training athletes' rows (inputs
    standardised). The penalty is chosen from `alphas` by grouped K-fold cross-validation over
    athletes (pooled out-of-fold mean squared error, `ridge_path_out_of_fold`; an athlete never
    straddles folds), the final model is scikit-learn's `Ridge` at that penalty on all rows,
    and the predictive SD per step is the RMS of the out-of-fold residuals at that penalty (the
    error on athletes the model did not see: wide rather than narrow). Conditioning only sets the
    athlete's load fill: personalisation comes through the features (baselines, recent values).
    """

    name = "ridge"

    def __init__(self, max_horizon: int = 7,
                 alphas: Sequence[float] = tuple(np.logspace(-2, 4, 13)),
                 n_folds: int = 5) -> None:
        self.max_horizon = max_horizon
        self.alphas = tuple(float(a) for a in alphas)
        self.n_folds = n_folds

    def fit(self, train: pd.DataFrame) -> RidgeFeatureForecaster:
        if self.max_horizon < 1 or self.n_folds < 2 or not self.alphas:
            raise ValueError("need max_horizon ≥ 1, n_folds ≥ 2 and at least one alpha")
        self.population_ = population_stats(train)
        filled, _ = fill_calendar(train.sort_values(["user_id", "date"], kind="stable")
                                  .reset_index(drop=True))
        built = build_features(filled)
        same_user = built["user_id"].to_numpy() == filled["user_id"].astype(str).to_numpy()
        same_date = built["date"].to_numpy() == pd.to_datetime(filled["date"]).to_numpy()
        aligned = len(built) == len(filled) and same_user.all() and same_date.all()
        if not aligned:
            raise ValueError("feature rows and frame rows are not aligned")
        features = built[list(FEATURE_NAMES)].to_numpy(dtype=float)
        targets = target_values(filled)
        users = filled["user_id"].astype(str).to_numpy()
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
        steps = range(1, self.max_horizon + 1)
        # Per step k: (inputs, targets, athlete number) of every athlete, to concatenate.
        parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {k: [] for k in steps}
        for number, (a, b) in enumerate(itertools.pairwise(bounds)):
            stats = athlete_stats(filled.iloc[a:b], self.population_)
            w, u = filled_loads(filled.iloc[a:b], stats)
            y = np.column_stack([targets[t][a:b] for t in TARGETS])
            for k in steps:
                last = np.arange(0, b - a - k)  # the target is row last + k
                if last.size:
                    parts[k].append((_design(features[a:b], w, u, last, k), y[last + k],
                                     np.full(last.size, number)))
        fitted: dict[str, list[RidgeStep]] = {t: [] for t in TARGETS}
        n_inputs = len(FEATURE_NAMES) + len(LOAD_INPUT_NAMES)
        for k in steps:
            x = (np.concatenate([p[0] for p in parts[k]]) if parts[k]
                 else np.empty((0, n_inputs)))
            y = (np.concatenate([p[1] for p in parts[k]]) if parts[k]
                 else np.empty((0, len(TARGETS))))
            g = np.concatenate([p[2] for p in parts[k]]) if parts[k] else np.empty(0, int)
            for j, target in enumerate(TARGETS):
                fitted[target].append(self._fit_step(x, y[:, j], g, target))
        self.models_ = {t: tuple(models) for t, models in fitted.items()}
        return self

    def _fit_step(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                  target: str) -> RidgeStep:
        """One ridge model on the rows where y is observed (an intercept-only model at the
        population mean when there are too few rows or athletes to cross-validate)."""
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import GroupKFold

        observed = np.isfinite(y)
        n_features = len(FEATURE_NAMES) + len(LOAD_INPUT_NAMES)
        x, y, groups = x[observed], y[observed], groups[observed]
        n_groups = np.unique(groups).size
        if y.size < 10 or n_groups < 2:
            return RidgeStep(np.zeros(n_features), self.population_.mean[target],
                             np.zeros(n_features), np.ones(n_features), np.inf,
                             self.population_.sd[target], int(y.size))
        x_mean = x.mean(axis=0)
        x_scale = x.std(axis=0)
        x_scale = np.where(x_scale > 1e-12, x_scale, 1.0)  # constant inputs stay 0
        xs = (x - x_mean) / x_scale
        folds = GroupKFold(n_splits=min(self.n_folds, n_groups)).split(xs, y, groups)
        out_of_fold = ridge_path_out_of_fold(xs, y, folds, np.asarray(self.alphas))
        mse = np.mean((out_of_fold - y[:, None]) ** 2, axis=0)
        best = int(np.argmin(mse))
        alpha = self.alphas[best]
        residual_sd = float(np.sqrt(mse[best]))
        final = Ridge(alpha=alpha).fit(xs, y)
        return RidgeStep(np.asarray(final.coef_, dtype=float), float(final.intercept_), x_mean,
                         x_scale, alpha, max(residual_sd, SD_FLOOR), int(y.size))

    def condition(self, athlete: pd.DataFrame) -> RidgeAthlete:
        if not hasattr(self, "models_"):
            raise RuntimeError("RidgeFeatureForecaster is not fitted: call fit(train) first")
        return RidgeAthlete(self.models_, athlete_stats(athlete, self.population_))


def baseline_forecasters(max_horizon: int = 7) -> list[Forecaster]:
    """The baselines the world model is compared with (issue item 7), unfitted, in report
    order: persistence, 7-day rolling mean, Banister 42/7 and 50/11, ridge."""
    return [
        PersistenceForecaster(),
        RollingMeanForecaster(7),
        BanisterLeastSquaresForecaster(42.0, 7.0),
        BanisterLeastSquaresForecaster(50.0, 11.0),
        RidgeFeatureForecaster(max_horizon=max_horizon),
    ]
