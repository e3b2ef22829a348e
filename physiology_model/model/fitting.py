"""Fitting the world model from a daily table: the split of the forecasting protocol, the
posterior (`WorldModel.fit`), each target's slow noise component (in the likelihood, or chosen
after it: `WorldModel.fit_drift`) and the neural residual, in one call (`fit_world_model`, what
`periodize model fit` runs)."""

from __future__ import annotations

import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.data.splits import temporal_split, user_split
from physiology_model.data.table import DailyTable
from physiology_model.dynamics.observation import TARGETS, WARM_START_DAYS
from physiology_model.features.preprocess import PreprocessConfig, assess_athletes, fill_calendar
from physiology_model.model.bayes import PriorConfig, SamplerConfig
from physiology_model.model.calibration import (
    CONDITION_DAYS,
    MAX_HORIZON,
    IntervalCalibration,
    StandardisedErrors,
    build_calibration,
    cross_validate,
    measured_days,
    model_scale,
)
from physiology_model.model.coupling import apply_coupling, estimate_coupling
from physiology_model.model.forecast import series_from_frame
from physiology_model.model.forecasters import target_values
from physiology_model.model.hybrid import (
    DEFAULT_HORIZONS,
    DEFAULT_RESIDUAL_CONFIG,
    VALIDATION_FRACTION,
    ResidualRows,
    athlete_features,
    describe_residual,
    forecast_rows,
)
from physiology_model.model.population_fit import TaskRunner, fit_population, serial_runner
from physiology_model.model.residual import ResidualConfig, TrainedResidual, train_residual
from physiology_model.model.weekday import apply_weekday, estimate_weekday
from physiology_model.model.world_model import WorldModel, WorldModelConfig, WorldModelForecaster


def select_forecast_athletes(frame: pd.DataFrame, *, min_hrv_days: int = 28,
                             config: PreprocessConfig | None = None) -> list[str]:
    """The world model's athletes: kept by `assess_athletes` (with `config`, default
    `PreprocessConfig()`) and with ≥ `min_hrv_days` days of HRV. Sorted ids."""
    if frame.empty:
        return []
    assessed = assess_athletes(DailyTable(frame), config or PreprocessConfig())
    kept = set(assessed.loc[assessed["kept"], "user_id"].astype(str))
    hrv_days = (frame.assign(user_id=frame["user_id"].astype(str))
                .groupby("user_id")["hrv_rmssd_ms"].count())
    return sorted(u for u in kept if hrv_days.get(u, 0) >= min_hrv_days)


@dataclass(frozen=True)
class ForecastSplit:
    """Who and which rows the forecasters are fitted on, and where each athlete is scored."""

    frames: dict[str, pd.DataFrame]
    """Every selected athlete's calendar-filled rows (sorted, index 0..n−1)."""
    train_users: tuple[str, ...]
    """Athletes used in the fit (scored on `temporal`)."""
    test_users: tuple[str, ...]
    """Athletes not used in the fit (scored on `unseen`)."""
    cutoff_rows: dict[str, int]
    """Per training athlete, the row position of its first temporal test day."""
    fit_frame: pd.DataFrame
    """The training athletes' rows before their cutoffs: what every forecaster is fitted on."""


def split_for_forecasting(frame: pd.DataFrame, *, seed: int, test_fraction: float = 0.2,
                          min_hrv_days: int = 28) -> ForecastSplit:
    """Select athletes, calendar-fill them and split them as the protocol says (module
    docstring). A model fitted outside `evaluate_forecasters` (e.g. `periodize model fit`) must
    be fitted on `fit_frame` of the same seed for the scores to be out of sample."""
    athletes = select_forecast_athletes(frame, min_hrv_days=min_hrv_days)
    if len(athletes) < 2:
        raise ValueError(f"the forecast evaluation needs at least 2 athletes with "
                         f"≥ {min_hrv_days} days of HRV, found {len(athletes)}")
    rows = frame[frame["user_id"].astype(str).isin(athletes)].copy()
    rows["user_id"] = rows["user_id"].astype(str)
    rows = rows.sort_values(["user_id", "date"], kind="stable").reset_index(drop=True)
    train_users, test_users = user_split(athletes, test_fraction, seed)
    split = temporal_split(rows)
    filled, _ = fill_calendar(rows)
    frames = {u: g.reset_index(drop=True) for u, g in filled.groupby("user_id", sort=True)}
    cutoff_rows: dict[str, int] = {}
    fit_parts = []
    for user in train_users:
        test_dates = rows.loc[(rows["user_id"] == user) & (split == "test"), "date"]
        full = frames[user]
        cutoff = (int(np.searchsorted(full["date"].to_numpy(), test_dates.min().to_datetime64()))
                  if len(test_dates) else len(full))
        cutoff_rows[user] = cutoff
        fit_parts.append(full.iloc[:cutoff])
    fit_frame = pd.concat(fit_parts, ignore_index=True)
    return ForecastSplit(frames, tuple(train_users), tuple(test_users), cutoff_rows, fit_frame)


def _choose(candidates: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` of the candidate origins, drawn without replacement, sorted."""
    if limit is None or candidates.size <= limit:
        return candidates
    return np.sort(rng.choice(candidates, size=limit, replace=False))


def residual_training_rows(model: WorldModel, fit_frame: pd.DataFrame, *,
                           horizons: Sequence[int] = DEFAULT_HORIZONS,
                           validation_fraction: float = VALIDATION_FRACTION,
                           max_origins_per_athlete: int | None = 300,
                           rng: np.random.Generator) -> tuple[ResidualRows, ResidualRows]:
    """(training rows, validation rows) of `fit_residual` (see the module docstring).

    Athletes of `fit_frame` absent from `model.athletes_` are skipped. Per athlete and part, at
    most `max_origins_per_athlete` origins are used (a random subset drawn with `rng`; None:
    all), each with every horizon whose target day lies in the part (training) or in the
    athlete's rows (validation).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError("validation_fraction must be in (0, 1)")
    horizons = tuple(int(h) for h in horizons)
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive day counts, got {horizons}")
    model._check_fitted()
    rows = fit_frame[fit_frame["user_id"].astype(str).isin(model.athletes_)].copy()
    rows["user_id"] = rows["user_id"].astype(str)
    if rows.empty:
        raise ValueError("no athlete of fit_frame is in the model's fit")
    labels = temporal_split(rows, (1.0 - validation_fraction, validation_fraction, 0.0))
    filled, _ = fill_calendar(rows.sort_values(["user_id", "date"], kind="stable"))
    train_parts, val_parts = [], []
    for user, frame in filled.groupby("user_id", sort=True):
        frame = frame.reset_index(drop=True)
        val_dates = rows.loc[(rows["user_id"] == user) & (labels == "val"), "date"]
        boundary = (int(np.searchsorted(frame["date"].to_numpy(),
                                        val_dates.min().to_datetime64()))
                    if len(val_dates) else len(frame))
        series = series_from_frame(frame)
        features = athlete_features(frame)
        first = max(WARM_START_DAYS, 1)
        params = model.athletes_[user]
        train_origins = _choose(np.arange(first, boundary), max_origins_per_athlete, rng)
        val_origins = _choose(np.arange(max(first, boundary), len(frame)),
                              max_origins_per_athlete, rng)
        train_parts.append(forecast_rows(params, series, features, train_origins, horizons,
                                         boundary, user, model.drift_))
        val_parts.append(forecast_rows(params, series, features, val_origins, horizons,
                                       len(frame), user, model.drift_))
    return ResidualRows.concat(train_parts), ResidualRows.concat(val_parts)


def fit_residual(model: WorldModel, fit_frame: pd.DataFrame, *,
                 horizons: Sequence[int] = DEFAULT_HORIZONS,
                 seed: int | np.random.SeedSequence = 0,
                 config: ResidualConfig = DEFAULT_RESIDUAL_CONFIG,
                 validation_fraction: float = VALIDATION_FRACTION,
                 max_origins_per_athlete: int | None = 300) -> TrainedResidual:
    """Train the neural residual of a fitted `WorldModel` on the rows it was fitted on.

    `fit_frame`: the canonical rows the model was fitted on (e.g. `split_for_forecasting(...)
    .fit_frame`); only athletes in `model.athletes_` are used, with their fitted posterior.
    Rows are built by `residual_training_rows` (82/18 split in time per athlete, at most
    `max_origins_per_athlete` seeded random origins per athlete and part, all `horizons`) and
    the ensemble is trained, early-stopped and gated per target by `residual.train_residual`.
    The result's `enabled` says which targets it corrects and `validation` the validation CRPS
    of the base and of base + residual per target; `training["rows"]` records the rows used.
    It does not attach itself: set `model.residual_ = fit_residual(...)` to use it.
    Same data, model and seed → the same residual.
    """
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rows_seq, train_seq = seq.spawn(2)
    train, val = residual_training_rows(
        model, fit_frame, horizons=horizons, validation_fraction=validation_fraction,
        max_origins_per_athlete=max_origins_per_athlete, rng=np.random.default_rng(rows_seq))
    for name, part in (("training", train), ("validation", val)):
        if len(part) == 0:
            raise ValueError(f"no {name} rows: the fit's athletes have too few days for an "
                             f"82/18 split with {WARM_START_DAYS} warm-start days")
    residual = train_residual(train.inputs, train.base_mean, train.base_sd, train.target,
                              val.inputs, val.base_mean, val.base_sd, val.target,
                              config=config, seed=train_seq)
    residual.training["rows"] = {
        "athletes": len(set(train.user_id) | set(val.user_id)),
        "n_train": len(train), "n_val": len(val), "horizons": [int(h) for h in horizons],
        "validation_fraction": float(validation_fraction),
        "max_origins_per_athlete": max_origins_per_athlete}
    return residual


RESIDUAL_ORIGINS_PER_ATHLETE = 300
"""Forecast origins per athlete and part (training, validation) of the residual's rows."""
MIN_RESIDUAL_ORIGINS = 20
"""The fewest origins per athlete and part a population fit (`population_athletes`) gives the
residual, however many athletes share the rows of K."""


def fit_world_model(frame: pd.DataFrame, *, seed: int = 0, use_all: bool = False,
                    config: WorldModelConfig = WorldModelConfig(),
                    sampler: SamplerConfig = SamplerConfig(),
                    priors: PriorConfig | None = None, residual: bool = True,
                    say: Callable[[str], None] = print,
                    population_athletes: int | None = None,
                    run: TaskRunner = serial_runner) -> WorldModel:
    """The whole fit of `periodize model fit` on a canonical frame: athletes split as the
    forecasting protocol says (`split_for_forecasting` with `seed`; `use_all`: every row of
    every selected athlete), the posterior, each target's slow noise component (in the
    likelihood with `priors.slow_noise`, else chosen after the fit by `fit_drift` and made the
    slow component of the draws) and (`residual`) the neural residual. The returned model
    records its split, timings and drift choice; save it with `WorldModel.save`. Progress
    lines go to `say`.

    `population_athletes` K (`--population-athletes`): the population by NUTS on K of the
    training athletes and every other one personalised against it, the tasks executed by `run`
    (`population_fit.fit_population`). The residual then trains on every training athlete
    (the personalised ones with their personalised draws), with its origins per athlete cut to
    300·K/N (at least `MIN_RESIDUAL_ORIGINS`) so its rows and training time stay about those of
    an ordinary fit of K athletes while coming from all N; the drift choice and the interval
    calibration, which personalise athletes as new users on their first days whether or not
    they were in the NUTS fit, use the K NUTS athletes' rows, so they cost what they cost in an
    ordinary fit of K athletes (docs/scale.md, "Large cohorts")."""
    split = split_for_forecasting(frame, seed=seed)
    fit_frame = fitted_rows(split, use_all)
    held_out = "none (--all)" if use_all else (f"{len(split.test_users)} athletes and the last "
                                               f"15 % of each training athlete's days")
    say(f"fitting {fit_frame['user_id'].nunique()} training athletes, {len(fit_frame)} days "
        f"(held out: {held_out}); sampler {sampler.sampler}, {sampler.chains} chains × "
        f"{sampler.draws} draws")
    started = time.perf_counter()
    origins = RESIDUAL_ORIGINS_PER_ATHLETE
    if population_athletes is None:
        model = WorldModel(config, sampler=sampler, priors=priors).fit(fit_frame)
    else:
        model = fit_population(WorldModel(config, sampler=sampler, priors=priors), fit_frame,
                               population_athletes, seed=seed, run=run, say=say)
        nuts = set(model.fit_info_["population_fit"]["nuts_athletes"])
        # the residual's rows: about those of an ordinary fit of K athletes, from all of them
        origins = max(MIN_RESIDUAL_ORIGINS, -(-RESIDUAL_ORIGINS_PER_ATHLETE * len(nuts)
                                              // max(len(model.athletes_), 1)))
    later_frame = calibration_rows(model, fit_frame)
    timings = model.fit_info_.get("timings", {})
    say(f"posterior of {len(model.athletes_)} athletes (those with ≥ {config.min_hrv_days} "
        f"days of HRV in the fit's rows): {time.perf_counter() - started:.0f} s (compile "
        f"{timings.get('compile_s', 0.0):.0f} s, sampling {timings.get('sample_s', 0.0):.0f} s)")
    learn_weekday(model, later_frame, say)
    if not (model.priors or PriorConfig()).slow_noise:  # one AR(1): its drift after the fit
        drift_started = time.perf_counter()
        drift = model.fit_drift(later_frame, seed=seed)
        model.fit_info_["drift"] = drift
        model.fit_info_["timings"]["drift_s"] = time.perf_counter() - drift_started
        for target, chosen in drift.items():
            say(f"noise drift {target}: {chosen['setting']} (next-day CRPS {chosen['crps']:.4f} vs "
                f"{chosen['crps_ar1']:.4f} with one AR(1), {chosen['athletes']} athletes "
                f"personalised on 14 days)")
        model._drift_as_slow_noise()  # as loading it would: one noise for everything below
    learn_coupling(model, later_frame, say)
    if residual:
        residual_started = time.perf_counter()
        model.residual_ = fit_residual(model, fit_frame, seed=seed,
                                       max_origins_per_athlete=origins)
        say(describe_residual(model.residual_))
        model.fit_info_["timings"]["residual_s"] = time.perf_counter() - residual_started
    calibration_started = time.perf_counter()
    learn_calibration(model, later_frame, seed, say)
    model.fit_info_["timings"]["calibration_s"] = time.perf_counter() - calibration_started
    model.split_ = {"seed": seed, "all": bool(use_all), "test_users": list(split.test_users)}
    return model


def standardised_errors(model, frame: pd.DataFrame, *, condition_days: Sequence[int] =
                        CONDITION_DAYS, max_horizon: int = MAX_HORIZON, n_samples: int = 200,
                        seed: int = 0, progress: Callable[[str], None] | None = None
                        ) -> StandardisedErrors:
    """Forecast each athlete of `frame` as a new user (personalised on its first c calendar
    days, for each c) and standardise the errors (module docstring, step 1). `model` must not be
    calibrated yet (its raw forecasts are what is standardised)."""

    frame = frame.assign(user_id=frame["user_id"].astype(str))
    filled, _ = fill_calendar(frame.sort_values(["user_id", "date"], kind="stable"))
    z: dict = {}
    who: dict = {}
    users = sorted(filled["user_id"].unique())
    for a, user in enumerate(users):
        rows = filled[filled["user_id"] == user].reset_index(drop=True)
        truth = target_values(rows)
        for ci, c in enumerate(condition_days):
            if len(rows) <= c + 1 or measured_days(rows.iloc[:c]) < 7:
                continue
            forecaster = WorldModelForecaster(model, seed=seed + 7919 * c,
                                              use_calibration=False)
            head = rows.iloc[:c].assign(user_id=f"{user}#calibration")  # never the fitted one
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conditioned = forecaster.condition(head)
            origins = np.arange(c, len(rows) - 1, dtype=np.int64)
            horizon = int(min(max_horizon, len(rows) - c))
            origins = origins[origins + horizon - 1 < len(rows)]
            if not origins.size:
                continue
            rng = np.random.default_rng([seed, zlib.crc32(user.encode()), c])
            samples = conditioned.forecast(rows, origins, horizon, n_samples, rng)
            for target in TARGETS:
                x = model_scale(target, np.asarray(samples[target]))
                centre, spread = x.mean(axis=1), np.maximum(x.std(axis=1), 1e-9)  # (O, H)
                for h in range(horizon):
                    y = truth[target][origins + h]
                    seen = np.isfinite(y)
                    if not seen.any():
                        continue
                    values = (model_scale(target, y[seen]) - centre[seen, h]) / spread[seen, h]
                    z.setdefault((target, ci, h), []).append(values)
                    who.setdefault((target, ci, h), []).append(np.full(values.size, a))
        if progress:
            progress(f"calibration: {user} ({a + 1}/{len(users)})")
    return StandardisedErrors(z, who)


def fit_calibration(model, frame: pd.DataFrame, *, condition_days: Sequence[int] =
                    CONDITION_DAYS, max_horizon: int = MAX_HORIZON, n_samples: int = 200,
                    seed: int = 0, progress: Callable[[str], None] | None = None
                    ) -> IntervalCalibration:
    """Learn the table on the athletes of `frame` (the fit's training rows) with its
    leave-athletes-out check in `info["cross_validation"]`."""
    errors = standardised_errors(model, frame, condition_days=condition_days,
                                 max_horizon=max_horizon, n_samples=n_samples, seed=seed,
                                 progress=progress)
    if not errors.z:
        raise ValueError("no training athlete has enough days to learn the interval "
                         "calibration on")
    n_athletes = frame["user_id"].astype(str).nunique()
    info = {"seed": seed, "n_samples": n_samples, "athletes": n_athletes,
            "rule": "quantiles of (y - mean)/sd of the forecast samples; recovery on the logit "
                    "scale (physiology_model/model/calibration.py)"}
    calibration = build_calibration(errors, condition_days=condition_days,
                                    max_horizon=max_horizon, info=info)
    calibration.info["cross_validation"] = cross_validate(
        errors, n_athletes, condition_days=condition_days, max_horizon=max_horizon, seed=seed)
    return calibration


def fitted_rows(split: ForecastSplit, use_all: bool) -> pd.DataFrame:
    """The rows `fit_world_model` fits on: the split's training rows, or every row (--all)."""
    return (pd.concat(list(split.frames.values()), ignore_index=True) if use_all
            else split.fit_frame)


def calibration_rows(model: WorldModel, fitted: pd.DataFrame) -> pd.DataFrame:
    """The rows the drift choice and the interval calibration learn from: every fitted row
    (also those of training athletes with too few HRV days for the posterior), or only the K
    NUTS athletes' of a large-cohort fit (`population_fit`)."""
    nuts = model.fit_info_.get("population_fit", {}).get("nuts_athletes")
    return fitted[fitted["user_id"].astype(str).isin(nuts)] if nuts else fitted


def learn_weekday(model: WorldModel, fit_frame: pd.DataFrame,
                  say: Callable[[str], None] = print) -> None:
    """Estimate the weekday offsets on the fit's training athletes
    (`weekday.estimate_weekday`), write them into the model's draws and record them in
    `fit_info_["weekday"]`."""
    _learn_post_fit(model, fit_frame, "weekday", estimate_weekday, apply_weekday, say)


def learn_coupling(model: WorldModel, fit_frame: pd.DataFrame,
                   say: Callable[[str], None] = print) -> None:
    """Estimate the signals' same-morning noise correlations on the fit's training athletes
    (`coupling.estimate_coupling`), write them into the model's draws and record them in
    `fit_info_["coupling"]`."""
    _learn_post_fit(model, fit_frame, "coupling", estimate_coupling, apply_coupling, say)


def _learn_post_fit(model: WorldModel, fit_frame: pd.DataFrame, name: str,
                    estimate: Callable, apply: Callable, say: Callable[[str], None]) -> None:
    """One post-fit part: `estimate(model, fit_frame, say)`, `apply(model, estimate)` into the
    draws, its `to_dict()` in `fit_info_[name]` and its time in the timings."""
    started = time.perf_counter()
    result = estimate(model, fit_frame, say)
    apply(model, result)
    model.fit_info_[name] = result.to_dict()
    model.fit_info_.setdefault("timings", {})[f"{name}_s"] = time.perf_counter() - started


def learn_calibration(model: WorldModel, fit_frame: pd.DataFrame, seed: int,
                      say: Callable[[str], None] = print) -> None:
    """Learn the interval calibration on the fit's training athletes (`fit_calibration`) into
    `model.calibration_`, and report its leave-athletes-out coverage through `say`."""
    model.calibration_ = None  # standardise the model's own forecasts
    model.calibration_ = fit_calibration(model, fit_frame, seed=seed)
    for row in model.calibration_.info["cross_validation"]:
        say(f"calibrated intervals, {row['target']} h={row['horizon']} after "
            f"{row['condition_days']} days: 50 % cover {row['cover50']:.3f}, 90 % cover "
            f"{row['cover90']:.3f} (training athletes left out by fold, {row['n']} days)")
