"""Model-predictive control through the world model, and the oracle (DESIGN §8).

Both planners re-plan every morning with the cross-entropy method (CEM; Rubinstein 1999,
Methodol Comput Appl Probab 1:127; as used for planning by PETS, Chua et al. 2018, NeurIPS)
over legal H-day session sequences, scored by `simulator.rollout.evaluate_sequences`, and
execute the first day of the best plan found. They differ only in the `RolloutStart` the
score function gets (mbrl-lib's design: the optimiser sees an evaluation function, not a model):

- `MPCPlanner` sees only what a policy sees (the 48 features and the mask). Its belief
  (`AthleteBelief`, which the distilled planner of `agents.distill` shares) about
  an athlete's physiology parameters starts from the population (`WorldModel.sample_athletes`)
  with the ln HRV and RHR intercepts set so that the observed 28-day baselines are predicted,
  and becomes the athlete's posterior (`WorldModel.personalize` on the athlete's series,
  `AthleteSeries`, of the readings and loads it has seen) on the `personalize_days` schedule,
  from day 7.
  The S scenarios take the belief's componentwise median (default) or S of its draws
  (`MPCConfig.parameters`). The Banister states are tracked from the loads seen
  (`load_yesterday_trimp`), starting at the steady state of the day-0 chronic (CTL) and acute
  (ATL) loads; today's AR(1) residuals are the observed readings minus the predicted means.
  Performance is not observed: its parameters are the prior medians
  (`performance.typical_performance_params`) at the athlete's habitual load (day-0 CTL); the
  hazard's are the prior medians (`hazard.typical_hazard_params`). For a real athlete the
  belief first lives through the export's past mornings (`replay`) and personalises on all of
  them on the day of the plan, or takes the posterior the caller already has for them
  (`periodize plan`: the world model's, `WorldModel.athlete_params`).
- `OraclePlanner` reads `Simulation.oracle_view()`: the simulated athlete's true parameters,
  states, current noise, injury days and action history; S scenarios are noise paths only. It
  plans over a long horizon (the days left, up to `horizon_days` = 60) with more candidates:
  the upper bound every policy is reported against. `PerformanceBlindOracle` is the oracle
  with the prior medians of the performance response instead of the truth: what knowing
  everything a wearable could reveal is worth.

CEM over discrete plans: each planned day has a categorical distribution over the six sessions
(day 0 restricted to today's mask). Each iteration samples K − 1 plans plus the best plan so
far, projects them onto the action-history rules (`planning.project_sequences`), scores them
with common random numbers, and moves the distribution towards the elite share's frequencies.
Warm start: tomorrow's distribution is today's shifted by a day (the new last day copies the
distribution of the day a week earlier, keeping weekly structure), mixed with `exploration` of
the uniform distribution; the shifted best plan is tomorrow's incumbent.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from agents.lanes import lane, lane_rng
from agents.policy import check_batch, weekday_of
from physiology_model.data.table import ACTIONS
from physiology_model.dynamics import banister
from physiology_model.dynamics.hazard import daily_hazard, typical_hazard_params
from physiology_model.dynamics.observation import (
    WARM_START_DAYS,
    channel_decays,
    component_sds,
    logit_to_recovery,
    recovery_to_logit,
    split_residual,
)
from physiology_model.dynamics.params import (
    AR_PARAMS,
    ATHLETE_PARAMS,
    HI_LOAD_SCALE_MIN,
    LOAD_SCALE_TRIMP,
    PARAM_NAMES,
    state_normaliser,
)
from physiology_model.dynamics.performance import (
    sample_performance_params,
    typical_performance_params,
)
from physiology_model.dynamics.step import (
    AthleteParams,
    AthleteState,
    morning_means,
    transition,
)
from physiology_model.model.arrays import fill_missing_loads
from physiology_model.model.forecast import AthleteSeries
from physiology_model.model.personalize import effective_sample_size
from simulator.constraints import REST, TRAINED_DAY, UNKNOWN_DAY, ActionHistory
from simulator.observation import FEATURE_INDEX
from simulator.rollout import (
    ACTION_U,
    ACTION_W,
    N_ACTIONS,
    RING_DAYS,
    ObjectiveConfig,
    PreparedRollout,
    RolloutResult,
    RolloutStart,
    continuation_load,
    draw_innovations,
    planned_load_risk,
    project_sequences,
)

_F = FEATURE_INDEX
_NOISE_COLUMNS = [0, 2]
"""The noises the planner reads (ln HRV, recovery logit) among `observation.TARGETS`."""


# --------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CEMConfig:
    """Settings of the cross-entropy optimiser."""

    horizon_days: int = 21
    """H: days planned in detail (7-28 for the MPC); shortened to the days left."""
    candidates: int = 64
    """K: plans scored per athlete and iteration (the incumbent best included)."""
    iterations: int = 3
    """CEM iterations of a warm-started call."""
    cold_start_iterations: int = 8
    """Iterations of the first call of an episode (no distribution to start from)."""
    elite_fraction: float = 0.125
    """Share of the K plans whose frequencies the distribution moves towards."""
    smoothing: float = 0.2
    """Share of the old distribution kept at each update (the rest is the elite frequencies)."""
    exploration: float = 0.1
    """Share of the uniform distribution mixed into a warm-started distribution."""

    def __post_init__(self) -> None:
        if self.horizon_days < 1 or self.candidates < 2:
            raise ValueError(f"horizon_days must be ≥ 1 and candidates ≥ 2, got "
                             f"{self.horizon_days}, {self.candidates}")
        if self.iterations < 1 or self.cold_start_iterations < 1:
            raise ValueError("iterations and cold_start_iterations must be ≥ 1")
        for name in ("elite_fraction", "smoothing", "exploration"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.elite_fraction * self.candidates < 1:
            raise ValueError("elite_fraction × candidates must give at least one elite plan")


@dataclass(frozen=True)
class MPCConfig:
    """Settings of `MPCPlanner`."""

    cem: CEMConfig = field(default_factory=CEMConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    scenarios: int = 8
    """S: parameter draws per athlete (each with its own noise path)."""
    episode_days: int | None = 90
    """The objective ends after this many days of the episode (the env's `episode_days`);
    None: it ends `continuation_days` after the plan (a real athlete has no episode end)."""
    continuation_days: int = 28
    """With `episode_days=None`: days after the plan at which the plan's end state is valued."""
    personalize_days: tuple[int, ...] = (7, 14, 28, 56)
    """Episode days (≥ 7) on which the athlete's posterior is recomputed from its history."""
    personalize_proposals: int = 1000
    personalize_draws: int = 200
    personalize_rounds: int = 1
    """Proposals, kept draws and adaptive rounds of those personalisations
    (`WorldModel.personalize`; the model's own defaults are 2,000, 400 and 3). The planner uses
    the draws' median or a few of them, and the adaptive rounds matter for histories of
    months (whoop-u02's 56 days: ESS 74 in one round, 81 in three), so a fifth of the work
    keeps a 56-day personalisation morning under 50 ms; `benchmarks/mpc_sweep.py` compares
    the planner with the full personalisation (setting `personalize_full`)."""
    personalize_on_recovery: bool = False
    """Whether those personalisations read the recovery score besides HRV and RHR. Off: since
    the personalisation updates the HRV, RHR and recovery coefficients jointly (0f4ec77), the
    recovery series moves the HRV and RHR loadings the planner plans with, and the planner
    lost 9 points of the oracle's gain on the tuning cohort (91.9 → 82.8 %,
    benchmarks/results/mpc_sweep_at_*.json); reading HRV and RHR only it keeps 95.2 %
    against 78.8 % reading recovery (`benchmarks/mpc_sweep.py --n 100 --setting
    'recovery={"personalize_on_recovery": true}'`, mpc_sweep_recovery.json). A device's
    recovery score is itself computed from the same night's HRV and resting HR (WHOOP), so on
    real data it is not independent evidence about them either. (`periodize plan` and
    `recommend` hand the belief the world model's posterior of a real athlete, which reads
    recovery: `AthleteBelief.replay(posterior=)`.)"""
    parameters: str = "median"
    """How the physiology posterior enters the plan: `median` (every scenario the posterior's
    componentwise median, scenarios differing only by their noise paths: a plug-in estimate)
    or `draws` (each scenario its own posterior draw: the expectation over the posterior).
    `median` is the default because it did better: on 96 athletes of a tuning cohort (seed 2000,
    not the evaluation's 1000; 90 days) it raised the return by 0.34 ± 0.13 and ΔP by
    0.73 ± 0.12 % over 8 draws (paired mean ± SE; 16 draws did no better). With draws the
    expected penalty is averaged over implausible parameter combinations as well, and the
    plans become more cautious than the athlete needs."""
    summary_draws: int = 200
    """With `parameters="median"`: population draws per athlete the median is taken over before
    the first personalisation."""
    performance_draws: int = 0
    """How the performance response, which nothing observed reveals, enters the plan: 0 plans
    with the prior medians (a plug-in), D > 0 with D draws from its prior per athlete, drawn
    at the episode's start, so that ΔP is the expectation over what the planner does not know
    (`planning.RolloutStart`: performance draws are separate from the S scenarios). The
    plug-in is the default because the expectation did not plan better on the tuning cohort
    (`benchmarks/mpc_sweep.py`, `benchmarks/results/mpc_sweep_performance_draws.json`,
    docs/results.md). Performance tests (`MPCPlanner.observe_performance`) weigh the draws, so they need D > 0."""
    performance_test_cv: float = 0.015
    """Within-athlete coefficient of variation of a performance test that the belief assumes
    (the noise of ln(test result)): a 5-km time trial of trained runners repeats within 1.5 %
    (Fisher et al. 2017, J Hum Kinet 57:139), a self-paced 60-min treadmill run within 2.7 %
    (Schabort, Hopkins & Hawley 1998, Int J Sports Med 19:48)."""

    def __post_init__(self) -> None:
        if self.scenarios < 1:
            raise ValueError(f"scenarios must be ≥ 1, got {self.scenarios}")
        if self.episode_days is not None and self.episode_days < 1:
            raise ValueError(f"episode_days must be ≥ 1 or None, got {self.episode_days}")
        if self.continuation_days < 0:
            raise ValueError(f"continuation_days must be ≥ 0, got {self.continuation_days}")
        if self.parameters not in ("draws", "median"):
            raise ValueError(f"parameters must be 'draws' or 'median', got {self.parameters!r}")
        if self.summary_draws < 1:
            raise ValueError(f"summary_draws must be ≥ 1, got {self.summary_draws}")
        if self.performance_draws < 0:
            raise ValueError(f"performance_draws must be ≥ 0, got {self.performance_draws}")
        if not 0.0 < self.performance_test_cv < 1.0:
            raise ValueError(f"performance_test_cv must be in (0, 1), got "
                             f"{self.performance_test_cv}")
        if (self.personalize_proposals < 2 or self.personalize_draws < 1
                or self.personalize_rounds < 1):
            raise ValueError("personalize_proposals must be ≥ 2, personalize_draws and "
                             "personalize_rounds ≥ 1")
        if any(d < 7 for d in self.personalize_days):
            raise ValueError("personalisation needs at least 7 days: personalize_days must be "
                             f"≥ 7, got {self.personalize_days}")


ORACLE_CEM = CEMConfig(horizon_days=60, candidates=96, iterations=3, cold_start_iterations=12)
"""The oracle's optimiser: a long horizon and more candidates."""


@dataclass(frozen=True)
class Plan:
    """One morning's plan for N athletes over H days (day 0 = today).

    `actions` (N, H) session indices (`table.ACTIONS`); predicted means over the scenarios on
    the morning after each planned day, (N, H): `recovery_pct` (with its 10 % and 90 %
    quantiles `recovery_pct_q10` / `recovery_pct_q90`), `ln_hrv` (ln ms) and `hrv_ms` (the
    exponential of the mean ln HRV); `injury_risk` (N, H) the daily hazard of each planned day;
    `performance` (N, H + 1) latent performance (% of baseline) on mornings 0 … H; `score`,
    `expected_return`, `delta_performance` (N,) of the plan (`planning.RolloutResult`).
    """

    actions: np.ndarray
    recovery_pct: np.ndarray
    recovery_pct_q10: np.ndarray
    recovery_pct_q90: np.ndarray
    ln_hrv: np.ndarray
    hrv_ms: np.ndarray
    injury_risk: np.ndarray
    performance: np.ndarray
    score: np.ndarray
    expected_return: np.ndarray
    delta_performance: np.ndarray

    def sessions(self, athlete: int = 0) -> list[str]:
        """The planned session names of one athlete."""
        return [ACTIONS[a] for a in self.actions[athlete]]


def _plan_from(actions: np.ndarray, result: RolloutResult) -> Plan:
    """A `Plan` from the best plans (N, H) and their rollout with paths (K = 1)."""
    paths = result.paths
    recovery = paths["recovery_pct"][:, :, 0]  # (N, S, H)
    ln_hrv = paths["ln_hrv"][:, :, 0].mean(axis=1)
    return Plan(actions=actions, recovery_pct=recovery.mean(axis=1),
                recovery_pct_q10=np.quantile(recovery, 0.1, axis=1),
                recovery_pct_q90=np.quantile(recovery, 0.9, axis=1),
                ln_hrv=ln_hrv, hrv_ms=np.exp(ln_hrv),
                injury_risk=paths["hazard"][:, :, 0].mean(axis=1),
                performance=paths["performance"][:, :, 0].mean(axis=1),
                score=result.score[:, 0], expected_return=result.expected_return[:, 0],
                delta_performance=result.delta_performance[:, 0])


# --------------------------------------------------------------------------------------------
# The optimiser
# --------------------------------------------------------------------------------------------


def sample_plans(probs: np.ndarray, today_mask: np.ndarray, k: int,
                 rng: np.random.Generator) -> np.ndarray:
    """`k` plans per athlete from per-day categorical distributions `probs` (N, H, 6), day 0
    restricted to `today_mask` (N, 6) → (N, k, H) int64."""
    p = np.array(probs, dtype=float)
    p[:, 0] = np.where(today_mask, p[:, 0], 0.0)
    total = p[:, 0].sum(axis=1, keepdims=True)
    uniform_allowed = today_mask / today_mask.sum(axis=1, keepdims=True)
    p[:, 0] = np.where(total > 0, p[:, 0] / np.where(total > 0, total, 1.0), uniform_allowed)
    cdf = np.cumsum(p, axis=2)
    cdf[..., -1] = 1.0  # round-off must not leave mass above the last action
    u = rng.random((p.shape[0], k, p.shape[1], 1))
    return np.minimum((u >= cdf[:, None]).sum(axis=3), N_ACTIONS - 1).astype(np.int64)


def elite_frequencies(plans: np.ndarray, scores: np.ndarray, n_elite: int) -> np.ndarray:
    """Per-day session frequencies (N, H, 6) of each athlete's `n_elite` best plans."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n_elite]
    elite = np.take_along_axis(plans, order[:, :, None], axis=1)  # (N, E, H)
    return np.eye(N_ACTIONS)[elite].mean(axis=1)


def shift_distribution(probs: np.ndarray, best: np.ndarray, horizon: int,
                       exploration: float) -> tuple[np.ndarray, np.ndarray]:
    """Yesterday's distribution (N, H', 6) and best plan (N, H') moved one day on, to length
    `horizon`: new days copy the day a week earlier (uniform / rest when the plan is shorter
    than a week); the distribution is mixed with `exploration` of the uniform one."""
    p, b = probs[:, 1:], best[:, 1:]
    while p.shape[1] < horizon:
        if p.shape[1] >= 7:
            p = np.concatenate([p, p[:, -7:-6]], axis=1)
            b = np.concatenate([b, b[:, -7:-6]], axis=1)
        else:
            p = np.concatenate([p, np.full((p.shape[0], 1, N_ACTIONS), 1.0 / N_ACTIONS)], axis=1)
            b = np.concatenate([b, np.full((b.shape[0], 1), REST, dtype=b.dtype)], axis=1)
    p, b = p[:, :horizon], b[:, :horizon]
    return (1.0 - exploration) * p + exploration / N_ACTIONS, b


class RecedingHorizonCEM:
    """The CEM optimiser with its warm start, batched over athletes (module docstring)."""

    def __init__(self, config: CEMConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the warm start (a new episode)."""
        self.probs_: np.ndarray | None = None
        self.best_: np.ndarray | None = None
        self.initial_probs_: np.ndarray | None = None
        """The distribution the last call started from (N, H, 6), for inspection."""
        self.initial_best_: np.ndarray | None = None

    def optimize(self, horizon: int, today_mask: np.ndarray,
                 project: Callable[[np.ndarray], np.ndarray],
                 score: Callable[[np.ndarray], np.ndarray],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Best legal plan (N, H) and its score (N,). `project` makes plans (N, K, H) legal;
        `score` maps legal plans to scores (N, K), higher is better."""
        cfg = self.config
        n = today_mask.shape[0]
        warm = self.probs_ is not None and self.probs_.shape[0] == n
        if warm:
            probs, best = shift_distribution(self.probs_, self.best_, horizon, cfg.exploration)
            iterations = cfg.iterations
        else:
            probs = np.full((n, horizon, N_ACTIONS), 1.0 / N_ACTIONS)
            best = None
            iterations = cfg.cold_start_iterations
        self.initial_probs_ = probs.copy()
        self.initial_best_ = None if best is None else best.copy()
        n_elite = max(1, round(cfg.elite_fraction * cfg.candidates))
        best_score = np.full(n, -np.inf)
        for _ in range(iterations):
            plans = sample_plans(probs, today_mask, cfg.candidates, rng)
            if best is not None:
                plans[:, 0] = best
            plans = project(plans)
            scores = score(plans)
            top = np.argmax(scores, axis=1)
            improved = scores[np.arange(n), top] > best_score
            candidate = plans[np.arange(n), top]
            best = candidate if best is None else np.where(improved[:, None], candidate, best)
            best_score = np.maximum(best_score, scores[np.arange(n), top])
            probs = (cfg.smoothing * probs
                     + (1.0 - cfg.smoothing) * elite_frequencies(plans, scores, n_elite))
        self.probs_, self.best_ = probs, best
        return best, best_score


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """A context in which BLAS runs on one thread. A planning call's matrix products are small
    (K plans × 2H loads × S·H·3 outputs per athlete): OpenBLAS's threads cost more than they
    save, e.g. planning ran 3× slower with them on a loaded 2-core machine. threadpoolctl
    (a scikit-learn dependency) sets the limit; without it, nothing changes."""
    try:
        return _blas_controller().limit(limits=1, user_api="blas")
    except ImportError:
        return contextlib.nullcontext()


def plan_from_start(optimizer: RecedingHorizonCEM, start: RolloutStart, today_mask: np.ndarray,
                    objective: ObjectiveConfig, rng: np.random.Generator) -> Plan:
    """Optimise each athlete's plan from `start` under `today_mask` (N, 6) and describe it."""
    with single_threaded_blas():
        return _plan_from_start(optimizer, start, today_mask, objective, rng)


def _plan_from_start(optimizer: RecedingHorizonCEM, start: RolloutStart,
                     today_mask: np.ndarray, objective: ObjectiveConfig,
                     rng: np.random.Generator) -> Plan:
    horizon = int(min(optimizer.config.horizon_days, np.max(start.days_left)))
    innovations = draw_innovations(start.n_athletes, start.n_scenarios, horizon, rng,
                                   slow=start.has_slow_noise)

    def project(plans: np.ndarray) -> np.ndarray:
        return project_sequences(plans, start.history, today_mask, start.injured_days,
                                 objective.safety)

    rollout = PreparedRollout(start, horizon, innovations, objective)

    def score(plans: np.ndarray) -> np.ndarray:
        return rollout.evaluate(plans).score

    best, _ = optimizer.optimize(horizon, today_mask, project, score, rng)
    described = rollout.evaluate(best[:, None, :], return_paths=True)
    return _plan_from(best, described)


# --------------------------------------------------------------------------------------------
# The MPC planner: estimating each athlete from what it observes
# --------------------------------------------------------------------------------------------


def _morning_readings(obs: np.ndarray) -> dict[str, np.ndarray]:
    """This morning's measured ln HRV, RHR and recovery (NaN where not measured), (N,) each."""
    def measured(value: str, flag: str) -> np.ndarray:
        return np.where(obs[:, _F[flag]] > 0.5, obs[:, _F[value]], np.nan)

    return {"ln_hrv": measured("ln_hrv", "hrv_observed"),
            "rhr_bpm": measured("rhr_bpm", "rhr_observed"),
            "recovery_pct": measured("recovery_pct", "recovery_observed")}


def _steady_state(chronic: np.ndarray, acute: np.ndarray, hi_load: np.ndarray,
                  decays: np.ndarray) -> np.ndarray:
    """Morning state (N, S, 5) of an athlete trained at the chronic load (fitness) with the
    acute load's fatigue: each channel is the steady state of the load its time scale sees."""
    slow = banister.steady_morning_state(chronic[:, None], hi_load[:, None], decays)
    fast = banister.steady_morning_state(acute[:, None], hi_load[:, None], decays)
    return np.where(np.arange(banister.N_CHANNELS) == banister.FITNESS, slow, fast)


def _history_from_days_since_rest(days_since_rest: np.ndarray, width: int) -> np.ndarray:
    """Executed-day codes (N, width) consistent with the observed days since the last rest day:
    the days after it are trained (type unknown), the rest day itself is rest, older unknown."""
    codes = np.full((len(days_since_rest), width), UNKNOWN_DAY, dtype=np.int64)
    lag = np.arange(width, 0, -1)  # days before today of each column
    dsr = np.rint(days_since_rest).astype(np.int64)
    codes = np.where(lag[None, :] < dsr[:, None], TRAINED_DAY, codes)
    return np.where(lag[None, :] == dsr[:, None], REST, codes)


def _grid(params: Any, n: int, s: int) -> Any:
    """Parameter dataclass with scalar or (N,) fields → (N, S) fields (None kept)."""
    def widen(v: Any) -> Any:
        if v is None:
            return None
        v = np.asarray(v, dtype=float)
        if v.ndim == 0:
            return np.full((n, s), float(v))
        return np.broadcast_to(v.reshape(n, -1), (n, s)).copy()

    return replace(params, **{k: widen(v) for k, v in vars(params).items()
                              if k in _GRID_FIELDS})


_GRID_FIELDS = {"fitness_gain", "fatigue_gain", "variable_fatigue_gain", "tau_fit_days",
                "tau_fat_days", "tau_gain_days", "baseline", "intercept", "spike_coef",
                "low_recovery_coef", "monotony_coef"}


class _RecedingHorizon(ABC):
    """What the planner and the oracle share as `Policy`s: a seeded random stream, a warm-
    started optimiser (`self._optimizer`) and `act` = the first day of `plan`."""

    _optimizer: RecedingHorizonCEM
    _seed: Any

    def reset(self, seed: Any = None) -> None:
        """A new episode: forget the warm start; reseed when `seed` is given: an int (one
        stream for the batch) or one `SeedSequence` per athlete (`agents.lanes`: each athlete
        draws what it would draw alone)."""
        if seed is not None:
            self._seed = seed
            self._rng = lane_rng(seed)
        self._optimizer.reset()

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's session of each athlete, (N,) int64, allowed by `mask`."""
        return self.plan(obs, mask).actions[:, 0].copy()

    @abstractmethod
    def plan(self, obs: np.ndarray, mask: np.ndarray) -> Plan:
        """This morning's plan of each athlete (each subclass says from what)."""


SESSION_DAYS = 6
"""Days of session history in the belief's features (the default safety rules read 6)."""
BELIEF_FEATURE_NAMES: tuple[str, ...] = (
    *(f"belief_{name}" for name in (*PARAM_NAMES, *AR_PARAMS)),
    "belief_fitness", "belief_fatigue", "belief_fast_fatigue", "belief_hrv_residual",
    "belief_recovery_residual",
    *(f"belief_day-{lag}_{kind}" for lag in range(SESSION_DAYS, 0, -1)
      for kind in (*ACTIONS, "trained")))
"""What `AthleteBelief.features` reports, in order: the posterior median of every physiology
parameter (log of the positive ones; the ln HRV and RHR intercepts relative to the observed
28-day baselines, so that the numbers do not depend on the athlete's level), the tracked
latent fitness, fatigue and fast fatigue, today's ln HRV and recovery-logit residuals, and the
sessions of the last days as the safety rules read them (one-hot, oldest first; `trained`: a
training day of unknown type, from before the first morning). Tried and left out: the
performance model's tracked states and the hazard's acute:chronic ratio and monotony (the same
agreement with the planner, 64.8 % vs 64.6 %, on 256 athletes)."""
PERFORMANCE_FEATURE_NAMES: tuple[str, ...] = (
    "belief_perf_ln_fitness_gain", "belief_perf_ln_variable_fatigue_gain",
    "belief_perf_ln_tau_fit", "belief_perf_ln_tau_fat", "belief_perf_ln_tau_gain",
    "belief_perf_steady_load", "belief_perf_ess_share")
"""What `AthleteBelief.features` adds when the belief draws the performance response
(`MPCConfig.performance_draws` > 0, the planner of an athlete with performance tests): the
weighted means over the draws of the log gains and time constants and of the steady daily load
that performance favours (`simulator.rollout.continuation_load`, load units), with the draws'
weights after the tests so far, and the effective share of the draws (1/Σw²/D: 1 before two
tests, smaller the more the tests tell)."""


def belief_feature_names(config: MPCConfig) -> tuple[str, ...]:
    """The names of `AthleteBelief.features` under `config`, in order."""
    return BELIEF_FEATURE_NAMES + (PERFORMANCE_FEATURE_NAMES if config.performance_draws else ())


class AthleteBelief:
    """What the MPC planner knows about each athlete and how it learns it (module docstring):
    parameter draws (population, then the athlete's posterior on the `personalize_days`
    schedule), the Banister and performance states tracked from the loads seen, today's
    residuals, the action history and the load ring. Batched over athletes.

    Call `observe(obs)` once per morning, then `record_executed(actions)` with the sessions
    done that day; `rollout_start(obs)` is what the planner optimises from and `features()`
    what a network can learn from (`agents.distill`). `rng` is shared with the caller (the
    planner draws its plans from the same stream)."""

    def __init__(self, model: Any, config: MPCConfig, rng: np.random.Generator) -> None:
        self.model = model
        self.config = config
        self.known_performance: Any = None
        """For diagnostics (`benchmarks/mpc_gap.py`): `PerformanceParams` of the N athletes
        to use instead of the prior medians (what the planner would do if it knew how each
        athlete's performance responds, which nothing it observes tells it)."""
        self.known_hazard: Any = None
        """Likewise `HazardParams` instead of the prior medians."""
        self.reset(rng)

    def reset(self, rng: np.random.Generator) -> None:
        """Forget the athletes (a new episode); draw from `rng` from now on."""
        self._rng = rng
        self._n: int | None = None
        self.day = 0
        """Mornings observed so far this episode (since `replay`, if it was called)."""
        self._personalize_next = False
        self._given: list[dict[str, np.ndarray]] | None = None
        self._pending_test: np.ndarray | None = None
        self.diagnostics: dict[str, list[float]] = {"personalize_ess": [],
                                                    "performance_ess": []}

    def replay(self, observations: np.ndarray, actions: np.ndarray,
               tests: np.ndarray | None = None,
               posterior: Sequence[dict[str, np.ndarray]] | None = None) -> None:
        """Live through the athletes' past before planning from today: `observations`
        (D, N, F) of the D mornings before today and the sessions done on those days (D, N),
        and `tests` (D, N) the performance tests of those mornings (NaN: none;
        `observe_performance`). The belief learns from them as it would have day by day,
        personalises on the whole history at the next `observe` (today), and counts that
        morning as day 0 (an `episode_days` objective ends that many days after it).

        `posterior`: each athlete's posterior draws given its whole history, today included
        (N dicts of draws, `WorldModel.athlete_params`), when the caller has them. The belief
        then personalises nothing itself: it takes them at the next `observe` instead of the
        posterior of the whole history it would compute there, skips the personalisations of
        the past mornings (the one of today replaces all they fed), and tracks the past's
        Banister states and noise again from the first morning under them, as if it had known
        them all along. What it knows this morning therefore depends on the posterior and the
        data alone, not on the population draws it lived the past with."""
        obs = np.asarray(observations, dtype=float)
        acts = np.asarray(actions, dtype=np.int64)
        if obs.ndim != 3 or acts.shape != obs.shape[:2]:
            raise ValueError(f"replay needs observations (D, N, F) and actions (D, N), got "
                             f"{obs.shape} and {acts.shape}")
        if tests is not None and np.shape(tests) != acts.shape:
            raise ValueError(f"replay needs tests (D, N) like the actions, got "
                             f"{np.shape(tests)}")
        if posterior is not None and len(posterior) != obs.shape[1]:
            raise ValueError(f"replay needs one posterior per athlete ({obs.shape[1]}), got "
                             f"{len(posterior)}")
        self._given = None if posterior is None else list(posterior)
        for d, (day_obs, day_actions) in enumerate(zip(obs, acts)):
            if tests is not None and np.isfinite(tests[d]).any():
                self.observe_performance(tests[d])
            self.observe(day_obs)
            self.record_executed(day_actions)
        self.day = 0
        self._personalize_next = len(obs) > 0

    @property
    def n(self) -> int | None:
        """Athletes of this episode (None before the first `observe`)."""
        return self._n

    def observe(self, obs: np.ndarray) -> None:
        """This morning's observations (N, F): yesterday's load moves the states, the
        posterior is recomputed on a personalisation day, today's residuals are updated."""
        if self._n is None:
            self._start_episode(obs)
        elif obs.shape[0] != self._n:
            raise ValueError(f"the batch changed from {self._n} to {obs.shape[0]} athletes "
                             f"within an episode; call reset() first")
        else:
            self._record_yesterday(obs)
        if self._personalize_next:  # today, after a replay: the whole history's posterior
            self._personalize(self._given)
            self._personalize_next, self._given = False, None
        elif self.day in self.config.personalize_days and self._given is None:
            self._personalize()
        if self._pending_test is not None:
            self._condition_on_test(self._pending_test)
            self._pending_test = None
        self._update_residual(self._readings[-1], self._state, len(self._readings) - 1)
        self._obs = obs
        self.day += 1

    def observe_performance(self, results: np.ndarray) -> None:
        """Performance tests done this morning, before training: (N,) results in any unit
        proportional to performance (speed, power; NaN: no test). Call before this
        morning's `observe`; it weighs the performance draws by their likelihood
        (`_condition_on_test`)."""
        results = np.asarray(results, dtype=float)
        if self.config.performance_draws == 0 and self.known_performance is None:
            raise ValueError("performance tests weigh the planner's draws of the performance "
                             "response: set MPCConfig.performance_draws > 0")
        if results.ndim != 1 or (self._n is not None and len(results) != self._n):
            raise ValueError(f"observe_performance needs one result per athlete ({self._n}), "
                             f"got shape {results.shape}")
        if np.any(results[np.isfinite(results)] <= 0):
            raise ValueError("performance test results must be > 0 (a speed or a power)")
        self._pending_test = results

    def record_executed(self, actions: np.ndarray) -> None:
        """The sessions done today, (N,) int: tomorrow's update uses them for the safety
        history and the high-intensity share of the load reported."""
        a = np.asarray(actions, dtype=np.int64)
        if self._n is None or a.shape != (self._n,):
            raise ValueError(f"record_executed needs ({self._n},) actions after a morning "
                             f"was observed, got shape {a.shape}")
        self._last_action = a.copy()

    def features(self) -> np.ndarray:
        """The belief after this morning's `observe`, (N, len(belief_feature_names(config)))
        float32: medians over the scenarios (`BELIEF_FEATURE_NAMES`), then, when the belief
        draws the performance response, the draws' weighted summary
        (`PERFORMANCE_FEATURE_NAMES`)."""
        if self._n is None:
            raise ValueError("features() needs a morning observed first")
        obs = self._obs
        columns = []
        for name in (*PARAM_NAMES, *AR_PARAMS):
            value = np.median(self._physiology[name], axis=1)
            if name in ATHLETE_PARAMS and ATHLETE_PARAMS[name].transform == "exp":
                value = np.log(value)
            elif name == "mu_hrv":
                value = value - obs[:, _F["ln_hrv_baseline_28d"]]
            elif name == "mu_rhr":
                value = value - obs[:, _F["rhr_baseline_bpm"]]
            columns.append(value)
        columns.extend(np.median(self._latents(self._state), axis=1).T)
        columns.extend(np.median(self._residual, axis=1).T)
        days = self._history.array()[:, -SESSION_DAYS:]
        if days.shape[1] < SESSION_DAYS:  # safety rules that read fewer days
            days = np.pad(days, ((0, 0), (SESSION_DAYS - days.shape[1], 0)),
                          constant_values=UNKNOWN_DAY)
        sessions = days[:, :, None] == np.arange(N_ACTIONS)
        trained = (days == TRAINED_DAY)[:, :, None]
        history = np.concatenate([sessions, trained], axis=2).reshape(self._n, -1)
        parts = [np.stack(columns, axis=1), history]
        if self.config.performance_draws:
            weights = self._perf_weights
            ess_share = effective_sample_size(weights) / weights.shape[1]
            parts.append(np.concatenate([np.einsum("ndf,nd->nf", self._perf_summary, weights),
                                         ess_share[:, None]], axis=1))
        out = np.concatenate(parts, axis=1).astype(np.float32)
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def night_hazards(self) -> np.ndarray:
        """Tonight's injury/illness onset hazard of each session, (N, N_ACTIONS), after this
        morning's `observe`: `daily_hazard` of the loads reported so far followed by the
        session's nominal load, and of this morning's recovery, under the belief's hazard
        parameters (the population's typical ones, as the planner's roll-outs score their
        first day). 0 for an athlete injured this morning (no new episode can start)."""
        if self._n is None:
            raise ValueError("night_hazards() needs a morning observed first")
        loads = np.broadcast_to(ACTION_W[None, :, None], (self._n, N_ACTIONS, 1))
        acwr, monotony = (x[..., 0] for x in planned_load_risk(self._ring[:, None, :], loads))
        recovery = np.broadcast_to(
            np.asarray(self._readings[-1]["recovery_pct"], dtype=float)[:, None], acwr.shape)
        params = typical_hazard_params() if self.known_hazard is None else self.known_hazard
        hazard = daily_hazard(acwr, recovery, monotony, params)
        injured = self._obs[:, _F["injury"]] > 0.5
        return np.where(injured[:, None], 0.0, hazard)

    def rollout_start(self, obs: np.ndarray) -> RolloutStart:
        """What the plans of this morning are scored from."""
        cfg = self.config
        n = self._n
        if cfg.episode_days is not None:
            days_left = max(cfg.episode_days - (self.day - 1), 1)
        else:
            days_left = cfg.cem.horizon_days + cfg.continuation_days
        injured = obs[:, _F["injury"]] > 0.5
        injured_days = np.where(injured, round(cfg.objective.injury_mean_days), 0)
        return RolloutStart(
            physiology=self._physiology, performance=self._performance, hazard=self._hazard,
            state=self._state, perf_state=self._perf_state, residual=self._residual,
            residual_slow=self._noise_slow[..., _NOISE_COLUMNS],
            load_ring=self._ring, history=self._history.array().astype(np.int64),
            recovery_pct=self._readings[-1]["recovery_pct"],
            ln_hrv_baseline=obs[:, _F["ln_hrv_baseline_28d"]].astype(float),
            ln_hrv_baseline_sd=obs[:, _F["ln_hrv_baseline_sd_28d"]].astype(float),
            typical_recovery_pct=logit_to_recovery(self._physiology["mu_rec"]),
            injured_days=injured_days.astype(np.int64),
            days_left=np.full(n, days_left, dtype=np.int64),
            performance_weights=self._perf_weights,
            weekday=self._weekday(len(self._readings) - 1))

    # -- the estimate ------------------------------------------------------------------------
    def _start_episode(self, obs: np.ndarray) -> None:
        cfg = self.config
        n, s = obs.shape[0], cfg.scenarios
        self._n = n
        self._weekday0 = weekday_of(obs)  # of the first morning: the calendar of the readings
        chronic = np.maximum(obs[:, _F["ctl_trimp"]] / LOAD_SCALE_TRIMP, 0.0)
        acute = np.maximum(obs[:, _F["atl_trimp"]] / LOAD_SCALE_TRIMP, 0.0)
        hi = (obs[:, _F["z45_min_7d"]] + obs[:, _F["strength_min_7d"]]) / 7.0 / HI_LOAD_SCALE_MIN
        self._initial = (chronic, acute, np.maximum(hi, 0.0))
        per_athlete = s if cfg.parameters == "draws" else cfg.summary_draws
        draws = _per_lane(self._rng, n, lambda k, g, _: self.model.sample_athletes(
            k * per_athlete, g))
        self._physiology = self._scenario_parameters(
            {k: np.asarray(v, dtype=float).reshape(n, per_athlete) for k, v in draws.items()})
        self._anchor_baselines(obs)
        # Performance is never observed: prior medians (or draws) at the athlete's habitual
        # load.
        habitual = np.maximum(chronic, 0.1)
        draws = cfg.performance_draws
        if self.known_performance is not None:
            performance, d = self.known_performance, 1
        elif draws:
            performance, d = _per_lane(self._rng, n, lambda k, g, at: (
                sample_performance_params(k * draws, g, variable_dose=True,
                                          reference_load=np.repeat(habitual[at], draws)))), draws
        else:
            performance, d = typical_performance_params(reference_load=habitual), 1
        self._performance = _grid(performance, n, d)
        if cfg.performance_draws:  # each draw's summary for `features` (N, D, 6)
            perf = self._performance
            columns = [perf.fitness_gain, perf.variable_fatigue_gain, perf.tau_fit_days,
                       perf.tau_fat_days, 1.0 if perf.tau_gain_days is None  # linear: ln 1
                       else perf.tau_gain_days]
            self._perf_summary = np.stack(
                [*(np.log(np.maximum(np.broadcast_to(c, (n, d)), 1e-12)) for c in columns),
                 np.broadcast_to(continuation_load(perf, cfg.objective.safety), (n, d))],
                axis=2)
        self._hazard = _grid(typical_hazard_params() if self.known_hazard is None
                             else self.known_hazard, n, s)
        self._perf_state = _steady_state(chronic, acute, self._initial[2],
                                         self._performance.decays())
        self._state = self._initial_state()
        ring = np.empty((n, RING_DAYS))
        ring[:, :RING_DAYS - 7] = chronic[:, None]
        ring[:, RING_DAYS - 7:] = acute[:, None]
        ring[:, -1] = obs[:, _F["load_yesterday_trimp"]] / LOAD_SCALE_TRIMP
        self._ring = ring
        safety = cfg.objective.safety
        self._history = ActionHistory(n, safety)
        self._history.reset(initial=_history_from_days_since_rest(
            obs[:, _F["days_since_rest"]], safety.history_days))
        self._loads: list[tuple[np.ndarray, np.ndarray]] = []
        self._readings: list[dict[str, np.ndarray]] = [_morning_readings(obs)]
        self._start_noise()
        self._tests: list[tuple[np.ndarray, np.ndarray]] = []
        self._perf_weights = np.full((n, d), 1.0 / d)

    def predicted_performance(self) -> np.ndarray:
        """Each performance draw's P this morning from the loads seen, (N, D) (% of the
        untrained baseline)."""
        return self._performance.evaluate(self._perf_state)

    def _condition_on_test(self, results: np.ndarray) -> None:
        """Weigh each athlete's performance draws by the likelihood of its tests so far
        (`performance_test_weights`)."""
        self._tests.append((np.log(np.maximum(self.predicted_performance(), 1e-6)),
                            np.log(results)))
        self._perf_weights = performance_test_weights(
            np.stack([p for p, _ in self._tests], axis=2),
            np.stack([y for _, y in self._tests], axis=1), self.config.performance_test_cv)
        tested = np.isfinite(results)
        self.diagnostics["performance_ess"].extend(
            effective_sample_size(self._perf_weights[tested]).tolist())

    def _scenario_parameters(self, draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """S scenarios' parameters (N, S) from posterior draws (N, D): S draws picked at random
        (`parameters="draws"`), or the componentwise median repeated S times."""
        s = self.config.scenarios
        n, total = next(iter(draws.values())).shape
        if self.config.parameters == "median":
            return {k: np.repeat(np.median(v, axis=1, keepdims=True), s, axis=1)
                    for k, v in draws.items()}
        if total == s:
            return draws
        pick = np.stack([lane(self._rng, i).choice(total, size=s, replace=total < s)
                         for i in range(n)])
        return {k: np.take_along_axis(v, pick, axis=1) for k, v in draws.items()}

    def _initial_state(self) -> np.ndarray:
        chronic, acute, hi = self._initial
        return _steady_state(chronic, acute, hi, channel_decays(self._physiology))

    def _latents(self, state: np.ndarray) -> np.ndarray:
        decays = channel_decays(self._physiology)
        return state[..., :3] * state_normaliser(decays[..., :3])

    def _means(self, state: np.ndarray, day: int | None = None) -> dict[str, np.ndarray]:
        """Predicted ln HRV, RHR and recovery logit of each draw for morning `state`, (N, S),
        with the weekday offsets of reading `day` (an index into the readings; None: none)."""
        n, s = self._n, self.config.scenarios
        p = {k: v.reshape(-1) for k, v in self._physiology.items()}
        weekday = None if day is None else np.repeat(self._weekday(day), s)[:, None]
        means = morning_means(p, state, channel_decays(self._physiology), weekday)
        return {k: v.reshape(n, s) for k, v in means.items()}

    def _weekday(self, day: int) -> np.ndarray:
        """(N,) day of the week of reading `day` (0: the first morning of the episode)."""
        return (self._weekday0 + day) % 7

    def _anchor_baselines(self, obs: np.ndarray) -> None:
        """Population draws get the athlete's own ln HRV and RHR level: the intercepts are
        set so that each draw predicts the observed 28-day baselines in today's state."""
        state = self._initial_state()
        means = self._means(state)
        base_hrv = obs[:, _F["ln_hrv_baseline_28d"]][:, None]
        base_rhr = obs[:, _F["rhr_baseline_bpm"]][:, None]
        self._physiology["mu_hrv"] = self._physiology["mu_hrv"] + base_hrv - means["hrv"]
        self._physiology["mu_rhr"] = self._physiology["mu_rhr"] + base_rhr - means["rhr"]

    def _record_yesterday(self, obs: np.ndarray) -> None:
        """Yesterday's training, now reported by this morning's features, moves the states."""
        w = np.maximum(obs[:, _F["load_yesterday_trimp"]] / LOAD_SCALE_TRIMP, 0.0)
        nominal_w, nominal_u = ACTION_W[self._last_action], ACTION_U[self._last_action]
        # the high-intensity share of the session asked for, scaled to the load reported
        u = np.where(nominal_w > 0, nominal_u * w / np.where(nominal_w > 0, nominal_w, 1.0), 0.0)
        self._loads.append((w, u))
        params = AthleteParams.from_mapping(self._physiology, performance=self._performance)
        athlete = transition(AthleteState(self._state, self._perf_state, self._noise_fast,
                                          self._noise_slow),
                             params, (w[:, None], u[:, None]), None)
        self._state, self._perf_state = athlete.banister, athlete.performance
        self._ring = np.concatenate([self._ring[:, 1:], w[:, None]], axis=1)
        self._history.push(self._last_action)
        self._readings.append(_morning_readings(obs))

    def _start_noise(self) -> None:
        """Each signal's noise before the first morning, split into its slow and fast
        components (`_update_residual`): 0, with the filter at the stationary distribution
        of the current parameters (var slow, var fast, cov 0)."""
        n, s = self._n, self.config.scenarios
        self._noise_slow = np.zeros((n, s, 3))
        self._noise_fast = np.zeros((n, s, 3))
        params = AthleteParams.from_mapping(self._physiology)
        sd_fast, sd_slow = component_sds(params.noise("sigma"), params.noise("slow_share"))
        self._noise_cov = np.stack([sd_slow ** 2, sd_fast ** 2, np.zeros_like(sd_fast)], axis=-1)
        self._residual = np.zeros((n, s, 2))

    def _update_residual(self, reading: dict[str, np.ndarray], state: np.ndarray, day: int
                         ) -> None:
        """The noise of each draw on the morning of `reading` (reading `day`, in Banister
        `state`): the reading minus the draw's mean (with that morning's weekday offsets),
        split into its slow and fast components by a Kalman filter
        (`observation.split_residual`; with no slow component, the whole residual is the fast
        one); a missing reading lets the day before's components decay."""
        means = self._means(state, day)
        observed = np.stack([reading["ln_hrv"][:, None] - means["hrv"],
                             reading["rhr_bpm"][:, None] - means["rhr"],
                             recovery_to_logit(reading["recovery_pct"])[:, None]
                             - means["recovery"]], axis=2)
        params = AthleteParams.from_mapping(self._physiology)
        self._noise_slow, self._noise_fast, self._noise_cov = split_residual(
            observed, self._noise_slow, self._noise_fast, self._noise_cov,
            params.noise("phi"), params.noise("phi_slow"), params.noise("sigma"),
            params.noise("slow_share"))
        self._residual = (self._noise_slow + self._noise_fast)[..., _NOISE_COLUMNS]

    def _history_series(self, athlete: int) -> AthleteSeries:
        """The athlete's days since day 0 in model units (today's load unknown, filled as the
        world model fills any unknown load), for personalisation."""
        days = len(self._readings)
        loads = np.array([w[athlete] for w, _ in self._loads] + [np.nan])
        hi = np.array([u[athlete] for _, u in self._loads] + [np.nan])

        def column(key: str) -> np.ndarray:
            return np.array([r[key][athlete] for r in self._readings])

        # a calendar on the readings' weekdays (1970-01-05 was a Monday)
        return AthleteSeries(
            dates=np.datetime64("1970-01-05") + self._weekday0[athlete] + np.arange(days),
            load=fill_missing_loads(loads, 0.0, WARM_START_DAYS),
            hi_load=fill_missing_loads(hi, 0.0, WARM_START_DAYS),
            hrv=column("ln_hrv"), rhr=column("rhr_bpm"),
            recovery_logit=(recovery_to_logit(column("recovery_pct"))
                            if self.config.personalize_on_recovery
                            else np.full(days, np.nan)),  # MPCConfig.personalize_on_recovery
            source=None)

    def _personalize(self, given: Sequence[dict[str, np.ndarray]] | None = None) -> None:
        """Replace each athlete's draws by draws of its posterior given its history so far,
        and recompute their states from day 0 with the loads seen. `given`: the posteriors
        (`replay`), taken instead of personalising; the noise of the days before today is
        then filtered again from day 0 under them too."""
        n, s = self._n, self.config.scenarios
        new = {k: np.empty((n, s)) for k in self._physiology}
        for i in range(n):
            if given is not None:
                draws = given[i]
            else:
                series = self._history_series(i)
                if np.sum(np.isfinite(series.hrv) | np.isfinite(series.rhr)) < 7:
                    for k, values in new.items():
                        values[i] = self._physiology[k][i]
                    continue
                with warnings.catch_warnings():
                    # a rough posterior is still better than the population; its ESS is
                    # recorded
                    warnings.simplefilter("ignore", UserWarning)
                    result = self.model.personalize(
                        series, lane(self._rng, i), n_proposals=self.config.personalize_proposals,
                        n_draws=self.config.personalize_draws,
                        rounds=self.config.personalize_rounds)
                self.diagnostics["personalize_ess"].append(float(result.ess))
                draws = result.params
            chosen = self._scenario_parameters({k: np.asarray(draws[k], dtype=float)[None, :]
                                                for k in new})
            for k, values in new.items():
                values[i] = chosen[k][0]
        self._physiology = new
        params = AthleteParams.from_mapping(self._physiology)
        if given is not None:
            self._start_noise()
        athlete = AthleteState(self._initial_state(), None, self._noise_fast, self._noise_slow)
        for day, (w, u) in enumerate(self._loads):
            if given is not None:  # the morning of `day`, now under the posterior
                self._update_residual(self._readings[day], athlete.banister, day)
            athlete = transition(athlete, params, (w[:, None], u[:, None]), None)
        self._state = athlete.banister


def _per_lane(rng: Any, n: int, draw: Callable[..., Any]) -> Any:
    """`draw(count, rng, athletes)` for the N athletes (`athletes` a slice of them): one call,
    or with one stream per athlete (`agents.lanes`) athlete i's block `draw(1, lane i,
    slice(i, i + 1))`, the blocks joined athlete-major (a dict of arrays, or a parameter
    dataclass whose array fields have a leading draws axis)."""
    if getattr(rng, "lanes", None) is None:
        return draw(n, rng, slice(None))
    parts = [draw(1, g, slice(i, i + 1)) for i, g in enumerate(rng.lanes)]
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in first}
    fields = {}
    for name, value in vars(first).items():
        if value is None or np.ndim(value) == 0:
            if any(repr(getattr(p, name)) != repr(value) for p in parts):
                raise ValueError(f"lanes disagree on the scalar field {name}")
            fields[name] = value
        else:
            fields[name] = np.concatenate([np.asarray(getattr(p, name)) for p in parts])
    return replace(first, **fields)


def performance_test_weights(log_predicted: np.ndarray, log_results: np.ndarray,
                             cv: float) -> np.ndarray:
    """Importance weights (N, D) of D prior draws of each athlete's performance response given
    its tests: `log_predicted` (N, D, T) ln P of each draw on the T test mornings,
    `log_results` (N, T) ln of the results (NaN: not tested that morning).

    A result is ln y = ln P_d + c + ε, ε ~ N(0, cv²), with c an unknown per-athlete offset (a
    test's unit, km/h or watts, is not the model's % scale) profiled out: a draw is scored by
    how well it predicts the changes between the athlete's tests, so one test alone leaves the
    prior weights equal. The weights are the draws' posterior given the tests (self-normalised
    importance sampling from the prior)."""
    log_y = np.asarray(log_results, dtype=float)[:, None, :]
    done = np.isfinite(log_y)
    resid = np.where(done, log_y - log_predicted, 0.0)
    offset = resid.sum(axis=2, keepdims=True) / np.maximum(done.sum(axis=2, keepdims=True), 1)
    log_w = -0.5 * np.sum(np.where(done, resid - offset, 0.0) ** 2, axis=2) / cv ** 2
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


class MPCPlanner(_RecedingHorizon):
    """Model-predictive control through the world model (module docstring); a `Policy`.

    `act(obs, mask)` is the first day of `plan(obs, mask)`: call one of them once per morning
    (each call advances the planner by a day). Batched over athletes; deterministic in `seed`.
    What it knows about the athletes is `self.belief` (`AthleteBelief`).
    """

    name = "mpc"

    def __init__(self, model: Any, config: MPCConfig = MPCConfig(), seed: int = 0) -> None:
        self.config = config
        self._optimizer = RecedingHorizonCEM(config.cem)
        self._seed = seed
        self.belief = AthleteBelief(model, config, lane_rng(seed))
        self.reset(seed)

    @property
    def model(self) -> Any:
        """The world model the belief learns with."""
        return self.belief.model

    # -- Policy protocol ---------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """A new episode: forget the athletes and the warm start; reseed when `seed` is given."""
        super().reset(seed)
        self.belief.reset(self._rng)

    @property
    def day(self) -> int:
        """Mornings planned so far this episode."""
        return self.belief.day

    @property
    def diagnostics(self) -> dict[str, list[float]]:
        """`personalize_ess`: the effective sample size of every personalisation;
        `performance_ess`: that of each tested athlete's performance draws after a test."""
        return self.belief.diagnostics

    def plan(self, obs: np.ndarray, mask: np.ndarray) -> Plan:
        """This morning's plan for each athlete over the next H days (module docstring)."""
        obs, mask = check_batch(obs, mask)
        self.belief.observe(obs)
        start = self.belief.rollout_start(obs)
        plan = plan_from_start(self._optimizer, start, mask, self.config.objective, self._rng)
        self.belief.record_executed(plan.actions[:, 0])
        return plan

    def observe_performance(self, results: np.ndarray) -> None:
        """This morning's performance tests, (N,) (NaN: no test), before this morning's
        `act` / `plan` (`AthleteBelief.observe_performance`; needs `performance_draws` > 0)."""
        self.belief.observe_performance(results)

    def record_executed(self, actions: np.ndarray) -> None:
        """The sessions actually done today, (N,) int, when they differ from the planner's
        choice (another policy drove the day, or a rule stepped it down): tomorrow's update
        then uses them for the safety history and the high-intensity share."""
        self.belief.record_executed(actions)

    def replay(self, observations: np.ndarray, actions: np.ndarray,
               tests: np.ndarray | None = None, posterior: Any = None) -> None:
        """A real athlete's past mornings, sessions and performance tests, and its posterior
        when the caller has it, before today's plan (`AthleteBelief.replay`); call after
        `reset`."""
        self.belief.replay(observations, actions, tests, posterior)

    @property
    def warm_start(self) -> RecedingHorizonCEM:
        """The optimiser (its `initial_probs_`, `probs_` and `best_` show the warm start)."""
        return self._optimizer


# --------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------


def oracle_start(view: dict[str, Any], obs: np.ndarray, scenarios: int) -> RolloutStart:
    """A `RolloutStart` from `Simulation.oracle_view()`: the true parameters and states, the
    scenarios differing only in their future noise."""
    n = np.shape(view["state"])[0]
    s = scenarios

    def rep(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.repeat(x[:, None], s, axis=1)

    noise = np.asarray(view["noise"], dtype=float)  # ln HRV, RHR, recovery logit
    slow = view.get("noise_slow")
    return RolloutStart(
        physiology={k: rep(v) for k, v in view["physiology"].items()},
        performance=_grid(view["performance"], n, s), hazard=_grid(view["hazard"], n, s),
        state=rep(view["state"]), perf_state=rep(view["perf_state"]),
        residual=rep(noise[:, _NOISE_COLUMNS]),
        residual_slow=None if slow is None else rep(np.asarray(slow)[:, _NOISE_COLUMNS]),
        load_ring=np.asarray(view["load_ring"], dtype=float),
        history=np.asarray(view["history"]).astype(np.int64),
        recovery_pct=obs[:, _F["recovery_pct"]].astype(float)
        * np.where(obs[:, _F["recovery_observed"]] > 0.5, 1.0, np.nan),
        ln_hrv_baseline=obs[:, _F["ln_hrv_baseline_28d"]].astype(float),
        ln_hrv_baseline_sd=obs[:, _F["ln_hrv_baseline_sd_28d"]].astype(float),
        typical_recovery_pct=rep(view["typical_recovery"]),
        injured_days=np.asarray(view["injury_left"], dtype=np.int64),
        days_left=np.full(n, max(int(view["days_left"]), 1), dtype=np.int64),
        weekday=weekday_of(obs))


class OraclePlanner(_RecedingHorizon):
    """The same planner given the simulated athlete's truth (module docstring); a `Policy`
    bound to one `simulator.env.Simulation` (it reads `sim.oracle_view()` every morning)."""

    name = "oracle"

    def __init__(self, sim: Any, cem: CEMConfig = ORACLE_CEM, scenarios: int = 4,
                 objective: ObjectiveConfig | None = None, seed: int = 0) -> None:
        if not hasattr(sim, "oracle_view"):
            raise ValueError("OraclePlanner needs a simulator.env.Simulation (with oracle_view)")
        if scenarios < 1:
            raise ValueError(f"scenarios must be ≥ 1, got {scenarios}")
        self.sim = sim
        self.scenarios = scenarios
        self.objective = objective or ObjectiveConfig.from_env(sim.config)
        self._optimizer = RecedingHorizonCEM(cem)
        self._seed = seed
        self.reset(seed)

    def plan(self, obs: np.ndarray, mask: np.ndarray) -> Plan:
        """The oracle's plan from this morning's true state."""
        obs, mask = check_batch(obs, mask)
        if obs.shape[0] != self.sim.n:
            raise ValueError(f"obs has {obs.shape[0]} rows but the simulation {self.sim.n}")
        start = oracle_start(self.sim.oracle_view(), obs, self.scenarios)
        return plan_from_start(self._optimizer, start, mask, self.objective, self._rng)


class PerformanceBlindOracle(OraclePlanner):
    """The oracle told everything but the performance response: the simulated athlete's true
    physiology, hazard, states and noise, and the prior medians of the performance response
    (`typical_performance_params` at the athlete's habitual load, its states tracked from the
    loads done, starting at the habitual load's steady state, as `AthleteBelief` tracks them).
    No wearable reading reveals the performance response (docs/identifiability.md), so this is
    what perfect knowledge of everything a wearable could reveal is worth. It maximises the
    return as the oracle does, on the prior's medians, so it speaks to the return a
    wearable-only policy could reach, not to its ΔP (`benchmarks/performance_tests.py
    --blind-oracle`; the measurement is in docs/results.md)."""

    name = "oracle_blind_to_performance"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._performance: Any = None
        self._perf_state = self._perf_decays = np.empty(0)
        self._day: int | None = None

    def plan(self, obs: np.ndarray, mask: np.ndarray) -> Plan:
        view = self.sim.oracle_view()
        if self._performance is None:
            habitual = np.maximum(np.asarray(self.sim.habitual, dtype=float), 0.1)
            self._performance = typical_performance_params(reference_load=habitual)
            self._perf_decays = _grid(self._performance, len(habitual), 1).decays()[:, 0]
            self._perf_state = banister.steady_morning_state(
                habitual, np.zeros_like(habitual), self._perf_decays)
        elif self.sim.day != self._day:  # yesterday's true load moves the median's states
            self._perf_state = banister.step_state(
                self._perf_state, view["load_ring"][:, -1], None, self._perf_decays)
        self._day = self.sim.day
        blind = {**view, "performance": self._performance, "perf_state": self._perf_state}
        obs, mask = check_batch(obs, mask)
        start = oracle_start(blind, obs, self.scenarios)
        return plan_from_start(self._optimizer, start, mask, self.objective, self._rng)
