"""The planner's rollout model: candidate training plans scored through the world model.

The MPC planner and the oracle (`agents.mpc`) optimise the same function,
`evaluate_sequences(start, actions, innovations)`: they differ only in the `RolloutStart` they
hand it (estimated parameter draws and states for the MPC, the simulated athlete's true ones for
the oracle), as mbrl-lib's trajectory optimisers see only `evaluate_action_sequences`.

Every equation comes from the module that owns it, batched over athletes × scenarios ×
candidates: the Banister states from `banister.step_state`, ln HRV / RHR / recovery from
`observation.observation_means`, performance from `PerformanceParams.evaluate` (Busso's
saturating dose-response), the illness/injury hazard from `hazard.daily_hazard` on
`acute_chronic_ratio` and `training_monotony`, the seed's soft penalty from
`constraints.soft_penalty`, the recovery term from `rewards.recovery_term`, and the legal action
sets from `constraints.hard_mask` / `constraints.enforce`.

The objective (per athlete and candidate; the simulator's potential-based reward summed over the
plan, `simulator.rewards`). Planned day h = 0 … H−1 is trained on day h; its reward is read on
morning h + 1:

    J_s = (P_T − P_0) + w_rec·Σ_h R_recovery(h+1) − λ·Σ_h [penalty(h+1) + c_inj·hazard_h]

for each scenario s (a parameter draw with its own AR(1) noise path; the same paths for every
candidate, "common random numbers", so candidates differ only by their actions). P_T is the
performance at the end of the objective: at the plan's end when the episode ends within it,
otherwise at the episode's end assuming that the athlete then trains at the optimal steady load
of its performance parameters (`performance.optimal_steady_load`; a fixed continuation, so P_T
is an affine function of the plan's final state, `terminal_performance_map`). The potential
form telescopes, so only P_T − P_0 enters, not the path in between. c_inj =
`injury_day_penalty` × the expected injured mornings of an episode (`injury_mean_days`, cut
at the episode's end). The planner's score of a candidate is the scenario mean minus a risk
premium on the penalty,

    score = mean_s J_s − risk_weight·λ·(CVaR_α(penalty_s) − mean_s penalty_s),

where CVaR_α is the mean of the worst α share of the scenarios' summed penalties (Rockafellar &
Uryasev 2000, J Risk 2:21).

Computation. A morning's plan-independent parts are prepared once (`PreparedRollout`): the
observation equations are affine in the loads (the fitness, fatigue and fast-fatigue channels
they read are linear), so the mean ln HRV and recovery logit of any plan are a base plus a
gain matrix times its daily (w, u), exact, obtained by rolling the no-load plan and unit
impulses through `banister.step_state` and `observation_means` (`observation_response`); a
batch of K plans for all S scenarios is then one matrix product per athlete. ΔP is exactly
quadratic in the loads (Busso's variable fatigue multiplies the dose gain by the load,
`performance_quadratic`), so its coefficients, averaged over the athlete's performance draws,
score every plan with two products whatever the number of draws. The noise paths, the
end-of-objective map and that quadratic form are computed once per morning.

Approximations (each a deliberate simplification):

- days 1 … H−1 are projected only onto the rules that depend on the action history (hard-day
  streak, rest day in every window) and the injury days known today; the physiology-based rules
  (recovery floor, HRV drop) are left to the env's mask on the day, since they depend on
  readings not yet taken. Day 0 respects today's full mask;
- the ln HRV baseline the HRV-drop penalty compares with moves with the plan's predicted means
  (a trailing 28-day mean of their change), its SD stays at today's value;
- an injury or illness that the hazard predicts is charged its expected penalty but does not
  change the planned actions or the readings that follow it; when every scenario shares the
  hazard parameters, the hazard is read at the scenarios' mean recovery (one hazard per
  athlete and plan instead of S; slightly low where the low-recovery hinge bites);
- the recovery, penalty and hazard after the plan are not valued (only performance is).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from physiology_model.data.load import action_loads
from physiology_model.data.table import ACTIONS, N_ACTIONS
from physiology_model.dynamics import banister
from physiology_model.dynamics.hazard import (
    HazardParams,
    acute_chronic_ratio,
    daily_hazard,
    training_monotony,
)
from physiology_model.dynamics.observation import (
    NOISE_SLOW_SHARE,
    channel_decays,
    logit_to_recovery,
    noise_step,
    observation_means,
)
from physiology_model.dynamics.params import (
    AR_PARAMS,
    HI_LOAD_SCALE_MIN,
    LOAD_SCALE_TRIMP,
    PARAM_NAMES,
    state_normaliser,
)
from physiology_model.dynamics.performance import PerformanceParams, optimal_steady_load
from physiology_model.dynamics.step import AthleteParams, AthleteState, observe
from simulator.constraints import (
    DEFAULT_SAFETY_CONFIG,
    REST,
    UNKNOWN_DAY,
    SafetyConfig,
    SafetyInputs,
    consecutive_hard_days,
    consecutive_non_rest_days,
    enforce,
    hard_mask,
    hrv_drop_sd,
    soft_penalty,
)
from simulator.env import EnvConfig
from simulator.rewards import RewardConfig, recovery_term

RING_DAYS = 28
"""Days of past load the hazard's chronic window reads (`acute_chronic_ratio`'s default)."""
_HRV, _REC, _HRV_REL = 0, 1, 2  # columns of the residual / innovation / response arrays
_ENV_DEFAULTS = EnvConfig()


def nominal_action_loads() -> tuple[np.ndarray, np.ndarray]:
    """Load w (100 TRIMP) and high-intensity load u (h of Z4-5 + strength) of each action's
    nominal session (`load.action_loads`), each (6,), as the simulator computes them."""
    loads = action_loads(np.arange(N_ACTIONS))
    return (loads.trimp / LOAD_SCALE_TRIMP,
            (loads.hi_min + loads.strength_min) / HI_LOAD_SCALE_MIN)


ACTION_W, ACTION_U = nominal_action_loads()


@dataclass(frozen=True)
class ObjectiveConfig:
    """What the planner maximises (module docstring). The reward weights are the simulator's
    (`simulator.rewards.RewardConfig`, potential form), the penalty and rule thresholds the
    safety module's."""

    reward: RewardConfig = field(default_factory=RewardConfig)
    safety: SafetyConfig = DEFAULT_SAFETY_CONFIG
    injury_mean_days: float = _ENV_DEFAULTS.injury_mean_days
    """Mean length of an illness/injury episode (days; the env's `EnvConfig.injury_mean_days`):
    an onset costs `injury_day_penalty` for each of its expected mornings."""
    cvar_fraction: float = 0.2
    """α of the risk term: the share of worst scenarios whose mean penalty is the CVaR."""
    risk_weight: float = 0.25
    """Weight of the CVaR premium (CVaR − mean) of the penalty; 0 plans on the mean alone.
    Chosen by `benchmarks/mpc_sweep.py` on the tuning cohort (seed 3000; its results and the
    comparison with other weights: `benchmarks/results/mpc_sweep.json`, docs/results.md)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.cvar_fraction <= 1.0:
            raise ValueError(f"cvar_fraction must be in (0, 1], got {self.cvar_fraction}")
        if self.risk_weight < 0 or not np.isfinite(self.risk_weight):
            raise ValueError(f"risk_weight must be a finite number ≥ 0, got {self.risk_weight}")
        if not self.injury_mean_days >= 1.0:
            raise ValueError(f"injury_mean_days must be ≥ 1, got {self.injury_mean_days}")

    @classmethod
    def from_env(cls, config: EnvConfig, **overrides: Any) -> ObjectiveConfig:
        """The objective of an env config (its reward weights, safety rules, injury length)."""
        return cls(reward=config.reward, safety=config.safety,
                   injury_mean_days=config.injury_mean_days, **overrides)


@dataclass(frozen=True)
class RolloutStart:
    """Where N athletes' rollouts start this morning, with S scenarios (parameter draws) each.

    Parameters and states per scenario: `physiology` dict of (N, S) arrays with the keys of
    `params.PARAM_NAMES + AR_PARAMS`; `hazard` with (N, S) fields; `state` (N, S, 5) Banister
    morning states of today (banister.py timing); `residual` (N, S, 2) today's noise of ln HRV
    (ln ms) and of the recovery logit, which the predicted noise decays from, and
    `residual_slow` (N, S, 2) its slow component (`params.SLOW_SHARE_PARAMS`; None: 0, the
    whole residual is fast, as it is where the slow shares are 0).
    Performance has D draws per athlete of its own, `performance` with (N, D) fields and
    `perf_state` (N, D, 5): performance depends on the loads alone, so ΔP is averaged over its
    D draws and that average enters every scenario (D = 1 for one parameter set; D = S with
    the scenarios' own parameters gives the same expected return); `performance_weights`
    (N, D), each row summing to 1, weighs the draws (a posterior given performance tests,
    `AthleteBelief.observe_performance`), None for equal weights.
    Per athlete: `load_ring` (N, 28) loads w of the 28 days before today, newest last;
    `history` (N, ≥ history_days) executed-day codes before today (`constraints`), yesterday
    last; `recovery_pct` (N,) this morning's recovery (NaN unknown), the hazard's input for
    today; `ln_hrv_baseline` / `ln_hrv_baseline_sd` (N,) the features' 28-day ln HRV baseline
    and its SD; `typical_recovery_pct` (N, S) the recovery the reward's recovery term is
    centred on; `injured_days` (N,) int: today and the next injured_days − 1 days allow only the
    injury actions; `days_left` (N,) int: mornings left in the objective after today (the
    episode's end), ≥ 1.
    """

    physiology: dict[str, np.ndarray]
    performance: PerformanceParams
    hazard: HazardParams
    state: np.ndarray
    perf_state: np.ndarray
    residual: np.ndarray
    load_ring: np.ndarray
    history: np.ndarray
    recovery_pct: np.ndarray
    ln_hrv_baseline: np.ndarray
    ln_hrv_baseline_sd: np.ndarray
    typical_recovery_pct: np.ndarray
    injured_days: np.ndarray
    days_left: np.ndarray
    performance_weights: np.ndarray | None = None
    residual_slow: np.ndarray | None = None
    weekday: np.ndarray | None = None
    """(N,) int, today's day of the week (0 = Monday): the planned mornings get the weekday
    offsets of the physiology (`params.WEEKDAY_PARAMS`); None: no offsets."""

    def __post_init__(self) -> None:
        n, s = np.shape(self.state)[:2] if np.ndim(self.state) == 3 else (None, None)
        if n is None or np.shape(self.state)[2] != banister.N_CHANNELS:
            raise ValueError(f"state must be (N, S, {banister.N_CHANNELS}), got "
                             f"{np.shape(self.state)}")
        d = np.shape(self.perf_state)[1] if np.ndim(self.perf_state) == 3 else None
        expected = {"perf_state": (n, d, banister.N_CHANNELS), "residual": (n, s, 2),
                    **({} if self.residual_slow is None else {"residual_slow": (n, s, 2)}),
                    "load_ring": (n, RING_DAYS), "recovery_pct": (n,),
                    "ln_hrv_baseline": (n,), "ln_hrv_baseline_sd": (n,),
                    "typical_recovery_pct": (n, s), "injured_days": (n,), "days_left": (n,),
                    **({} if self.weekday is None else {"weekday": (n,)})}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name} must have shape {shape}, got "
                                 f"{np.shape(getattr(self, name))}")
        missing = [k for k in PARAM_NAMES + AR_PARAMS if k not in self.physiology]
        if missing:
            raise ValueError(f"physiology lacks the parameters {missing}")
        for name, value in self.physiology.items():
            if np.shape(value) != (n, s):
                raise ValueError(f"physiology[{name!r}] must have shape {(n, s)}, got "
                                 f"{np.shape(value)}")
        for group, shape in (("performance", (n, d)), ("hazard", (n, s))):
            params = getattr(self, group)
            for name, value in vars(params).items():
                if value is not None and np.ndim(value) > 0 and np.shape(value) != shape:
                    raise ValueError(f"{group}.{name} must have shape {shape}, got "
                                     f"{np.shape(value)}")
        h = np.asarray(self.history)
        if h.ndim != 2 or h.shape[0] != n or not np.issubdtype(h.dtype, np.integer):
            raise ValueError(f"history must be integer codes of shape ({n}, H), got "
                             f"{h.dtype} {h.shape}")
        if np.any(np.asarray(self.days_left) < 1):
            raise ValueError("days_left must be ≥ 1 for every athlete")
        weights = self.performance_weights
        if weights is not None and (np.shape(weights) != (n, d) or np.any(weights < 0)
                                    or not np.allclose(np.sum(weights, axis=1), 1.0)):
            raise ValueError(f"performance_weights must be ({n}, {d}) non-negative rows that "
                             f"sum to 1, got shape {np.shape(weights)}")
        if not (np.all(np.isfinite(self.state)) and np.all(np.isfinite(self.perf_state))
                and np.all(np.isfinite(self.load_ring)) and np.all(np.isfinite(self.residual))):
            raise ValueError("states, residuals and the load ring must be finite")

    @property
    def n_athletes(self) -> int:
        return int(np.shape(self.state)[0])

    @property
    def n_scenarios(self) -> int:
        return int(np.shape(self.state)[1])

    @property
    def has_slow_noise(self) -> bool:
        """Whether some scenario's noise has a slow component (its rollouts then need the slow
        components' innovations too, `draw_innovations(slow=True)`)."""
        return any(np.any(np.asarray(self.physiology.get(name, 0.0)) > 0)
                   for name in NOISE_SLOW_SHARE.values())


@dataclass(frozen=True)
class RolloutResult:
    """Scores of N athletes' K candidate plans, each (N, K), and optionally the paths.

    `score`: what the planner maximises (module docstring); `expected_return`: the scenario mean
    of J (the simulator's return over the objective window, up to the constant typical-recovery
    offset it shares with every plan); `delta_performance`: mean P_T − P_0 (%); `penalty` /
    `penalty_cvar`: mean and CVaR of the summed penalty (soft penalty + expected injury cost,
    penalty units). `paths` (with `return_paths=True`), each (N, S, K, H): `recovery_pct` and
    `ln_hrv` on mornings 1 … H (noise included), `hazard` of days 0 … H−1, `penalty` on mornings
    1 … H; and `performance` (N, S, K, H + 1) on mornings 0 … H.
    """

    score: np.ndarray
    expected_return: np.ndarray
    delta_performance: np.ndarray
    penalty: np.ndarray
    penalty_cvar: np.ndarray
    paths: dict[str, np.ndarray] | None = None


def planned_load_risk(ring: np.ndarray, loads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The acute:chronic ratio and the monotony of each planned day: `loads` (..., H) in load
    units after the past `RING_DAYS` days' loads `ring` (broadcast against `loads`' leading
    axes), as the hazard reads them on each of the H days (the planner's roll-outs,
    `agents.mpc.AthleteBelief.night_hazards`). Returns two (..., H) arrays."""
    ring = np.broadcast_to(ring, loads.shape[:-1] + (RING_DAYS,))
    series = np.concatenate([ring, loads], axis=-1)
    return (acute_chronic_ratio(series)[..., RING_DAYS:],
            training_monotony(series[..., RING_DAYS - 6:])[..., 6:])


def draw_innovations(n_athletes: int, n_scenarios: int, horizon: int,
                     rng: np.random.Generator, slow: bool = False) -> np.ndarray:
    """Standard normal innovations of the ln HRV and recovery-logit noise, (N, S, H, 2), and
    with `slow` those of their slow components after them, (N, S, H, 4) (drawn after the fast
    ones, so that these are the same either way); shared by every candidate of a planning call
    (common random numbers)."""
    fast = rng.standard_normal((n_athletes, n_scenarios, horizon, 2))
    if not slow:
        return fast
    return np.concatenate([fast, rng.standard_normal(fast.shape)], axis=3)


# --------------------------------------------------------------------------------------------
# Legal plans
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def history_mask_table(safety: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """The hard rules' mask for every history a plan can reach, (W + 1, W + 1, 2, 6) bool with
    W = `history_days`: indexed by [hard days in a row, non-rest days in a row (both ending
    yesterday, capped at W), injured]. Built once by `constraints.hard_mask` itself on one
    representative history per entry, with readings no physiology rule can fire on, so the
    rules keep a single implementation; the planner only tracks the two run lengths."""
    width = safety.history_days
    hard = ACTIONS.index(safety.hard_actions[0])
    easy = ACTIONS.index("active_recovery")
    histories, keys = [], []
    for run_hard in range(width + 1):
        for run_active in range(run_hard, width + 1):
            codes = np.full(width, UNKNOWN_DAY, dtype=np.int64)
            if run_active < width:
                codes[width - run_active - 1] = REST
            codes[width - run_active:] = easy
            codes[width - run_hard:] = hard
            for injured in (0, 1):
                histories.append(codes)
                keys.append((run_hard, run_active, injured))
    n = len(histories)
    calm = np.full(n, 100.0)
    unknown = np.full(n, np.nan)
    inputs = SafetyInputs(calm, calm, np.full(n, np.log(60.0)), unknown, unknown,
                          np.full(n, 60.0), np.array([k[2] for k in keys], dtype=float),
                          np.stack(histories))
    masks = hard_mask(inputs, safety).mask
    table = np.ones((width + 1, width + 1, 2, N_ACTIONS), dtype=bool)
    for key, mask in zip(keys, masks):
        table[key] = mask
    table.setflags(write=False)
    return table


def project_sequences(actions: np.ndarray, history: np.ndarray, today_mask: np.ndarray,
                      injured_days: np.ndarray,
                      safety: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """Candidate plans (N, K, H) made legal, day by day, as the env would execute them.

    Day 0 is executed under `today_mask` (N, 6); day h ≥ 1 under the hard rules that today's
    history (N, ≥ history_days codes, yesterday last) and the plan's own earlier days decide
    (at most `max_consecutive_hard` hard days in a row, a rest day in every `rest_window_days`),
    plus the injury rule while h < `injured_days` (N,), read from `history_mask_table`. A
    forbidden session becomes what `constraints.enforce` executes (the allowed easy session
    below it). Physiology-based rules cannot fire on days ≥ 1 (their readings are not known
    yet; see the module docstring).
    """
    a = np.asarray(actions)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be integer plans (N, K, H), got {a.dtype} {a.shape}")
    n, k, horizon = a.shape
    mask0 = np.asarray(today_mask)
    if mask0.shape != (n, N_ACTIONS) or mask0.dtype != bool:
        raise ValueError(f"today_mask must be bool ({n}, {N_ACTIONS}), got {mask0.dtype} "
                         f"{mask0.shape}")
    hist = np.asarray(history)
    if hist.ndim != 2 or hist.shape[0] != n or hist.shape[1] < safety.history_days:
        raise ValueError(f"history must be ({n}, ≥{safety.history_days}), got {hist.shape}")
    injured = np.asarray(injured_days)
    if injured.shape != (n,):
        raise ValueError(f"injured_days must have shape ({n},), got {injured.shape}")
    width = safety.history_days
    table = history_mask_table(safety)
    hard_set = _action_set(safety.hard_actions)
    flat = a.reshape(n * k, horizon).astype(np.int64)
    recent = hist[:, hist.shape[1] - width:]
    run_hard = np.repeat(consecutive_hard_days(recent, safety), k)
    run_active = np.repeat(consecutive_non_rest_days(recent), k)
    injured_rows = np.repeat(injured, k)
    for h in range(horizon):
        if h == 0:
            mask = np.repeat(mask0, k, axis=0)
        else:
            mask = table[run_hard, run_active, (h < injured_rows).astype(np.int64)]
        executed, _ = enforce(flat[:, h], mask, safety)
        flat[:, h] = executed
        run_hard = np.where(hard_set[executed], np.minimum(run_hard + 1, width), 0)
        run_active = np.where(executed != REST, np.minimum(run_active + 1, width), 0)
    return flat.reshape(n, k, horizon)


def _action_set(names: tuple[str, ...]) -> np.ndarray:
    """(6,) bool: which action indices are in `names`."""
    return np.isin(np.arange(N_ACTIONS), [ACTIONS.index(x) for x in names])


def hard_streaks(actions: np.ndarray, history: np.ndarray,
                 safety: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """Hard days in a row ending on each planned day, that day included (0 when it is not
    hard), (N, K, H): the soft penalty's count. The streak before the plan comes from the
    history (`constraints.consecutive_hard_days`)."""
    a = np.asarray(actions)
    hard = _action_set(safety.hard_actions)[a]
    run = np.broadcast_to(consecutive_hard_days(np.asarray(history), safety)[:, None],
                          a.shape[:2]).astype(np.int64)
    out = np.empty(a.shape, dtype=np.int64)
    for h in range(a.shape[2]):
        run = np.where(hard[..., h], run + 1, 0)
        out[..., h] = run
    return out


# --------------------------------------------------------------------------------------------
# The rollout
# --------------------------------------------------------------------------------------------


def _flat(x: np.ndarray) -> np.ndarray:
    """(N, S, ...) → (N·S, ...)."""
    x = np.asarray(x)
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _fields(params: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(params).items() if v is not None and np.ndim(v) == 2}


def _flat_params(params: Any) -> Any:
    """A parameter dataclass with (N, S) fields → the same with (N·S,) fields."""
    return replace(params, **{k: _flat(v) for k, v in _fields(params).items()})


def _first_scenario(params: Any) -> Any:
    """A parameter dataclass with (N, S) fields → the same with scenario 0's (N,) fields."""
    return replace(params, **{k: np.asarray(v)[:, 0] for k, v in _fields(params).items()})


def _same_in_every_scenario(params: Any) -> bool:
    return all(np.array_equal(v, np.broadcast_to(v[:, :1], v.shape))
               for v in _fields(params).values())


def continuation_load(performance: PerformanceParams,
                      safety: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """The steady daily load w the continuation after the plan assumes: the performance
    model's optimum (`optimal_steady_load`), kept within what the heaviest nominal session on
    every day but the one rest day of each `rest_window_days` can deliver. Shape of the
    parameters."""
    best = optimal_steady_load(performance)
    most = ACTION_W.max() * (safety.rest_window_days - 1) / safety.rest_window_days
    return np.clip(best, 0.0, most)


def terminal_performance_map(performance: PerformanceParams, days: np.ndarray,
                             load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Performance `days` mornings after a morning state M, training `load` w every day in
    between, as the affine map P = const + coef·M.

    Exact: for a fixed load one `banister.step_state` is an affine map of the state (read off by
    stepping the zero state and each channel's unit state), `days` of them are its power
    (binary exponentiation, a handful of 5 × 5 products instead of a loop over the days), and
    performance is linear in the state. `performance` fields, `days` (int ≥ 0) and `load` all
    (M,) → (const (M,), coef (M, 5)).
    """
    days = np.asarray(days, dtype=np.int64)
    m = days.shape[0]
    c = banister.N_CHANNELS
    basis = np.broadcast_to(np.concatenate([np.zeros((1, c)), np.eye(c)]), (m, c + 1, c))
    w = np.broadcast_to(np.asarray(load, float)[:, None], (m, c + 1))
    stepped = banister.step_state(basis, w, None, performance.decays()[:, None, :])
    power_b = stepped[:, 0]  # the one-day map M ↦ A·M + b
    power_a = np.swapaxes(stepped[:, 1:] - stepped[:, :1], 1, 2)
    total_a = np.broadcast_to(np.eye(c), (m, c, c)).copy()
    total_b = np.zeros((m, c))
    remaining = days.copy()
    while np.any(remaining > 0):
        take = (remaining & 1).astype(bool)[:, None]
        # powers of one map commute, so the composition order does not matter
        total_b = np.where(take, np.einsum("mij,mj->mi", power_a, total_b) + power_b, total_b)
        total_a = np.where(take[..., None], power_a @ total_a, total_a)
        power_b = np.einsum("mij,mj->mi", power_a, power_b) + power_b
        power_a = power_a @ power_a
        remaining >>= 1
    values = performance.evaluate(basis)  # (M, 6): P of the zero state and the unit states
    gain = values[:, 1:] - values[:, :1]
    const = performance.evaluate(total_b)
    return const, np.einsum("mi,mij->mj", gain, total_a)


def performance_quadratic(decays: np.ndarray, state: np.ndarray, coef: np.ndarray,
                          offset: np.ndarray, horizon: int, weights: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ΔP of any plan's daily loads w (H,) as c0 + a·w + wᵀBw, exact, for M parameter sets:
    `decays` (M, 5), this morning's `state` (M, 5), the end-of-objective map P = offset +
    coef·(state after the plan) (`terminal_performance_map`, minus today's P in `offset`).

    Unrolling `banister.step_state` (morning M_{d+1} = e·(M_d + drive_d), drives w for
    fitness, fatigue and dose gain, none for fast fatigue, (G_d + w_d)·w_d for variable
    fatigue with G_d = e_g^d·G_0 + Σ_{i<d} e_g^{d−i}·w_i the morning dose gain; Busso 2003):
    a linear channel ends at e^H·M_0 + Σ_d e^{H−d}·w_d, variable fatigue at e_v^H·V_0 +
    Σ_d e_v^{H−d}·(G_d + w_d)·w_d. So ΔP is quadratic in the loads with B[i, d] =
    k_V·e_v^{H−d}·e_g^{d−i} for i ≤ d. Returns c0 (M,), a (M, H), B (M, H, H): averaging them
    over parameter draws gives the expected ΔP of every plan at the cost of one.

    With `weights` (N, D), the M = N·D sets being D draws for each of N athletes (athlete-major),
    it returns the weighted means over each athlete's draws instead, (N,), (N, H), (N, H, H),
    without building the M forms of B: B[i, d] = z_i·y_d with z_i = e_g^{c−i} and y_d =
    k_V·e_v^{H−d}·e_g^{d−c} (c the middle day, so neither factor overflows), so the mean is
    the upper triangle of one (H × D)(D × H) product per athlete."""
    e = np.asarray(decays, float)
    h = np.arange(horizon)
    to_end = e[:, None, :] ** (horizon - h)[None, :, None]  # (M, H, 5): e^(H−d)
    c0 = offset + np.sum(coef * e ** horizon * state, axis=1)
    linear = [banister.FITNESS, banister.FATIGUE, banister.DOSE_GAIN]
    a = np.einsum("mhc,mc->mh", to_end[:, :, linear], coef[:, linear])
    e_gain = e[:, banister.DOSE_GAIN]
    k_var = coef[:, banister.VARIABLE_FATIGUE]
    v_to_end = to_end[:, :, banister.VARIABLE_FATIGUE]  # (M, H)
    a = a + (k_var * state[:, banister.DOSE_GAIN])[:, None] * v_to_end * (
        e_gain[:, None] ** h[None, :])
    if weights is None:
        lag = h[None, :] - h[:, None]  # d − i: row i (earlier load), column d
        gain_lag = np.where(lag >= 0, e_gain[:, None, None] ** np.maximum(lag, 0), 0.0)
        b = k_var[:, None, None] * v_to_end[:, None, :] * gain_lag
        return c0, a, b
    w = np.asarray(weights, float)
    n, d = w.shape
    # ln e_g floored at 10^(−250/H) so that z and y stay within 10^±125: it bites only where
    # the Busso channels are off (e_g = 0, k_V = 0, so y = 0) or τ_gain < 0.04 d (H = 21),
    # where every e_g^{d−i} off the diagonal is negligible anyway
    log_gain = np.maximum(np.log(np.maximum(e_gain, 1e-300)), -250.0 * np.log(10) / horizon)
    middle = (horizon - 1) / 2.0
    z = np.exp((middle - h)[None, :] * log_gain[:, None])  # (M, H)
    y = (k_var[:, None] * v_to_end * np.exp((h - middle)[None, :] * log_gain[:, None])
         * w.reshape(-1, 1))
    b = np.triu(np.matmul(z.reshape(n, d, horizon).transpose(0, 2, 1), y.reshape(n, d, horizon)))
    return (np.einsum("nd,nd->n", c0.reshape(n, d), w),
            np.einsum("ndh,nd->nh", a.reshape(n, d, horizon), w), b)


def observation_response(physiology: dict[str, np.ndarray], state: np.ndarray,
                         horizon: int, weekday: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean ln HRV and recovery logit on mornings 1 … H as an affine function of the
    plan's loads, exact: the Banister channels the observation equations read (fitness,
    fatigue, fast fatigue) are linear in the loads and the equations are affine in them.

    Rolls the no-training plan and a unit impulse of w and of u on each day through
    `banister.step_state` and `observation.observation_means`. `physiology` (M,) arrays,
    `state` (M, 5) → (base (M, H, 2), gain (M, 2H, H, 2)): mean = base + Σ_j gain[j]·x_j with
    x = (w_0 … w_{H−1}, u_0 … u_{H−1}); the last axis is (ln HRV, recovery logit). With
    today's `weekday` (M,) (0 = Monday), each morning's means carry its weekday offsets (a
    term of the base: the same for every plan).
    """
    m = state.shape[0]
    n_basis = 2 * horizon + 1
    w_basis = np.zeros((n_basis, horizon))
    u_basis = np.zeros((n_basis, horizon))
    w_basis[1 + np.arange(horizon), np.arange(horizon)] = 1.0
    u_basis[1 + horizon + np.arange(horizon), np.arange(horizon)] = 1.0
    decays = channel_decays(physiology)[:, None, :]
    normaliser = state_normaliser(decays[..., :3])
    states = np.broadcast_to(state[:, None, :], (m, n_basis, banister.N_CHANNELS))
    out = np.empty((m, n_basis, horizon, 2))
    for h in range(horizon):
        states = banister.step_state(states, w_basis[:, h], u_basis[:, h], decays)
        means = observation_means(physiology, states[..., :3] * normaliser,
                                  None if weekday is None else (weekday[:, None] + 1 + h) % 7)
        out[:, :, h, _HRV], out[:, :, h, _REC] = means["hrv"], means["recovery"]
    return out[:, 0], out[:, 1:] - out[:, :1]


def _with_relative_hrv(base: np.ndarray, gain: np.ndarray, hrv_today: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Add a third output to an `observation_response`: ln HRV minus the change of its
    28-day baseline (`baseline_drift_operator`), which is affine in the loads too."""
    drift = baseline_drift_operator(base.shape[1])
    base_rel = base[..., _HRV] - (base[..., _HRV] - hrv_today[:, None]) @ drift.T
    gain_rel = gain[..., _HRV] - gain[..., _HRV] @ drift.T
    return (np.concatenate([base, base_rel[..., None]], axis=-1),
            np.concatenate([gain, gain_rel[..., None]], axis=-1))


def baseline_drift_operator(horizon: int, window: int = 28) -> np.ndarray:
    """(H, H) matrix A such that A·(m − m_today) is the change of the trailing `window`-day
    mean of ln HRV on mornings 1 … H relative to today: morning j's baseline holds mornings
    j − window … j − 1, of which the plan's (1 … j − 1) moved by their predicted change and the
    earlier ones by 0 (the features' `ln_hrv_baseline_28d` is such a trailing mean)."""
    h = np.arange(horizon)
    j = np.arange(horizon)
    # row h = morning h + 1; column j = morning j + 1; inside the window when h − window ≤ j < h
    inside = (j[None, :] < h[:, None]) & (j[None, :] >= h[:, None] - window)
    return inside / float(window)


def _cvar(values: np.ndarray, fraction: float, axis: int) -> np.ndarray:
    """Mean of the largest ceil(fraction·n) values along `axis` (the upper-tail CVaR)."""
    n = values.shape[axis]
    top = max(1, int(np.ceil(fraction * n)))
    return -np.mean(np.sort(-values, axis=axis).take(np.arange(top), axis=axis), axis=axis)


class PreparedRollout:
    """The rollout model of one morning: everything that does not depend on the plan (the
    observation response, the noise paths, the end-of-objective performance map) computed once,
    so that `evaluate` scores batches of plans with one matrix product and one performance
    recursion. Use `evaluate_sequences` for a single batch."""

    def __init__(self, start: RolloutStart, horizon: int, innovations: np.ndarray,
                 config: ObjectiveConfig = ObjectiveConfig()) -> None:
        n, s = start.n_athletes, start.n_scenarios
        if horizon < 1:
            raise ValueError("plans need at least one day")
        if np.shape(innovations) not in ((n, s, horizon, 2), (n, s, horizon, 4)):
            raise ValueError(f"innovations must have shape {(n, s, horizon, 2)} (or 4 columns "
                             f"with the slow components'), got {np.shape(innovations)}")
        if start.has_slow_noise and np.shape(innovations)[3] != 4:
            raise ValueError("the scenarios' noise has slow components: the innovations need "
                             "their 4 columns (draw_innovations(..., slow=True))")
        self.start, self.horizon, self.config = start, horizon, config
        self.rows = np.repeat(np.arange(n), s)  # scenario row → athlete
        p = {key: _flat(v) for key, v in start.physiology.items()}
        state = _flat(start.state)
        params = AthleteParams.from_mapping(p)
        no_noise = np.zeros(state.shape[:1] + (3,))
        weekday = None if start.weekday is None else np.repeat(start.weekday, s)
        today = observe(AthleteState(state, None, no_noise, no_noise), params, weekday)
        base, gain = _with_relative_hrv(*observation_response(p, state, horizon, weekday),
                                        today["hrv"])
        self._base = base
        # (N, 2H, S·H·3): one matrix product per athlete maps its K plans to every scenario
        self._gain = (gain.reshape(n, s, 2 * horizon, horizon, 3).transpose(0, 2, 1, 3, 4)
                      .reshape(n, 2 * horizon, s * horizon * 3))
        self._noise = self._noise_paths(
            params, _flat(start.residual),
            None if start.residual_slow is None else _flat(start.residual_slow),
            _flat(innovations))
        # One performance parameter set per athlete and draw (one per athlete when the draws
        # are all the same: the oracle's truth, the MPC's prior medians), each draw weighted.
        shared = _same_in_every_scenario(start.performance)
        self._perf = (_first_scenario(start.performance) if shared
                      else _flat_params(start.performance))
        self._perf_draws = 1 if shared else start.perf_state.shape[1]
        if shared:
            self._perf_weights = np.ones((n, 1))
        elif start.performance_weights is None:
            self._perf_weights = np.full((n, self._perf_draws), 1.0 / self._perf_draws)
        else:
            self._perf_weights = np.asarray(start.performance_weights, dtype=float)
        self._perf_rows = np.repeat(np.arange(n), self._perf_draws)
        perf_state = start.perf_state[:, 0] if shared else _flat(start.perf_state)
        self._perf_state = perf_state
        self._perf_decays = self._perf.decays()
        self._p_start = self._perf.evaluate(perf_state)
        extra_days = np.maximum(start.days_left[self._perf_rows] - horizon, 0)
        const, coef = terminal_performance_map(self._perf, extra_days,
                                               continuation_load(self._perf, config.safety))
        # ΔP of a plan is quadratic in its loads: the draws' mean form scores every candidate
        self._delta_p_form = performance_quadratic(
            self._perf_decays, perf_state, coef, const - self._p_start, horizon,
            None if shared else self._perf_weights)
        # Shared hazard parameters: one hazard per athlete, read at the scenarios' mean
        # recovery (its only per-scenario input; an S-fold saving, slightly low where the
        # low-recovery hinge bites: the hazard is convex in recovery there).
        self._hazard_shared = _same_in_every_scenario(start.hazard)
        self._hazard = (_first_scenario(start.hazard) if self._hazard_shared
                        else _flat_params(start.hazard))

    def _draw_mean(self, x: np.ndarray) -> np.ndarray:
        """(N·D, ...) per performance draw → (N, ...) the weighted mean over each athlete's
        draws."""
        n, d = self._perf_weights.shape
        return np.einsum("nd...,nd->n...", x.reshape((n, d) + x.shape[1:]), self._perf_weights)

    @staticmethod
    def _noise_paths(params: AthleteParams, residual: np.ndarray,
                     residual_slow: np.ndarray | None, innovations: np.ndarray) -> np.ndarray:
        """Noise of ln HRV and the recovery logit on mornings 1 … H, (M, H, 2): each target's
        slow and fast components stepped by `observation.noise_step` from today's (the slow
        one `residual_slow`, the fast one the rest of `residual`), with the innovations'
        columns (fast ln HRV, fast recovery[, slow ln HRV, slow recovery]); shared by every
        candidate (common random numbers). The two signals' innovations on a day are
        correlated as the simulator's are (`params.COUPLING_PARAMS`: ln HRV with recovery), by
        the same numbers from the same normals (`observation.correlation_factor`)."""
        cols = [0, 2]  # ln HRV, recovery logit of observation.TARGETS
        phi, phi_slow, sigma, share = (params.noise(name)[:, cols] for name in
                                       ("phi", "phi_slow", "sigma", "slow_share"))
        rho = params.rho_hrv_rec
        if np.any(rho != 0):
            innovations = innovations.copy()
            for k in range(0, innovations.shape[2], 2):  # fast, then slow, columns
                innovations[..., k + 1] = (rho[:, None] * innovations[..., k]
                                           + np.sqrt(1.0 - rho ** 2)[:, None]
                                           * innovations[..., k + 1])
        slow = np.zeros_like(residual) if residual_slow is None else residual_slow
        fast = residual if residual_slow is None else residual - residual_slow
        noise = np.empty(innovations.shape[:2] + (2,))
        with_slow = innovations.shape[2] == 4
        for h in range(innovations.shape[1]):
            fast, slow = noise_step(fast, slow, phi, phi_slow, sigma, share,
                                    innovations[:, h, :2],
                                    innovations[:, h, 2:] if with_slow else None)
            noise[:, h] = fast + slow
        return noise

    def _means(self, w: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Mean ln HRV, recovery logit and ln HRV relative to the moving baseline of each plan,
        (M, K, H, 3)."""
        n, k, horizon = w.shape
        s = self.start.n_scenarios
        x = np.concatenate([w, u], axis=2)  # (N, K, 2H)
        y = np.matmul(x, self._gain).reshape(n, k, s, horizon, 3).transpose(0, 2, 1, 3, 4)
        return self._base[:, None] + y.reshape(n * s, k, horizon, 3)

    def _performance(self, w: np.ndarray, paths: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """P at the end of the objective minus P today, (M, K), and (paths) P on mornings
        0 … H, (M, K, H + 1): each the weighted mean over the athlete's performance draws."""
        c0, a, b = self._delta_p_form
        delta = c0[:, None] + np.einsum("nkh,nh->nk", w, a) + np.sum((w @ b) * w, axis=2)
        if not paths:
            return delta[self.rows], None
        # the path day by day (for a plan's report, not for the search)
        state = self._perf_state[:, None, :]
        w_perf = w[self._perf_rows]
        path = np.empty((state.shape[0], w.shape[1], self.horizon + 1))
        path[..., 0] = self._p_start[:, None]
        decays = self._perf_decays[:, None, :]
        for h in range(self.horizon):
            state = banister.step_state(state, w_perf[..., h], None, decays)
            path[..., h + 1] = self._perf.evaluate(state)
        return delta[self.rows], self._draw_mean(path)[self.rows]

    def evaluate(self, actions: np.ndarray, return_paths: bool = False) -> RolloutResult:
        """Score K legal plans per athlete, `actions` (N, K, H) action indices (already legal,
        e.g. from `project_sequences`) → `RolloutResult` of (N, K) arrays."""
        start, config = self.start, self.config
        n, s, horizon = start.n_athletes, start.n_scenarios, self.horizon
        a = np.asarray(actions)
        if a.ndim != 3 or a.shape[0] != n or a.shape[2] != horizon \
                or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be integer plans ({n}, K, {horizon}), got "
                             f"{a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= N_ACTIONS):
            raise ValueError(f"actions must be in 0-{N_ACTIONS - 1}")
        k = a.shape[1]
        rows = self.rows
        w, u = ACTION_W[a], ACTION_U[a]  # (N, K, H)
        means = self._means(w, u)
        ln_hrv = means[..., _HRV] + self._noise[:, None, :, _HRV]
        with np.errstate(over="ignore"):  # e^(−logit) = inf still gives recovery 0 %
            recovery = logit_to_recovery(means[..., _REC] + self._noise[:, None, :, _REC])

        safety, reward = config.safety, config.reward
        # ln HRV − baseline = (ln HRV relative to the moving baseline) − today's baseline
        drop = hrv_drop_sd(means[..., _HRV_REL] + self._noise[:, None, :, _HRV],
                           start.ln_hrv_baseline[rows][:, None, None],
                           start.ln_hrv_baseline_sd[rows][:, None, None])
        streak = hard_streaks(a, start.history, safety)[rows]
        penalty = soft_penalty(recovery, streak, drop, safety)

        # hazard of day h: loads up to h, recovery of morning h (today's is measured)
        acwr, monotony = planned_load_risk(start.load_ring[:, None, :], w)
        later = recovery[..., :-1]
        if self._hazard_shared:
            later, today, acwr_in, mono_in = (later.reshape((n, s) + later.shape[1:]).mean(axis=1),
                                              start.recovery_pct, acwr, monotony)
        else:
            today, acwr_in, mono_in = start.recovery_pct[rows], acwr[rows], monotony[rows]
        morning_recovery = np.concatenate(
            [np.broadcast_to(today[:, None, None], later.shape[:2] + (1,)), later], axis=2)
        hazard = daily_hazard(acwr_in, morning_recovery, mono_in, self._hazard)
        # an athlete already injured cannot start a new episode (the simulator's rule)
        injured = start.injured_days if self._hazard_shared else start.injured_days[rows]
        hazard = np.where(np.arange(horizon) < injured[:, None, None], 0.0, hazard)
        if self._hazard_shared:
            hazard = hazard[rows]
        mornings_left = start.days_left[rows][:, None, None] - np.arange(horizon) - 1
        injured_mornings = np.minimum(config.injury_mean_days, np.maximum(mornings_left, 0))
        injury_cost = reward.injury_day_penalty * injured_mornings * hazard

        delta_p, perf_path = self._performance(w, return_paths)
        rec_term = recovery_term(recovery, _flat(start.typical_recovery_pct)[:, None, None])
        total_penalty = np.sum(penalty + injury_cost, axis=2)
        ret = (delta_p + reward.recovery_weight * np.sum(rec_term, axis=2)
               - reward.penalty_weight * total_penalty)

        def by_athlete(x: np.ndarray) -> np.ndarray:
            return x.reshape(n, s, k)

        mean_pen = by_athlete(total_penalty).mean(axis=1)
        cvar_pen = _cvar(by_athlete(total_penalty), config.cvar_fraction, axis=1)
        expected = by_athlete(ret).mean(axis=1)
        score = expected - config.risk_weight * reward.penalty_weight * (cvar_pen - mean_pen)
        paths = None
        if return_paths:
            paths = {name: value.reshape((n, s) + value.shape[1:]) for name, value in
                     (("recovery_pct", recovery), ("ln_hrv", ln_hrv), ("hazard", hazard),
                      ("penalty", penalty), ("performance", perf_path))}
        return RolloutResult(score, expected, by_athlete(delta_p).mean(axis=1), mean_pen,
                             cvar_pen, paths)


def evaluate_sequences(start: RolloutStart, actions: np.ndarray, innovations: np.ndarray,
                       config: ObjectiveConfig = ObjectiveConfig(),
                       return_paths: bool = False) -> RolloutResult:
    """Score K legal plans per athlete (module docstring): `actions` (N, K, H) action indices
    (already legal, e.g. from `project_sequences`), `innovations` (N, S, H, 2) standard normals
    (`draw_innovations`). Returns a `RolloutResult` of (N, K) arrays. To score many batches from
    one start, build a `PreparedRollout` once and call its `evaluate`."""
    horizon = np.shape(actions)[2] if np.ndim(actions) == 3 else 0
    return PreparedRollout(start, horizon, innovations, config).evaluate(actions, return_paths)
