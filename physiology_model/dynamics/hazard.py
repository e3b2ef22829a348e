"""Daily illness/injury hazard: rises with load spikes, low recovery and monotonous training.

A linear Banister model rewards unbounded load (DESIGN §5); the saturating dose-response in
`performance.py` is one brake, this hazard the other. The probability that a new injury or
illness begins on day d + 1, given the training up to and including day d and the recovery
measured on the morning of day d, is

    h_d = sigmoid(β0 + β_spike·max(0, ACWR_d − 1.3)
                     + β_rec·max(0, (50 − recovery_d)/50)
                     + β_mono·max(0, min(monotony_d, 4) − 2))

- ACWR_d, the acute:chronic workload ratio: mean daily load over the 7 days ending on d divided
  by the mean over the 28 days ending on d (the "coupled" rolling-average form of Hulin et al.
  2016, Br J Sports Med 50:231, and Gabbett 2016, Br J Sports Med 50:273). Gabbett's synthesis
  puts the lowest risk at ACWR ~0.8-1.3 and a steep rise above ~1.5 (injury likelihood of order
  2-4× the sweet spot's). The ACWR has been strongly criticised since: the coupled ratio is
  mathematically correlated with its own numerator (Lolli et al. 2019, Br J Sports Med), the
  choice of windows is arbitrary and the evidence rests on a few team-sport cohorts
  (Impellizzeri et al. 2020, Int J Sports Physiol Perform 15:907). It is used here as a simple,
  transparent "load spike" term, not as a validated predictor; the shipped data do not identify
  its coefficient (docs/identifiability.md, `check_against_injury_reports`).
- recovery_d in % (WHOOP's score or the world model's predicted recovery): illness is preceded
  or accompanied by lower HRV and raised resting HR (e.g. Radin et al. 2020, Lancet Digit Health
  2:e85, on Fitbit resting HR and influenza-like illness). The link also runs the other way
  (illness lowers recovery), which inflates any association measured in observational data.
- monotony_d: mean / SD of the daily loads over the 7 days ending on d (Foster 1998, Med Sci
  Sports Exerc 30:1164: illness episodes followed periods of high load with monotony above ~2).

Priors (`HAZARD_PRIORS`) are literature-informed orders of magnitude, not fitted values.

Timing: the simulator steps day d with its action (load), computes h_d from the loads up to d and
the morning-d recovery, and draws whether day d + 1 starts an injury/illness episode. Loads are
in the world model's unit w = load_trimp / 100 (params.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from physiology_model.dynamics.params import LOAD_SCALE_TRIMP
from physiology_model.dynamics.performance import Prior

ArrayLike: TypeAlias = float | np.ndarray
"""A scalar or an array (see each function for the shapes)."""


HAZARD_PRIORS: dict[str, Prior] = {
    "intercept": Prior(
        "normal", float(np.log(0.005 / 0.995)), 0.7, "logit of the daily probability",
        "order of one new injury or illness every few months in recreational athletes (daily "
        "probability of order 0.5 %, 90 % prior interval ~0.16-1.6 %); the shipped reports show "
        "~1 % per reported day (`check_against_injury_reports`)"),
    "spike_coef": Prior(
        "lognormal", 1.8, 0.5, "logit per unit of ACWR above 1.3",
        "Gabbett 2016 (Br J Sports Med 50:273) and Hulin et al. 2016 (Br J Sports Med 50:231): "
        "risk at ACWR of order 1.5-2 is of order 2-4× the 0.8-1.3 range; 1.8 gives an odds "
        "ratio of ~2.5 at ACWR 1.8 and ~3.5 at 2.0"),
    "low_recovery_coef": Prior(
        "lognormal", 0.7, 0.6, "logit per unit of (50 − recovery %)/50",
        "order of a doubling of the odds at recovery 0 vs ≥ 50 %; lower HRV / raised resting "
        "HR accompany illness (e.g. Radin et al. 2020, Lancet Digit Health 2:e85); no study "
        "gives this coefficient"),
    "monotony_coef": Prior(
        "lognormal", 0.5, 0.7, "logit per unit of monotony above 2",
        "Foster 1998 (Med Sci Sports Exerc 30:1164): illness followed high-strain, monotonous "
        "weeks (monotony > ~2); the size is an order-of-magnitude guess"),
}
"""Priors of the hazard coefficients (see the module docstring)."""


TERM_MAX = 1e6
"""Upper clip of each hinge term, so that an absurd input (ACWR of 1e300, an infinite
monotony) gives a probability of 1, never NaN."""


@dataclass(frozen=True)
class HazardParams:
    """Coefficients (scalars or one value per athlete, shape (n,)) and thresholds of the hazard.

    The coefficients are sampled (`sample_hazard_params`); the thresholds are fixed config.
    """

    intercept: ArrayLike
    """β0: logit of the daily probability with no spike, recovery ≥ the threshold and low
    monotony."""
    spike_coef: ArrayLike
    """β_spike: logit per unit of ACWR above `acwr_threshold`."""
    low_recovery_coef: ArrayLike
    """β_rec: logit per unit of (recovery_threshold_pct − recovery)/recovery_threshold_pct."""
    monotony_coef: ArrayLike
    """β_mono: logit per unit of monotony above `monotony_threshold` (capped)."""
    acwr_threshold: float = 1.3
    """Upper end of Gabbett's (2016) 0.8-1.3 "sweet spot"."""
    recovery_threshold_pct: float = 50.0
    """Recovery (%) below which the low-recovery term starts (WHOOP's "yellow" zone is 34-66)."""
    monotony_threshold: float = 2.0
    """Foster's (1998) monotony above which illness became more frequent."""
    monotony_cap: float = 4.0
    """Monotony is capped here, so a perfectly constant week (SD 0) does not give an infinite
    term."""


def sample_hazard_params(n: int, rng: np.random.Generator) -> HazardParams:
    """`n` coefficient sets drawn from `HAZARD_PRIORS`, each field shape (n,)."""
    return HazardParams(**{name: prior.sample(n, rng) for name, prior in HAZARD_PRIORS.items()})


def typical_hazard_params() -> HazardParams:
    """The prior medians of `HAZARD_PRIORS`."""
    return HazardParams(**{name: prior.center for name, prior in HAZARD_PRIORS.items()})


def _per_athlete(value: ArrayLike, ndim: int) -> np.ndarray:
    """A coefficient (scalar or (n,)) shaped to broadcast against inputs of `ndim` dimensions
    whose first axis is the athlete: (n,) → (n, 1, ...)."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 1 and ndim > 1:
        v = v.reshape(v.shape + (1,) * (ndim - 1))
    return v


def hazard_terms(
    acwr: ArrayLike,
    recovery_pct: ArrayLike,
    monotony: ArrayLike,
    params: HazardParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three hinge terms (spike, low recovery, monotony), each ≥ 0, of the inputs' broadcast
    shape. A NaN input gives a term of 0 (unknown is treated as unremarkable: a device without a
    recovery score adds no recovery risk); terms are clipped at `TERM_MAX`."""
    acwr, recovery, mono = (np.asarray(x, dtype=float) for x in (acwr, recovery_pct, monotony))
    with np.errstate(invalid="ignore"):
        spike = np.maximum(0.0, acwr - params.acwr_threshold)
        low = np.maximum(0.0, (params.recovery_threshold_pct - recovery)
                         / params.recovery_threshold_pct)
        monotonous = np.maximum(0.0, np.minimum(mono, params.monotony_cap)
                                - params.monotony_threshold)
    # NaN → 0 (unknown); absurd values are clipped so that 0·term and sums stay finite
    return tuple(np.clip(np.nan_to_num(t, nan=0.0), 0.0, TERM_MAX)
                 for t in (spike, low, monotonous))


def daily_hazard(
    acwr: ArrayLike,
    recovery_pct: ArrayLike,
    monotony: ArrayLike,
    params: HazardParams,
) -> np.ndarray:
    """Probability (0-1) that an injury/illness episode starts on the next day.

    Inputs are arrays of one shape, (A,) (one day of A athletes, as in the batched simulator)
    or (A, T) (A athletes × T days), or scalars: `acwr` unit-free (`acute_chronic_ratio`),
    `recovery_pct` in % (0-100), `monotony` unit-free (`training_monotony`). `params` fields
    are scalars or (A,) (one coefficient set per athlete, broadcast over days). Vectorised
    numpy; the logistic is evaluated stably for any logit.
    """
    spike, low, mono = hazard_terms(acwr, recovery_pct, monotony, params)
    ndim = max(spike.ndim, low.ndim, mono.ndim)
    logit = (_per_athlete(params.intercept, ndim)
             + _per_athlete(params.spike_coef, ndim) * spike
             + _per_athlete(params.low_recovery_coef, ndim) * low
             + _per_athlete(params.monotony_coef, ndim) * mono)
    return _sigmoid(logit)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1/(1 + e^{−x}) without overflow warnings for large |x|."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _trailing_mean(loads: np.ndarray, days: int) -> np.ndarray:
    """Mean of the `days` values ending on each day (fewer at the start), along the last axis."""
    n = loads.shape[-1]
    prefix = np.concatenate([np.zeros(loads.shape[:-1] + (1,)), np.cumsum(loads, axis=-1)],
                            axis=-1)
    end = np.arange(1, n + 1)
    start = np.maximum(end - days, 0)
    return (prefix[..., end] - prefix[..., start]) / (end - start)


def acute_chronic_ratio(
    loads: np.ndarray,
    acute_days: int = 7,
    chronic_days: int = 28,
    chronic_floor: float = 0.2,
) -> np.ndarray:
    """Coupled rolling-average ACWR on each day, shape of `loads` (..., T).

    Acute = mean load of the `acute_days` ending on day d (day d included: its training is
    done when the next day's risk is assessed), chronic = mean of the `chronic_days` ending on
    d (Hulin et al. 2016; Gabbett 2016). Early days use the days available. `chronic_floor`
    (load units/day; 0.2 = 20 TRIMP/day) stops a near-zero chronic load from making the ratio
    explode after a break. Loads must be finite (fill unknown days first). For one step of a
    batched simulator pass the last `chronic_days` loads, (A, 28), and take `[..., -1]`.
    """
    w = np.asarray(loads, dtype=float)
    acute = _trailing_mean(w, acute_days)
    chronic = _trailing_mean(w, chronic_days)
    return acute / np.maximum(chronic, chronic_floor)


def training_monotony(loads: np.ndarray, days: int = 7, cap: float = 4.0) -> np.ndarray:
    """Foster's (1998) monotony on each day: mean / SD (sample SD) of the `days` daily loads
    ending on day d, shape of `loads` (..., T); capped at `cap` (a constant week has SD 0), 0
    for a week without load. Needs at least 2 days (NaN before)."""
    w = np.asarray(loads, dtype=float)
    mean = _trailing_mean(w, days)
    mean_sq = _trailing_mean(w * w, days)
    count = np.minimum(np.arange(1, w.shape[-1] + 1), days)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(mean_sq - mean * mean, 0.0) * count / (count - 1)
        monotony = np.where(mean > 0, mean / np.sqrt(variance), 0.0)
    monotony = np.minimum(np.nan_to_num(monotony, nan=cap, posinf=cap), cap)
    return np.where(count >= 2, monotony, np.nan)


# --------------------------------------------------------------------------------------------
# Check against the real injury/illness reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HazardCheckConfig:
    """Settings of `check_against_injury_reports`."""

    episode_gap_days: int = 7
    """A report of injury on day d+1 is a new episode (onset) only when no injury was reported
    on days d−gap+1..d; days inside an episode are not at risk."""
    min_history_days: int = 28
    """Days at risk start once the athlete has this many days of history (a full chronic
    window)."""
    min_known_load_share: float = 0.75
    """Days whose 28-day window has a smaller share of known loads are not used (the ACWR of a
    mostly filled window says nothing)."""
    penalty_c: float = 1.0
    """Inverse L2 strength of the logistic regression (scikit-learn's C) on the unit-scale
    hinge terms: shrinks the coefficients towards 0 (a conservative check of the priors)."""
    n_bootstrap: int = 1000
    """Resamples of athletes (cluster bootstrap) for the coefficient intervals."""
    sensitivity_recovery_lag_days: int = 2
    """The sensitivity fit uses the recovery of day d − lag instead of d, to lessen the pull of
    reverse causation (an illness already under way lowering recovery before it is reported)."""
    seed: int = 20251126


TERMS: tuple[str, ...] = ("spike", "low_recovery", "recovery_missing", "monotony")
"""Regressors of the check: the three hazard terms plus an indicator of a missing recovery
(PMData has no recovery score; its low-recovery term is 0)."""


def _athlete_days(g: pd.DataFrame, params: HazardParams, config: HazardCheckConfig,
                  recovery_lag: int) -> pd.DataFrame:
    """One athlete's at-risk days with the hazard terms and the next-day onset outcome."""
    g = g.sort_values("date").set_index("date")
    dates = pd.date_range(g.index.min(), g.index.max(), freq="D")
    g = g.reindex(dates)
    w = g["load_trimp"].to_numpy(float) / LOAD_SCALE_TRIMP
    known = ~np.isnan(w)
    if not known.any():
        return pd.DataFrame()
    # Project convention: an unknown load inside the span is the athlete's median known load.
    w_filled = np.where(known, w, np.median(w[known]))
    acwr = acute_chronic_ratio(w_filled)
    mono = training_monotony(w_filled, cap=params.monotony_cap)
    known_share = (np.convolve(known.astype(float), np.ones(28))[: len(w)]
                   / np.minimum(np.arange(1, len(w) + 1), 28))
    recovery = g["recovery_pct"].to_numpy(float)
    if recovery_lag:
        recovery = np.concatenate([np.full(recovery_lag, np.nan), recovery[:-recovery_lag]])
    injury = g["injury"].to_numpy(float)
    spike, low, monotonous = hazard_terms(acwr, recovery, mono, params)
    n = len(w)
    recent = np.zeros(n, dtype=bool)  # any injury report = 1 on days d−gap+1..d
    for lag in range(config.episode_gap_days):
        recent[lag:] |= injury[: n - lag] == 1
    nxt = np.concatenate([injury[1:], [np.nan]])
    at_risk = (~np.isnan(nxt) & ~recent & (np.arange(n) >= config.min_history_days - 1)
               & (known_share >= config.min_known_load_share))
    idx = np.flatnonzero(at_risk)
    return pd.DataFrame({
        "date": dates[idx], "onset": (nxt[idx] == 1).astype(int),
        "acwr": acwr[idx], "recovery_pct": recovery[idx], "monotony": mono[idx],
        "spike": spike[idx], "low_recovery": low[idx],
        "recovery_missing": np.isnan(recovery[idx]).astype(float),
        "monotony_term": monotonous[idx]})


def injury_risk_days(frame: pd.DataFrame, config: HazardCheckConfig = HazardCheckConfig(),
                     recovery_lag: int = 0) -> pd.DataFrame:
    """At-risk days of every athlete with injury/illness reports in a canonical daily frame.

    One row per (user_id, day d) where day d + 1 has a report (`injury` 0/1), no injury was
    reported in the `episode_gap_days` up to d, the athlete has `min_history_days` of history
    and enough known loads; `onset` = 1 when d + 1 reports an injury. Columns: user_id, source,
    date, onset, acwr, recovery_pct, monotony and the terms `spike`, `low_recovery`,
    `recovery_missing`, `monotony_term`.
    """
    params = typical_hazard_params()
    parts = []
    for user_id, g in frame.groupby("user_id", sort=True):
        if not (g["injury"].notna()).any():
            continue
        days = _athlete_days(g, params, config, recovery_lag)
        if days.empty:
            continue
        days.insert(0, "user_id", user_id)
        days.insert(1, "source", str(g["source"].dropna().iloc[0]) if g["source"].notna().any()
                    else "unknown")
        parts.append(days)
    if not parts:
        return pd.DataFrame(columns=["user_id", "source", "date", "onset", *TERMS])
    return pd.concat(parts, ignore_index=True)


def _design(days: pd.DataFrame) -> np.ndarray:
    return days[["spike", "low_recovery", "recovery_missing", "monotony_term"]].to_numpy(float)


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """L2-penalised logistic regression, scikit-learn's objective: minimise
    C·Σ log-loss + ½·‖β‖² over the coefficients β (the intercept unpenalised), by Newton's
    method (a handful of regressors, so each fit takes about a millisecond)."""
    design = np.column_stack([np.ones(len(y)), x])
    penalty = np.eye(design.shape[1]) / c
    penalty[0, 0] = 0.0
    beta = np.zeros(design.shape[1])
    beta[0] = np.log((y.mean() + 1e-9) / (1.0 - y.mean() + 1e-9))
    for _ in range(100):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (p - y) + penalty @ beta
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian + 1e-10 * np.eye(len(beta)), gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(beta[0]), beta[1:].copy()


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney form, ties counted half); NaN without both
    classes."""
    from scipy.stats import rankdata

    y = np.asarray(y, int)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _fit_and_score(days: pd.DataFrame, config: HazardCheckConfig,
                   rng: np.random.Generator) -> dict[str, Any]:
    """Penalised logistic fit, cluster-bootstrap intervals, in-sample and leave-one-athlete-out
    AUC, and the AUC and log loss of the prior's typical hazard on the same days."""
    x, y = _design(days), days["onset"].to_numpy(int)
    users = days["user_id"].to_numpy()
    intercept, coef = _fit_logistic(x, y, config.penalty_c)
    names = ["intercept", "spike_coef", "low_recovery_coef", "recovery_missing_coef",
             "monotony_coef"]
    estimate = np.concatenate([[intercept], coef])
    unique = np.unique(users)
    rows = {u: np.flatnonzero(users == u) for u in unique}
    boot = []
    for _ in range(config.n_bootstrap):
        pick = np.concatenate([rows[u] for u in rng.choice(unique, len(unique), replace=True)])
        if 0 < y[pick].sum() < len(pick):
            b0, b = _fit_logistic(x[pick], y[pick], config.penalty_c)
            boot.append(np.concatenate([[b0], b]))
    boot = np.array(boot)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)

    linear = intercept + x @ coef
    held_out = np.empty(len(y))
    for u in unique:
        test = rows[u]
        train = np.setdiff1d(np.arange(len(y)), test)
        if 0 < y[train].sum() < len(train):
            b0, b = _fit_logistic(x[train], y[train], config.penalty_c)
            held_out[test] = b0 + x[test] @ b
        else:
            held_out[test] = 0.0

    prior = typical_hazard_params()
    p_prior = daily_hazard(days["acwr"], days["recovery_pct"], days["monotony"], prior)
    base_rate = y.mean()

    def log_loss(p: np.ndarray) -> float:
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    prior_draws = sample_hazard_params(config.n_bootstrap, rng)
    return {
        "n_days": len(y), "n_onsets": int(y.sum()), "n_athletes": len(unique),
        "n_athletes_with_onset": int(days.loc[days["onset"] == 1, "user_id"].nunique()),
        "onset_rate_per_day": float(base_rate),
        "coefficients": {n: {"estimate": float(e), "ci95": [float(a), float(b)]}
                         for n, e, a, b in zip(names, estimate, lo, hi)},
        "n_bootstrap_fits": len(boot),
        "auc_in_sample": _auc(y, linear),
        "auc_leave_one_athlete_out": _auc(y, held_out),
        "prior_typical": {
            "auc": _auc(y, p_prior),
            "mean_predicted_rate": float(np.mean(p_prior)),
            "log_loss": log_loss(p_prior),
            "log_loss_constant_observed_rate": log_loss(np.full(len(y), base_rate)),
        },
        "prior_intercept_rate_90": [float(1 / (1 + np.exp(-v)))
                                    for v in HAZARD_PRIORS["intercept"].interval(0.9)],
        "prior_coefficient_ci_overlap": {
            name: bool(lo[i] <= np.percentile(getattr(prior_draws, name), 95)
                       and hi[i] >= np.percentile(getattr(prior_draws, name), 5))
            for i, name in enumerate(names) if name in HAZARD_PRIORS},
    }


def _describe_terms(days: pd.DataFrame) -> dict[str, Any]:
    """Onset rates with and without each term active (the raw evidence behind the fit)."""
    out = {}
    for term in ("spike", "low_recovery", "monotony_term"):
        active = days[term] > 0
        out[term] = {
            "days_active": int(active.sum()),
            "onsets_active": int(days.loc[active, "onset"].sum()),
            "rate_active": float(days.loc[active, "onset"].mean()) if active.any() else None,
            "days_inactive": int((~active).sum()),
            "onsets_inactive": int(days.loc[~active, "onset"].sum()),
            "rate_inactive": float(days.loc[~active, "onset"].mean()) if (~active).any()
            else None,
        }
    return out


def check_against_injury_reports(
    frame: pd.DataFrame,
    config: HazardCheckConfig = HazardCheckConfig(),
) -> dict[str, Any]:
    """Do the real injury/illness reports support the hazard's priors?

    `frame`: a canonical daily frame (`load_exports(paths).frame`). For every athlete with
    `injury` reports (WHOOP journal illness/injury answers, PMData injury reports), builds the
    at-risk days (`injury_risk_days`), fits a penalised logistic regression of next-day onset
    on the hazard's terms (plus a missing-recovery indicator), with 95 % intervals from a
    bootstrap over athletes, in-sample and leave-one-athlete-out AUC, and scores the prior's
    typical hazard on the same days. A sensitivity fit uses recovery lagged by
    `sensitivity_recovery_lag_days` against reverse causation.
    Returns a JSON-ready dict with the counts per source, the raw rates per term, both fits and
    the config.
    """
    rng = np.random.default_rng(config.seed)
    days = injury_risk_days(frame, config)
    if days.empty or days["onset"].sum() == 0:
        raise ValueError("no injury/illness onsets in the reports: nothing to check")
    by_source = {s: {"athletes": int(g["user_id"].nunique()), "days": len(g),
                     "onsets": int(g["onset"].sum())}
                 for s, g in days.groupby("source")}
    main = _fit_and_score(days, config, rng)
    lag = config.sensitivity_recovery_lag_days
    lagged_days = injury_risk_days(frame, config, recovery_lag=lag)
    lagged = _fit_and_score(lagged_days, config, rng)
    # PMData reports are sparse and mostly filed when injured (its onset rate per reported day
    # is several times WHOOP's), so the main fit's missing-recovery indicator is in effect a
    # PMData intercept; a WHOOP-only fit checks that the conclusions do not hinge on it.
    whoop_days = days[days["source"].str.startswith("whoop")]
    whoop_only = (_fit_and_score(whoop_days, config, rng)
                  if whoop_days["onset"].sum() > 0 else None)
    return {
        "by_source": by_source,
        "term_rates": _describe_terms(days),
        "fit": main,
        f"fit_recovery_lag_{lag}d": lagged,
        "fit_whoop_only": whoop_only,
        "priors": {name: {**asdict(p), "interval_90": list(p.interval(0.9))}
                   for name, p in HAZARD_PRIORS.items()},
        "config": asdict(config),
    }


__all__ = [
    "HAZARD_PRIORS", "HazardCheckConfig", "HazardParams", "acute_chronic_ratio",
    "check_against_injury_reports", "daily_hazard", "hazard_terms", "injury_risk_days",
    "sample_hazard_params", "training_monotony", "typical_hazard_params",
]
