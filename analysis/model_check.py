"""Out-of-sample sim-to-real check of the world model (`periodize model check`, issue 24 item 4).

For each real athlete the model was **not** fitted on (not in `WorldModel.athletes_`: the saved
split's held-out athletes, or anyone in a directory of exports the project never had):

1. Personalise (`WorldModel.personalize`) on the athlete's first `condition_days` calendar days,
   as a new user's first weeks would be.
2. Simulate the rest of the athlete's calendar (at most `max_future_days` days) under the loads
   the athlete actually did, `replicates` times: each replicate takes one posterior draw and its
   own noise path (the simulator's observation equations and noise, `step.continue_noise`, so
   whatever noise the simulator has is what is checked). The Banister states run from the
   first day of the history, so the simulated future starts trained; the noise starts from
   the state the first days left: each signal's slow and fast components on the last
   conditioning day, drawn from their Kalman-filtered distribution given the measured days
   and the draw (`drift.filter_residuals`, the forecasts' filter), as a twin of the athlete
   would start today. (Until 2026-12-07 the noise started from its stationary distribution on
   the first day, as if nothing had been measured: a slow component of a month's memory then
   put the simulated level where the measured first days said it was not.)
3. Simulate the measurement too: the simulated mornings are missing where the athlete's were,
   and a target the athlete's device reports in whole numbers (RHR in bpm, recovery in %, HRV in
   ms on some devices; decided from the measured values) is rounded the same way. A simulator
   whose values are never missing and never whole would be told apart for that alone.
4. Compare with what was measured on the same days (`measured` vs `simulated` below).

Records (a JSON list of flat dicts with the keys `RECORD_KEYS`; `lo`/`hi` only where stated):

- `mean`, `sd`, `lag1` … `lag7` (autocorrelation at lag k over pairs of measured days),
  `hard_day_response` (next-morning change after days with a measured load in the athlete's
  top quintile of measured loads, minus after rest days: measured load ≤ `REST_TRIMP`),
  `hard_day_morning` (the value on the morning of hard days minus rest days: the athlete's
  choice of when to train hard), `hard_day_effect` (the next-morning comparison at equal
  morning-of values, which leaves that choice out), `coupling` (the correlation of the target
  with the same morning's other signal, `PARTNER`: ln HRV with RHR, RHR with ln HRV, recovery
  with ln HRV, over the days both were measured; a simulator whose signals' day-to-day noise is
  independent has the load's share of it only), `baseline_reading` (recovery only: how much
  more of the recovery logit's variance the morning's ln HRV and RHR explain when read against
  their trailing `BASELINE_DAYS`-day means than against fixed levels, `reading_r2`; a device
  reads its score against the athlete's recent baseline, benchmarks/recovery_baseline.py): per
  athlete the measured statistic and the mean over replicates of the simulated one (a
  replicate's signals come from one posterior draw); for `athlete = "all"` the medians over
  athletes of each.
- `band50_coverage`, `band90_coverage`: the share of measured future days inside the central
  50 % / 90 % band of the replicates on that day (`measured`), with the nominal 0.5 / 0.9 as
  `simulated`; `"all"` pools the days. The band is of the replicates before rounding: a band
  of whole numbers with inclusive bounds would hold a whole-number measurement on its edges
  too often (the rounding of the measured value adds a variance of 1/12 unit², a few per cent
  of RHR's).
- `c2st_auc` (athlete `"all"` only, one per target): a classifier two-sample test. The future is
  cut into non-overlapping `window_days` windows; a real window is the measured target, its
  `PARTNER` signal and the load on those days, a simulated one the same days of a random
  replicate (`sims_per_window` of them per real window). Each window is summarised
  (`WINDOW_FEATURES`) and a gradient boosting classifier is scored out of fold with
  athlete-grouped K-fold cross-validation (an athlete's real and simulated windows are always
  in the same fold); `measured` = the ROC AUC
  of the pooled out-of-fold scores, `simulated` = 0.5 (indistinguishable), `lo`/`hi` = a 95 %
  percentile bootstrap over athletes of that AUC. Beside it, what gives the simulator away:
  `c2st_auc_<feature>` for each of `WINDOW_FEATURES`, the same cross-validated classifier on
  that one feature alone (no interval; the load's own features are the same in both classes,
  so theirs stay near 0.5, and a feature that tells nothing can score below 0.5 out of fold,
  as athletes differ between folds: read only those well above 0.5).
- `effect_slope`: on every future day d with a measured load and a measured morning d + 1, the
  model's predicted effect of day d's load on morning d + 1 against no load (posterior mean;
  ln ms, bpm, logit recovery) and the observed deviation of morning d + 1 from the model's
  no-load forecast (its filtered one-day forecast, conditioned on the mornings through d, minus
  that effect). `measured` = the slope of deviation on effect (per athlete: OLS with an
  intercept; `"all"`: the within-athlete slope, each athlete's days centred), `simulated` = 1
  (a correct effect), `lo`/`hi` its 95 % interval (per athlete: normal, from the OLS standard
  error; `"all"`: a percentile bootstrap over athletes).

Everything is deterministic given `seed` (one generator per athlete keyed by its id).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import (
    NOISE_SIGMA,
    TARGETS,
    WARM_START_DAYS,
    latent_states,
    logit_to_recovery,
    observation_means,
    recovery_to_logit,
)
from physiology_model.dynamics.params import LOAD_SCALE_TRIMP
from physiology_model.dynamics.step import AthleteParams, continue_noise
from physiology_model.errors import DataError
from physiology_model.features.batch import weekdays
from physiology_model.model.drift import filter_residuals, noise_components
from physiology_model.model.forecast import (
    forecast_gaussians,
    observed_targets,
    series_from_frame,
)
from simulator.replay import (
    MIN_PAIRS,
    day_groups,
    hard_day_response,
    lag_autocorrelation,
)

RECORD_KEYS: tuple[str, ...] = ("athlete", "target", "statistic", "measured", "simulated", "n",
                                "lo", "hi")
MAX_LAG = 7
STATISTICS: tuple[str, ...] = ("mean", "sd", *(f"lag{k}" for k in range(1, MAX_LAG + 1)),
                               "hard_day_response", "hard_day_morning", "hard_day_effect",
                               "coupling", "baseline_reading", "band50_coverage",
                               "band90_coverage",
                               "c2st_auc", "effect_slope")
PARTNER: dict[str, str] = {"hrv": "rhr", "rhr": "hrv", "recovery": "hrv"}
"""The signal each target's `coupling` is measured with: the same morning's reading that the
physiology ties it to (vagal activity moves ln HRV and resting HR in opposite directions; a
recovery score is computed from the morning's HRV and resting HR)."""
WINDOW_FEATURES: tuple[str, ...] = (
    "mean", "sd", "min", "max", "mean_abs_diff", "lag1", "observed_share", "whole_share",
    "shift_from_head", "load_response", "load_mean", "load_sd", "coupling")
"""Per window: the target's mean, SD, range, mean absolute day-to-day change, lag-1
autocorrelation, share of days measured, share of whole-number values (device units), mean
minus the athlete's mean over the conditioning days, the slope of the next-morning change on
the day's load, the load's mean and SD, and the target's correlation with its `PARTNER` signal
on the same mornings."""


@dataclass(frozen=True)
class CheckConfig:
    condition_days: int = 28
    replicates: int = 100
    seed: int = 0
    max_future_days: int = 365
    min_future_days: int = 28
    """An athlete needs this many measured future days (HRV or RHR) to be checked."""
    window_days: int = 28
    sims_per_window: int = 3
    effect_draws: int = 100
    """Posterior draws used for the effect slope's forecasts (for speed)."""
    n_boot: int = 100
    """Bootstrap resamples for the intervals (each reruns the C2ST's cross-validation)."""

    def __post_init__(self):
        if self.condition_days < WARM_START_DAYS:
            raise ValueError(f"--condition-days must be ≥ {WARM_START_DAYS}, got "
                             f"{self.condition_days}")
        if self.replicates < 2:
            raise ValueError(f"--replicates must be ≥ 2, got {self.replicates}")


@dataclass
class AthleteCheck:
    """One athlete's future days: measured, simulated (measurement included) and the effects."""

    athlete: str
    load_trimp: np.ndarray
    """(T,) the filled load that drove the simulation, in TRIMP."""
    load_known: np.ndarray
    """(T,) whether the day's load was measured."""
    measured: dict[str, np.ndarray]
    """{target: (T,)} in report units (ln ms, bpm, %), NaN where not measured."""
    simulated: dict[str, np.ndarray]
    """{target: (R, T)}, the measurement simulated (NaN where `measured` is)."""
    bands: dict[str, np.ndarray]
    """{target: (R, T)} the simulated values before rounding, for the bands (module
    docstring)."""
    head_mean: dict[str, float]
    """{target: mean measured value over the conditioning days} (NaN if none)."""
    whole: dict[str, bool]
    effect: dict[str, np.ndarray] = field(default_factory=dict)
    """{target: (n,) predicted effect of day d's load on morning d + 1}."""
    deviation: dict[str, np.ndarray] = field(default_factory=dict)
    """{target: (n,) observed morning d + 1 minus the no-load forecast}."""
    ess: float = math.nan


# ---------------------------------------------------------------------------------------------
# Simulating the measurement.


def whole_number_device(values_native: np.ndarray) -> bool:
    """Whether a device reports this signal in whole numbers: ≥ 5 measured values, all whole."""
    v = np.asarray(values_native, dtype=float)
    v = v[np.isfinite(v)]
    return v.size >= 5 and bool(np.all(np.abs(v - np.round(v)) < 1e-9))


def measure(target: str, simulated: np.ndarray, measured: np.ndarray, whole: bool) -> np.ndarray:
    """The simulated values as the device would have reported them: NaN where the athlete had no
    measurement, rounded to whole device units (ms for HRV, bpm, %) where the device rounds."""
    out = np.array(simulated, dtype=float)
    if whole:
        if target == "hrv":
            out = np.log(np.maximum(np.round(np.exp(out)), 1.0))
        elif target == "recovery":
            out = np.clip(np.round(out), 0.0, 100.0)
        else:
            out = np.round(out)
    return np.where(np.isnan(measured)[None, :], np.nan, out)


# ---------------------------------------------------------------------------------------------
# Statistics of one series.


def hard_day_morning(y: np.ndarray, hard: np.ndarray, rest: np.ndarray) -> float:
    """The mean value on the morning of hard days minus on the morning of rest days (NaN when
    either group has fewer than 3 measured mornings): how much the athlete's choice of hard
    days follows the morning's reading. A replay under fixed loads has none (about 0)."""
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    h, r = hard & ok, rest & ok
    if h.sum() < 3 or r.sum() < 3:
        return math.nan
    return float(y[h].mean() - y[r].mean())


def hard_day_effect(y: np.ndarray, hard: np.ndarray, rest: np.ndarray) -> float:
    """The next-morning value after hard days minus after rest days at the same morning-of
    value: δ of the least-squares fit y[d+1] = α + β·y[d] + δ·hard[d] over hard and rest days d
    with both mornings measured (NaN when either group has fewer than 3 such days).

    `hard_day_response` compares changes from the morning of the day, so it also holds the
    athletes' choice: people train hard on good mornings (`hard_day_morning`), and a good
    morning is followed by a less good one whatever the load. A replay under the athlete's own
    loads has no such choice, so only the response at equal morning-of values compares like with
    like."""
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y[:-1]) & np.isfinite(y[1:])
    h, r = hard[:-1] & ok, rest[:-1] & ok
    if h.sum() < 3 or r.sum() < 3:
        return math.nan
    use = h | r
    x = np.column_stack([np.ones(use.sum()), y[:-1][use], h[use].astype(float)])
    coef, _, rank, _ = np.linalg.lstsq(x, y[1:][use], rcond=None)
    return float(coef[2]) if rank == 3 else math.nan


def same_morning_correlation(y: np.ndarray, partner: np.ndarray) -> float:
    """Pearson correlation of two signals over the mornings both were measured (NaN with
    fewer than `MIN_PAIRS` such mornings or a constant signal)."""
    y, partner = np.asarray(y, dtype=float), np.asarray(partner, dtype=float)
    ok = np.isfinite(y) & np.isfinite(partner)
    if ok.sum() < MIN_PAIRS:
        return math.nan
    a, b = y[ok] - y[ok].mean(), partner[ok] - partner[ok].mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denominator if denominator > 0 else math.nan


BASELINE_DAYS = 30
"""The trailing window of the recovery score's baseline (`baseline_reading`)."""


def trailing_mean(values: np.ndarray, days: int) -> np.ndarray:
    """Mean of the measured values of the `days` days before each day (NaN with fewer than
    max(3, days // 3) of them)."""
    return (pd.Series(np.asarray(values, dtype=float)).shift(1)
            .rolling(days, min_periods=max(3, days // 3)).mean().to_numpy())


def reading_r2(recovery_logit: np.ndarray, ln_hrv: np.ndarray, rhr: np.ndarray,
               baselines: tuple[np.ndarray, np.ndarray] | None, use: np.ndarray,
               extra: Sequence[np.ndarray] = ()) -> tuple[float, np.ndarray, np.ndarray]:
    """(R², residual on every day (NaN off `use`), coefficients: intercept, ln HRV, RHR, the
    `extra`) of the least-squares fit of the recovery logit on the morning's ln HRV and RHR
    relative to `baselines` (each day's ln HRV and RHR baselines, e.g. `trailing_mean`), or to
    their means over `use` (None: fixed levels), and on any `extra` regressors, on the days
    `use`."""
    if baselines is None:
        hb, rb = np.nanmean(ln_hrv[use]), np.nanmean(rhr[use])
    else:
        hb, rb = baselines
    x = np.column_stack([np.ones(int(use.sum())), (ln_hrv - hb)[use], (rhr - rb)[use],
                         *(np.asarray(e, dtype=float)[use] for e in extra)])
    y = recovery_logit[use]
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = np.full(recovery_logit.shape, np.nan)
    residual[use] = y - x @ coef
    total = float(((y - y.mean()) ** 2).sum())
    e = residual[use]
    return (1.0 - float(e @ e) / total if total > 0 else math.nan), residual, coef


def baseline_reading(recovery_pct: np.ndarray, ln_hrv: np.ndarray, rhr: np.ndarray) -> float:
    """`reading_r2` against the trailing `BASELINE_DAYS` days minus against fixed levels, on the
    days where every value and both baselines exist (NaN with fewer than 3·`MIN_PAIRS`)."""
    recovery = recovery_to_logit(recovery_pct)  # NaN stays NaN
    ln_hrv, rhr = np.asarray(ln_hrv, dtype=float), np.asarray(rhr, dtype=float)
    baselines = trailing_mean(ln_hrv, BASELINE_DAYS), trailing_mean(rhr, BASELINE_DAYS)
    use = (np.isfinite(recovery) & np.isfinite(ln_hrv) & np.isfinite(rhr)
           & np.isfinite(baselines[0]) & np.isfinite(baselines[1]))
    if use.sum() < 3 * MIN_PAIRS:
        return math.nan
    return (reading_r2(recovery, ln_hrv, rhr, baselines, use)[0]
            - reading_r2(recovery, ln_hrv, rhr, None, use)[0])


def _series_statistics(y: np.ndarray, hard: np.ndarray, rest: np.ndarray,
                       partner: np.ndarray) -> dict[str, float]:
    seen = np.isfinite(y)
    out = {"mean": float(np.mean(y[seen])) if seen.any() else math.nan,
           "sd": float(np.std(y[seen])) if seen.sum() > 1 else math.nan}
    for k in range(1, MAX_LAG + 1):
        out[f"lag{k}"] = lag_autocorrelation(y, k)
    out["hard_day_response"] = hard_day_response(y, hard, rest)
    out["hard_day_morning"] = hard_day_morning(y, hard, rest)
    out["hard_day_effect"] = hard_day_effect(y, hard, rest)
    out["coupling"] = same_morning_correlation(y, partner)
    return out


def _nanmean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def band_hits(measured: np.ndarray, simulated: np.ndarray, level: float) -> np.ndarray:
    """Per measured day, whether it lies in the central `level` band of the replicates
    (inclusive bounds; numpy's linear quantiles)."""
    seen = np.isfinite(measured)
    sims = simulated[:, seen]
    lo, hi = np.quantile(sims, [(1 - level) / 2, (1 + level) / 2], axis=0)
    y = measured[seen]
    return (y >= lo) & (y <= hi)


# ---------------------------------------------------------------------------------------------
# One athlete.


def _athlete_rng(seed: int, athlete: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(athlete.encode()), zlib.crc32(purpose.encode())])


def _report_units(series) -> dict[str, np.ndarray]:
    rec = np.where(np.isnan(series.recovery_logit), np.nan,
                   logit_to_recovery(series.recovery_logit))
    return {"hrv": series.hrv, "rhr": series.rhr, "recovery": rec}


def _native(target: str, values: np.ndarray) -> np.ndarray:
    return np.exp(values) if target == "hrv" else values


def load_effects(p: dict[str, np.ndarray], load: np.ndarray, hi_load: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Each draw's predicted effect of each day's load on the next morning against no load that
    day, {target: (S, T)} on the model scale (ln ms, bpm, logit). The latent states are linear
    in the loads, so the effect is the one-day impulse response times the day's loads."""
    n = WARM_START_DAYS + 3
    day = WARM_START_DAYS + 1
    zero = np.zeros(n)
    impulse = zero.copy()
    impulse[day] = 1.0
    base = latent_states(p, zero, zero)[:, day + 1]
    per_w = latent_states(p, impulse, zero)[:, day + 1] - base  # (S, 3)
    per_u = latent_states(p, zero, impulse)[:, day + 1] - base
    delta = (per_w[:, None, :] * np.asarray(load, float)[None, :, None]
             + per_u[:, None, :] * np.asarray(hi_load, float)[None, :, None])  # (S, T, 3)
    zeros = {k: np.zeros_like(v) for k, v in p.items()}
    slopes = {**zeros, **{k: p[k] for k in ("a_fit", "a_fat", "a_fast", "b_fit", "b_fat",
                                             "b_fast", "g_hrv", "g_rhr")}}
    # observation_means is affine in the latents; with zero intercepts it is the linear part
    return observation_means(slopes, delta)


def simulate_future(p: dict[str, np.ndarray], series, n_cond: int, rng: np.random.Generator
                    ) -> dict[str, np.ndarray]:
    """Each draw's simulated ln HRV, RHR and recovery (%) on the days after the first `n_cond`
    of `series`, {target: (R, T)} (NaN on the first `n_cond` days): the observation means under
    the athlete's loads plus the noise continued from its state on day `n_cond` − 1 (module
    docstring, step 2). The state of each signal's (slow, fast) components is drawn from the
    filter's Gaussian: slow ~ N(m_s, v_s), fast | slow ~ N(m_f + c/v_s·(slow − m_s), v_f −
    c²/v_s) (on a measured day the two sum to the measured residual exactly)."""
    n_draws, n_days = len(p["mu_hrv"]), len(series.load)
    means = observation_means(p, latent_states(p, series.load, series.hi_load),
                              weekdays(series.dates))
    observed = observed_targets(series)
    fast, slow = np.empty((n_draws, len(TARGETS))), np.empty((n_draws, len(TARGETS)))
    for k, target in enumerate(TARGETS):
        resid = observed[target][None, :n_cond] - means[target][:, :n_cond]
        states = filter_residuals(resid, np.asarray(p[NOISE_SIGMA[target]], dtype=float),
                                  noise_components(p, target))
        (m_s, m_f), (v_s, v_f, c) = states.mean[-1].T, states.cov[-1].T
        z = rng.standard_normal((2, n_draws))
        slow[:, k] = m_s + np.sqrt(np.maximum(v_s, 0.0)) * z[0]
        beta = np.where(v_s > 0, c / np.where(v_s > 0, v_s, 1.0), 0.0)
        fast[:, k] = (m_f + beta * (slow[:, k] - m_s)
                      + np.sqrt(np.maximum(v_f - beta * c, 0.0)) * z[1])
    noise = continue_noise(AthleteParams.from_mapping(p), fast, slow, n_days - n_cond, rng)
    out = {}
    for k, target in enumerate(TARGETS):
        y = np.full((n_draws, n_days), np.nan)
        y[:, n_cond:] = means[target][:, n_cond:] + noise[..., k]
        out[target] = logit_to_recovery(y) if target == "recovery" else y
    return out


def check_athlete(model, rows: pd.DataFrame, config: CheckConfig) -> AthleteCheck | None:
    """Personalise, simulate and compare one athlete (module docstring); None when the athlete
    has too few measured days before or after the conditioning period."""
    athlete = str(rows["user_id"].iloc[0])
    rows = rows.sort_values("date")
    start = rows["date"].min()
    n_cond = config.condition_days
    end = start + pd.Timedelta(days=n_cond + config.max_future_days - 1)
    rows = rows[rows["date"] <= end]
    head = rows[rows["date"] < start + pd.Timedelta(days=n_cond)]
    measured_any = head["hrv_rmssd_ms"].notna() | head["rhr_bpm"].notna()
    if measured_any.sum() < 7:
        return None
    series = series_from_frame(rows)
    if len(series.load) <= n_cond:
        return None
    future = slice(n_cond, len(series.load))
    seen_future = (np.isfinite(series.hrv[future]) | np.isfinite(series.rhr[future])).sum()
    if seen_future < config.min_future_days:
        return None
    rng = _athlete_rng(config.seed, athlete, "personalise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rough weights are part of what is checked
        person = model.personalize(head, rng)
    draws = person.params
    n_draws = len(draws["mu_hrv"])
    rng = _athlete_rng(config.seed, athlete, "simulate")
    pick = rng.integers(0, n_draws, size=config.replicates)
    p = {k: np.asarray(v)[pick] for k, v in draws.items()}
    sim = simulate_future(p, series, n_cond, rng)
    calendar = rows.set_index("date").reindex(
        pd.DatetimeIndex(series.dates.astype("datetime64[ns]")))
    trimp_known = pd.to_numeric(calendar["load_trimp"], errors="coerce").to_numpy(dtype=float)
    measured_all = _report_units(series)
    measured, simulated, bands, head_mean, whole = {}, {}, {}, {}, {}
    for target in TARGETS:
        y = measured_all[target]
        whole[target] = whole_number_device(_native(target, y))
        measured[target] = y[future]
        simulated[target] = measure(target, np.asarray(sim[target])[:, future], y[future],
                                    whole[target])
        bands[target] = measure(target, np.asarray(sim[target])[:, future], y[future], False)
        h = y[:n_cond]
        head_mean[target] = float(np.nanmean(h)) if np.isfinite(h).any() else math.nan
    check = AthleteCheck(athlete, series.load[future] * LOAD_SCALE_TRIMP,
                         np.isfinite(trimp_known[future]), measured, simulated, bands,
                         head_mean,
                         whole, ess=person.ess)
    _effects(check, draws, series, n_cond, config, rng, getattr(model, "drift_", None) or {})
    return check


def _effects(check: AthleteCheck, draws: dict[str, np.ndarray], series, n_cond: int,
             config: CheckConfig, rng: np.random.Generator, drift: dict) -> None:
    """Fill `check.effect` / `check.deviation` (module docstring, `effect_slope`); `drift`:
    the model's noise drift (`WorldModel.drift_`), used by the one-day forecasts."""
    n_draws = len(draws["mu_hrv"])
    keep = rng.choice(n_draws, size=min(config.effect_draws, n_draws), replace=False)
    p = {k: np.asarray(v)[keep] for k, v in draws.items()}
    n_days = len(series.load)
    # morning m = d + 1 after load day d; days d ≥ n_cond − 1 so that m is a future morning
    mornings = np.arange(max(n_cond, WARM_START_DAYS + 1), n_days)
    known = check.load_known
    day_known = np.concatenate([np.zeros(n_cond, bool), known])  # over the whole calendar
    mornings = mornings[day_known[mornings - 1]]
    if not mornings.size:
        return
    effects = load_effects(p, series.load, series.hi_load)  # (S, T) per target
    gaussians = forecast_gaussians(p, series, mornings, 1, drift)
    observed = {"hrv": series.hrv, "rhr": series.rhr, "recovery": series.recovery_logit}
    for target in TARGETS:
        y = observed[target][mornings]
        mean = gaussians[target][0][:, :, 0].mean(axis=1)  # (O,) mixture mean
        effect = effects[target][:, mornings - 1].mean(axis=0)
        ok = np.isfinite(y)
        check.effect[target] = effect[ok]
        check.deviation[target] = (y - (mean - effect))[ok]


# ---------------------------------------------------------------------------------------------
# Records.


def _record(athlete: str, target: str, statistic: str, measured: float, simulated: float,
            n: int, lo: float | None = None, hi: float | None = None) -> dict:
    return {"athlete": athlete, "target": target, "statistic": statistic,
            "measured": _clean(measured), "simulated": _clean(simulated), "n": int(n),
            "lo": _clean(lo), "hi": _clean(hi)}


def _clean(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def athlete_records(check: AthleteCheck) -> list[dict]:
    """The per-athlete records of one `AthleteCheck` (every statistic but `c2st_auc`)."""
    out = []
    hard, rest = day_groups(check.load_trimp, check.load_known)
    for target in TARGETS:
        y = check.measured[target]
        n = int(np.isfinite(y).sum())
        if n < 7:
            continue
        sims, partner = check.simulated[target], PARTNER[target]
        measured = _series_statistics(y, hard, rest, check.measured[partner])
        per_rep = [_series_statistics(s, hard, rest, other)
                   for s, other in zip(sims, check.simulated[partner])]
        if target == "recovery":
            measured["baseline_reading"] = baseline_reading(y, check.measured["hrv"],
                                                            check.measured["rhr"])
            for r, rec, hrv, rhr in zip(per_rep, sims, check.simulated["hrv"],
                                        check.simulated["rhr"]):
                r["baseline_reading"] = baseline_reading(rec, hrv, rhr)
        for stat, value in measured.items():
            out.append(_record(check.athlete, target, stat, value,
                               _nanmean([r[stat] for r in per_rep]), n))
        for level in (0.5, 0.9):
            hits = band_hits(y, check.bands[target], level)
            out.append(_record(check.athlete, target, f"band{round(100 * level)}_coverage",
                               hits.mean(), level, hits.size))
        effect, deviation = check.effect.get(target), check.deviation.get(target)
        if effect is not None and effect.size >= 3:
            slope, lo, hi = ols_slope(effect, deviation)
            out.append(_record(check.athlete, target, "effect_slope", slope, 1.0, effect.size,
                               lo, hi))
    return out


def ols_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """OLS slope of y on x with an intercept and its normal 95 % interval (NaN if x is
    constant)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if x.size < 3 or sxx <= 1e-12 * max(1.0, float(x @ x)):
        return math.nan, math.nan, math.nan
    slope = float(xc @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float(resid @ resid) / (x.size - 2) / sxx)
    return slope, slope - 1.96 * se, slope + 1.96 * se


def within_slope(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    """Pooled slope with each group centred (athlete fixed effects)."""
    num = den = 0.0
    for x, y in zip(xs, ys):
        xc = x - x.mean()
        num += float(xc @ (y - y.mean()))
        den += float(xc @ xc)
    return num / den if den > 0 else math.nan


def pooled_records(checks: Sequence[AthleteCheck], per_athlete: Sequence[dict],
                   config: CheckConfig) -> list[dict]:
    """The `"all"` records (module docstring)."""
    out = []
    frame = pd.DataFrame(per_athlete)
    rng = np.random.default_rng([config.seed, zlib.crc32(b"pooled")])
    for target in TARGETS:
        if frame.empty:
            break
        rows = frame[frame["target"] == target]
        for stat in STATISTICS:
            g = rows[rows["statistic"] == stat]
            if stat.startswith("band"):
                if len(g):
                    share = float((g["measured"] * g["n"]).sum() / g["n"].sum())
                    out.append(_record("all", target, stat, share, float(g["simulated"].iloc[0]),
                                       int(g["n"].sum())))
                continue
            if stat in ("c2st_auc", "effect_slope"):
                continue
            g = g.dropna(subset=["measured", "simulated"])
            if len(g):
                out.append(_record("all", target, stat, float(g["measured"].median()),
                                   float(g["simulated"].median()), int(g["n"].sum())))
        xs = [c.effect[target] for c in checks if target in c.effect and c.effect[target].size >= 3]
        ys = [c.deviation[target] for c in checks
              if target in c.effect and c.effect[target].size >= 3]
        if xs:
            slope = within_slope(xs, ys)
            boots = []
            for _ in range(config.n_boot):
                pick = rng.integers(0, len(xs), size=len(xs))
                boots.append(within_slope([xs[i] for i in pick], [ys[i] for i in pick]))
            lo, hi = (np.nanquantile(boots, [0.025, 0.975]) if np.isfinite(boots).any()
                      else (math.nan, math.nan))
            out.append(_record("all", target, "effect_slope", slope, 1.0,
                               sum(x.size for x in xs), lo, hi))
        out.extend(c2st_records(checks, target, config))
    return out


# ---------------------------------------------------------------------------------------------
# Classifier two-sample test.


def window_features(y: np.ndarray, load_trimp: np.ndarray, whole_units: np.ndarray,
                    head_mean: float, partner: np.ndarray) -> np.ndarray:
    """`WINDOW_FEATURES` of one window (NaN where undefined; the classifier takes NaN)."""
    seen = np.isfinite(y)
    v = y[seen]
    nan = math.nan
    diffs = np.diff(y)
    diffs = diffs[np.isfinite(diffs)]
    native = whole_units[seen]
    change = y[1:] - y[:-1]
    ok = np.isfinite(change)
    response = nan
    if ok.sum() >= 3 and np.std(load_trimp[:-1][ok]) > 0:
        response = float(np.polyfit(load_trimp[:-1][ok], change[ok], 1)[0])
    return np.array([
        v.mean() if v.size else nan,
        v.std() if v.size > 1 else nan,
        v.min() if v.size else nan,
        v.max() if v.size else nan,
        np.abs(diffs).mean() if diffs.size else nan,
        lag_autocorrelation(y, 1) if v.size >= MIN_PAIRS else nan,
        seen.mean(),
        float(np.mean(np.abs(native - np.round(native)) < 1e-9)) if native.size else nan,
        (v.mean() - head_mean) if v.size and math.isfinite(head_mean) else nan,
        response,
        float(np.mean(load_trimp)),
        float(np.std(load_trimp)),
        same_morning_correlation(y, partner),
    ])


def c2st_windows(checks: Sequence[AthleteCheck], target: str, config: CheckConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (n, F), label 1 = real / 0 = simulated (n,), athlete index (n,)): every
    non-overlapping window with ≥ 7 measured days, and `sims_per_window` replicates of it."""
    features, labels, groups = [], [], []
    w = config.window_days
    for index, check in enumerate(checks):
        y, partner = check.measured[target], check.measured[PARTNER[target]]
        sims, partner_sims = check.simulated[target], check.simulated[PARTNER[target]]
        for start in range(0, y.size - w + 1, w):
            window = slice(start, start + w)
            if np.isfinite(y[window]).sum() < 7:
                continue
            load = check.load_trimp[window]
            features.append(window_features(y[window], load, _native(target, y[window]),
                                            check.head_mean[target], partner[window]))
            labels.append(1)
            groups.append(index)
            for r in rng.choice(sims.shape[0], size=config.sims_per_window, replace=False):
                s = sims[r, window]
                features.append(window_features(s, load, _native(target, s),
                                                check.head_mean[target],
                                                partner_sims[r, window]))
                labels.append(0)
                groups.append(index)
    if not features:
        return np.zeros((0, len(WINDOW_FEATURES))), np.zeros(0, int), np.zeros(0, int)
    return np.array(features), np.array(labels), np.array(groups)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties count half); NaN without both classes."""
    from scipy.stats import rankdata

    labels = np.asarray(labels)
    n_pos = int(np.sum(labels == 1))
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _impute(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing features → the training median (0 where a column is all missing), plus one
    missing-indicator column per feature."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-NaN column
        fill = np.nan_to_num(np.nanmedian(train, axis=0))
    def done(x):
        missing = np.isnan(x)
        return np.hstack([np.where(missing, fill[None, :], x), missing.astype(float)])
    return done(train), done(test)


def _oof_scores(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                seed: int) -> np.ndarray:
    """Out-of-fold classifier scores under athlete-grouped K-fold, K = min(5, athletes)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    scores = np.full(labels.size, 0.5)
    weights = np.where(labels == 1, 1.0 / max(labels.sum(), 1),
                       1.0 / max((labels == 0).sum(), 1))
    folds = GroupKFold(n_splits=min(5, np.unique(groups).size))
    for train, test in folds.split(features, labels, groups):
        if len(np.unique(labels[train])) < 2:
            continue
        x_train, x_test = _impute(features[train], features[test])
        clf = GradientBoostingClassifier(n_estimators=100, max_depth=2, learning_rate=0.1,
                                         subsample=0.8, random_state=seed)
        clf.fit(x_train, labels[train], sample_weight=weights[train])
        scores[test] = clf.predict_proba(x_test)[:, 1]
    return scores


def grouped_auc(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int,
                n_boot: int = 200) -> tuple[float, float, float]:
    """Out-of-fold ROC AUC of a gradient boosting classifier (100 depth-2 trees, missing
    features imputed with the training median beside a missing indicator) under athlete-grouped
    K-fold (K = min(5, athletes)), and its 95 % percentile bootstrap interval: athletes are
    resampled with replacement and the whole cross-validation is rerun on each resample (a
    repeated athlete stays in one fold), so the interval holds the classifier's own variance
    too, not only which athletes were drawn. NaN with fewer than 2 athletes."""
    athletes = np.unique(groups)
    if athletes.size < 2 or len(np.unique(labels)) < 2:
        return math.nan, math.nan, math.nan
    value = auc(labels, _oof_scores(features, labels, groups, seed))
    rng = np.random.default_rng([seed, zlib.crc32(b"c2st-boot")])
    members = [np.flatnonzero(groups == a) for a in athletes]
    boots = []
    for b in range(n_boot):
        drawn = rng.integers(0, athletes.size, size=athletes.size)
        if np.unique(drawn).size < 2:
            continue
        pick = np.concatenate([members[i] for i in drawn])
        boots.append(auc(labels[pick], _oof_scores(features[pick], labels[pick], groups[pick],
                                                   seed + 1 + b)))
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots.size else (math.nan, math.nan)
    return value, float(lo), float(hi)


def c2st_records(checks: Sequence[AthleteCheck], target: str, config: CheckConfig) -> list[dict]:
    rng = np.random.default_rng([config.seed, zlib.crc32(f"c2st-{target}".encode())])
    features, labels, groups = c2st_windows(checks, target, config, rng)
    if labels.size == 0:
        return []
    auc, lo, hi = grouped_auc(features, labels, groups, config.seed, config.n_boot)
    records = [_record("all", target, "c2st_auc", auc, 0.5, int(labels.sum()), lo, hi)]
    for j, name in enumerate(WINDOW_FEATURES):
        alone = grouped_auc(features[:, [j]], labels, groups, config.seed, n_boot=0)[0]
        records.append(_record("all", target, f"c2st_auc_{name}", alone, 0.5,
                               int(labels.sum())))
    return records


# ---------------------------------------------------------------------------------------------
# The whole check.


def unseen_athletes(model, frame: pd.DataFrame) -> list[str]:
    """Athletes of `frame` the model was not fitted on (sorted ids)."""
    fitted = set(getattr(model, "athletes_", {}))
    return sorted(u for u in frame["user_id"].astype(str).unique() if u not in fitted)


def run_check(model, frame: pd.DataFrame, config: CheckConfig = CheckConfig(),
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """The check's records (module docstring) on every athlete of `frame` not in the fit;
    per-athlete records first (athletes sorted), then the `"all"` records. Raises `DataError`
    when no athlete can be checked."""
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    athletes = unseen_athletes(model, frame)
    if not athletes:
        raise DataError("(data)", "every athlete in the data was in the model's fit: nothing "
                                  "out of sample to check")
    checks, records, skipped = [], [], []
    for athlete in athletes:
        check = check_athlete(model, frame[frame["user_id"] == athlete], config)
        if check is None:
            skipped.append(athlete)
            continue
        checks.append(check)
        records += athlete_records(check)
        if progress:
            progress(f"{athlete}: checked ({int(np.isfinite(check.measured['hrv']).sum())} HRV, "
                     f"{int(np.isfinite(check.measured['rhr']).sum())} RHR days after "
                     f"{config.condition_days}; personalisation ESS {check.ess:.0f})")
    if skipped and progress:
        progress(f"skipped {len(skipped)} athletes outside the fit with under 7 measured days "
                 f"in their first {config.condition_days} or under {config.min_future_days} "
                 f"after ({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''})")
    if not checks:
        raise DataError("(data)", f"no athlete outside the fit has ≥ 7 measured days in its "
                                  f"first {config.condition_days} and ≥ {config.min_future_days} "
                                  f"after")
    return records + pooled_records(checks, records, config)


def summary_table(records: Sequence[dict]) -> str:
    """The `"all"` records as a text table (measured, simulated, interval, days); the
    single-feature classifier AUCs as one line per target, its three most telling features."""
    rows = [r for r in records if r["athlete"] == "all"]
    if not rows:
        return "(no pooled records)"
    prefix = "c2st_auc_"
    table = [r for r in rows if not r["statistic"].startswith(prefix)]
    frame = pd.DataFrame(table)[["target", "statistic", "measured", "simulated", "lo", "hi", "n"]]
    with pd.option_context("display.width", 200, "display.max_rows", None):
        text = frame.round(4).to_string(index=False)
    for target in dict.fromkeys(r["target"] for r in rows):
        alone = sorted(((r["measured"], r["statistic"][len(prefix):]) for r in rows
                        if r["target"] == target and r["statistic"].startswith(prefix)
                        and r["measured"] is not None), reverse=True)[:3]
        if alone:
            text += (f"\n{target}: what tells simulated from measured alone (AUC): "
                     + ", ".join(f"{name} {value:.2f}" for value, name in alone))
    return text
