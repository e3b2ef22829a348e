"""`PeriodizationEnv` and its batched twin `BatchedPeriodizationEnv` (DESIGN §6-7).

One simulation core (`Simulation`) steps N athletes at once with numpy; the single Gymnasium env
is that core with N = 1, and the SB3 `VecEnv` is the core with N lanes. A lane's random numbers
come from a counter-based generator keyed by (seed, lane, episode, day, stream) (`_normals`), so
lane i of a batch and a single env built for lane i give the same rollout step for step.

A day of the simulation, for each athlete (morning-state timing of banister.py):

1. morning d: the world model's observation equations (observation.observation_means) on the
   physiological Banister state, plus each signal's noise (slow + fast AR(1) components,
   `dynamics.step.transition`), plus the illness/injury effect, give ln HRV, RHR and
   recovery; with probability `missing_day_prob` the device was not worn and the morning is
   missing (NaN);
2. the shared feature builder (physiology_model.features.online, identical to
   features.compute_features) turns the history into the observation; the shared safety module
   (constraints.py) gives the action mask;
3. the action: a masked request becomes the safest allowed session (constraints.enforce) and is
   counted as an attempted violation; its nominal load (load.action_loads, or continuous_loads
   for the (duration, intensity) action, no longer than the seed's session of its zone) drives the physiological state, the latent
   performance (performance.py, Busso's saturating dose-response) and the illness/injury
   hazard (hazard.py) that decides whether morning d + 1 starts an episode of
   `injury_mean_days` (geometric);
4. the reward (rewards.py) is computed on morning d + 1.

The agent sees only the observation (and the mask); the latent states, the performance and the
athlete's true parameters are in `info` (single env) or `Simulation` attributes (batched) for
evaluation only.

Before day 0 each athlete lives `warmup_days` days at its habitual load (from the steady state
of that load), so that baselines, ATL and CTL exist on day 0, as for a real user with a month of
data. Warm-up actions follow a habitual week (`HABITUAL_WEEK`) thinned by a per-athlete
probability so its mean load matches the athlete's habitual load.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from scipy.special import ndtri
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from physiology_model.data.load import SessionLoads, action_loads, continuous_loads
from physiology_model.data.table import ACTIONS, N_ACTIONS, NUMERIC_COLUMNS
from physiology_model.dynamics import banister
from physiology_model.dynamics.hazard import daily_hazard
from physiology_model.dynamics.observation import logit_to_recovery
from physiology_model.dynamics.params import HI_LOAD_SCALE_MIN, LOAD_SCALE_TRIMP, state_normaliser
from physiology_model.dynamics.step import (
    AthleteParams,
    AthleteState,
    DayNoise,
    observe,
    stationary_noise,
    transition,
)
from physiology_model.features.batch import FEATURE_NAMES, FeatureConfig
from physiology_model.features.online import OnlineFeatures
from physiology_model.model.world_model import WorldModel, shipped_model_dir
from simulator.cohort import Cohort, generate_cohort
from simulator.constraints import (
    ActionHistory,
    SafetyConfig,
    SafetyInputs,
    enforce,
    hard_mask,
    overtraining_score,
    soft_penalty,
)
from simulator.rewards import (
    RewardConfig,
    expected_injured_mornings,
    recovery_term,
    step_reward,
)

_HRV_RANGE, _RHR_RANGE = NUMERIC_COLUMNS["hrv_rmssd_ms"], NUMERIC_COLUMNS["rhr_bpm"]
REST = ACTIONS.index("rest")
HABITUAL_WEEK: tuple[str, ...] = ("rest", "z2_aerobic", "tempo_threshold", "z2_aerobic",
                                  "strength", "z2_aerobic", "hiit")
"""The warm-up's weekly pattern before thinning (a common recreational week)."""

_FEATURE_COLUMNS = {name: i for i, name in enumerate(FEATURE_NAMES)}
BAD_HRV_Z = -1.0
"""A "bad HRV" morning for the overtraining score (seed §6.3 leaves it open): ln HRV more than
one baseline SD below the 28-day baseline (outside the normal range HRV-guided training uses)."""
# Random streams of the counter-based generator.
_S_NOISE, _S_MISSING, _S_HAZARD, _S_DURATION, _S_WARMUP, _S_START, _S_SLOW_NOISE = range(7)


@dataclass(frozen=True)
class EnvConfig:
    """Settings of the simulated environment."""

    episode_days: int = 90
    warmup_days: int = 28
    burnin_days: int = 180
    """Unobserved days of the habitual pattern before the warm-up (see `Simulation.reset`)."""
    action_type: str = "discrete"
    """`discrete` (Discrete(6)) or `continuous` (Box: duration, intensity in [-1, 1])."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    enforce_safety: bool = True
    """False only for the no-safety ablation: the agent is shown every action as allowed and
    masked actions are executed; the hard rules are still evaluated, so risky days and
    attempted violations are still counted."""
    missing_day_prob: float = 0.02
    """Probability that a morning has no reading at all (device not worn)."""
    injury_mean_days: float = 5.0
    """Mean length of an illness/injury episode (geometric), days: most upper-respiratory
    illnesses of athletes last about a week or less (Schwellnus et al. 2016, Br J Sports Med
    50:1043)."""
    illness_ln_hrv_drop: float = 0.10
    """ln RMSSD lower while ill/injured (≈ 10 %)."""
    illness_rhr_rise_bpm: float = 3.0
    """Resting HR higher while ill/injured: Fitbit users' RHR rose by a few bpm in
    influenza-like illness (Radin et al. 2020, Lancet Digit Health 2:e85)."""
    duration_range_min: tuple[float, float] = (0.0, 120.0)
    """Continuous action: duration in minutes at action −1 and +1."""
    seed_session_lengths: bool = True
    """Continuous action: a session lasts at most the longest the seed prescribes for its zone
    (`SESSION_MAX_MIN`), and one under 10 minutes is rest (no load). False (the continuous
    env before 2026-12-07): any duration in `duration_range_min` at any intensity, where the
    SB3 SAC learnt to ask for a median 80 min of HIIT-zone work (336 TRIMP a session) and
    out-gained the planner that chooses among the seed's sessions
    (docs/results.md, "The shipped checkpoints")."""
    intensity_range_pct: tuple[float, float] = (50.0, 95.0)
    """Continuous action: intensity in % HRmax at action −1 and +1."""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    judge_day_is_event: bool = True
    """Performance is judged on the episode's last day (the potential reward telescopes to ΔP
    there and the MPC plans to it from `days_left`), so an athlete without an event of their
    own sees that day as their event in the `days_to_event` feature. Without it a learned
    policy cannot know when to taper, which the planner knows. False: no event, the feature
    reads its cap."""
    judging_day_terminal: bool = True
    """The episode's last day (the judging day: ΔP is measured there and nothing after it
    counts) ends the episode as a terminal state: `terminated=True` in the Gymnasium env and
    `TimeLimit.truncated=False` in the batched env, so no learner bootstraps a value past it.
    False is the old time-limit flag (kept to measure what it cost: with it a critic valued
    days after the judging day and "train less" looked best, issue 20)."""
    info_level: str = "minimal"
    """Batched env: `minimal` (SB3's per-env dicts only at episode ends; arrays are attributes
    of `Simulation`) or `full` (mask, executed action, violation, latents in every dict)."""

    def __post_init__(self) -> None:
        if self.action_type not in ("discrete", "continuous"):
            raise ValueError(f"action_type must be discrete or continuous, got "
                             f"{self.action_type!r}")
        if self.episode_days < 1 or self.warmup_days < 0:
            raise ValueError("episode_days must be ≥ 1 and warmup_days ≥ 0")
        if not 0.0 <= self.missing_day_prob < 1.0:
            raise ValueError("missing_day_prob must be in [0, 1)")
        if self.info_level not in ("minimal", "full"):
            raise ValueError(f"info_level must be minimal or full, got {self.info_level!r}")


# --------------------------------------------------------------------------------------------
# Counter-based random numbers: the same numbers for a lane whatever the batch around it.
# --------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014, OOPSLA): a bijective 64-bit hash."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _lane_keys(seed: int, lanes: np.ndarray, episode: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + _GOLDEN)
        k = _mix(base ^ (np.asarray(lanes, np.uint64) * _GOLDEN))
        return _mix(k + np.asarray(episode, np.uint64) * _M1)


def _uniforms(keys: np.ndarray, day: int, stream: int, k: int = 1) -> np.ndarray:
    """Uniforms in (0, 1), shape (N, k), a function of (key, day, stream, column) only."""
    counter = np.uint64(((day + 1_000) * 16 + stream) * 16) + np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(keys[:, None] + _GOLDEN * counter[None, :])
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 2.0 ** 53)


def _normals(keys: np.ndarray, day: int, stream: int, k: int = 1) -> np.ndarray:
    return ndtri(_uniforms(keys, day, stream, k))


_ACUTE_DAYS, _CHRONIC_DAYS, _CHRONIC_FLOOR = 7, 28, 0.2


def _acwr_and_monotony(ring: np.ndarray, oldest: int) -> tuple[np.ndarray, np.ndarray]:
    """ACWR and training monotony of day d from a full circular buffer of the last 28 daily
    loads (`oldest` = index of the oldest): the same numbers as hazard.acute_chronic_ratio and
    hazard.training_monotony give on day d (full windows), computed from the buffer only."""
    size = ring.shape[1]
    last7 = ring[:, (oldest + np.arange(size - _ACUTE_DAYS, size)) % size]
    acute = last7.mean(axis=1)
    chronic = ring.mean(axis=1)
    acwr = acute / np.maximum(chronic, _CHRONIC_FLOOR)
    sd = last7.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mono = np.where(acute > 0, acute / sd, 0.0)
    return acwr, np.minimum(np.nan_to_num(mono, nan=4.0, posinf=4.0), 4.0)


# --------------------------------------------------------------------------------------------
# The simulation core
# --------------------------------------------------------------------------------------------


SESSION_MAX_MIN: dict[str, float] = {"rest": 0.0, "active_recovery": 40.0, "z2_aerobic": 90.0,
                                     "tempo_threshold": 60.0, "hiit": 40.0, "strength": 120.0}
"""The longest session of each action the seed prescribes (§2.2: zone 1 20-40 min, zone 2
45-90, tempo/threshold 30-60, HIIT 20-40 including rest; strength has no range there and no
continuous session is one)."""
_SESSION_MAX = np.array([SESSION_MAX_MIN[a] for a in ACTIONS])


def continuous_session(action: np.ndarray, config: EnvConfig) -> np.ndarray:
    """Continuous actions (N, 2) in [-1, 1]² (clipped) → sessions (duration min, intensity
    % HRmax), (N, 2), over `config.duration_range_min` and `config.intensity_range_pct`; with
    `config.seed_session_lengths` no longer than the seed's longest session of its zone
    (`SESSION_MAX_MIN`, rest lasting 0)."""
    a = np.clip(np.asarray(action, dtype=float).reshape(-1, 2), -1.0, 1.0)
    (d0, d1), (i0, i1) = config.duration_range_min, config.intensity_range_pct
    session = np.stack([d0 + (a[:, 0] + 1) / 2 * (d1 - d0),
                        i0 + (a[:, 1] + 1) / 2 * (i1 - i0)], axis=1)
    if config.seed_session_lengths:
        session[:, 0] = np.minimum(session[:, 0], _SESSION_MAX[session_class(session)])
    return session


def session_class(session: np.ndarray) -> np.ndarray:
    """The action class of continuous sessions (duration, % HRmax), (N,), by the seed's zone
    bands (§2.2): < 10 min is rest; < 60 % active recovery; < 70 % Z2; < 85 % tempo/threshold;
    else HIIT."""
    duration, intensity = session[:, 0], session[:, 1]
    cls = np.select([intensity < 60, intensity < 70, intensity < 85],
                    [ACTIONS.index("active_recovery"), ACTIONS.index("z2_aerobic"),
                     ACTIONS.index("tempo_threshold")], ACTIONS.index("hiit"))
    return np.where(duration < 10.0, REST, cls)


def executed_loads(executed: np.ndarray, continuous: np.ndarray | None = None) -> SessionLoads:
    """The load of the executed sessions (N,): each session's nominal load
    (`load.action_loads`), or, for a continuous request (`continuous`, (N, 2) duration and
    intensity) that was executed as asked (its class is the executed one), that session's own
    load (`load.continuous_loads`). A request the rules changed, or a row of NaN (a session
    fixed for the lane, `Simulation.step`), gets the nominal load of the session done."""
    nominal = action_loads(np.asarray(executed))
    if continuous is None:
        return nominal
    asked = np.isfinite(continuous).all(axis=1)  # NaN rows: a session fixed for the lane
    session = np.where(asked[:, None], continuous, 0.0)
    own = continuous_loads(session[:, 0], session[:, 1])
    same = asked & (session_class(session) == executed)
    return SessionLoads(*(np.where(same, o, n) for o, n in zip(own, nominal)))


class Simulation:
    """N athletes of a cohort stepped together, one day per `step` (module docstring)."""

    def __init__(self, cohort: Cohort, n: int, config: EnvConfig = EnvConfig(),
                 lane_offset: int = 0) -> None:
        if n < 1:
            raise ValueError("a simulation needs at least one lane")
        self.cohort, self.n, self.config = cohort, n, config
        self.lanes = np.arange(lane_offset, lane_offset + n)
        self.episode = np.zeros(n, dtype=np.int64)
        self.seed = 0
        self._loads = np.stack(action_loads(np.arange(N_ACTIONS)))  # (3, 6)
        self._week = np.array([ACTIONS.index(a) for a in HABITUAL_WEEK])
        self._hard_lookup = np.isin(np.arange(N_ACTIONS),
                                    [ACTIONS.index(a) for a in config.safety.hard_actions])
        self.typical_recovery = None
        self.day = 0

    # -- athletes ------------------------------------------------------------------------------
    def _assign(self) -> None:
        c = self.cohort
        self.index = (self.lanes + self.episode * self.n) % c.n
        idx = self.index
        self.params = AthleteParams.from_mapping(
            {k: np.asarray(v)[idx] for k, v in c.physiology.items()},
            performance=c.performance_params(idx))
        self.hazard_params = c.hazard_params(idx)
        self.keys = _lane_keys(self.seed, self.lanes, self.episode)
        ctx = {k: np.asarray(v)[idx] for k, v in c.context.items()}
        self.context = ctx
        self.habitual = ctx["habitual_load"]
        self.typical_recovery = logit_to_recovery(self.params.mu_rec)
        drawn = np.floor(_uniforms(self.keys, -999, _S_START)[:, 0] * 7)
        given = np.asarray(ctx.get("weekday0", np.full(len(idx), np.nan)), dtype=float)
        self.weekday0 = np.where(np.isfinite(given), given, drawn).astype(int)

    def true_params(self, lane: int = 0) -> dict[str, float]:
        """The simulated athlete's parameters (evaluation only, never an observation)."""
        out = {k: float(v[lane]) for k, v in self.params.items()}
        out.update({f"perf_{k}": float(np.asarray(getattr(self.perf_params, k))[lane])
                    for k in ("fitness_gain", "variable_fatigue_gain", "tau_fit_days",
                              "tau_fat_days", "tau_gain_days")})
        out["habitual_load"] = float(self.habitual[lane])
        return out

    # -- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode in every lane (new athletes, next in the cohort); returns obs."""
        if seed is not None:
            self.seed = int(seed)
            self.episode[:] = 0
        self._assign()
        n, cfg = self.n, self.config
        hab = self.habitual
        zero = np.zeros(n)
        # the stationary start of each noise component
        fast, slow = stationary_noise(self.params, self.day_noise(-cfg.warmup_days - 1))
        self.athlete = AthleteState(
            banister.steady_morning_state(hab, 0.25 * hab, self.params.decays),
            banister.steady_morning_state(hab, zero, self.params.performance_decays),
            fast, slow)
        self.injury_left = np.zeros(n, dtype=np.int64)
        # w of the last 28 days, circular: the oldest at ring_pos
        self.load_ring = np.tile(hab[:, None], (1, _CHRONIC_DAYS))
        self.ring_pos = 0
        self.features = OnlineFeatures(n, config=cfg.features, age_years=self.context["age_years"],
                                       sex=self.context["sex"])
        self.history = ActionHistory(n, cfg.safety)
        self.hard_run = np.zeros(n)  # hard days in a row, up to and including the last one
        self.day = -cfg.warmup_days
        self.recovery_prev = np.full(n, np.nan)
        self.recovery_ring = np.full((n, 7), np.nan)
        self.rest_ring = np.ones((n, cfg.safety.overtraining_rest_window_days), dtype=bool)
        self.bad_hrv_run = np.zeros(n)
        self._new_episode_stats()
        # burn-in: months of the habitual pattern move the slow states (performance fitness,
        # τ ≈ 42 d) from the constant-load steady state to the pattern's own equilibrium, so
        # that carrying on as before gives ΔP ≈ 0 rather than a drift every policy inherits
        for day in range(self.day - cfg.burnin_days, self.day):
            a = self._habitual_action(day)
            trimp, hi, strength = (self._loads[i][a] for i in range(3))
            w = trimp / LOAD_SCALE_TRIMP
            self.athlete = transition(self.athlete, self.params,
                                      (w, (hi + strength) / HI_LOAD_SCALE_MIN), None)
        self._observe_morning()
        while self.day < 0:  # warm-up: observed, so baselines, ATL and CTL exist on day 0
            self._advance(self._habitual_action(self.day), warmup=True)
        self.perf_trace = np.full((n, cfg.episode_days + 1), np.nan)
        self.perf_trace[:, 0] = self.performance()
        self._new_episode_stats()
        self._record_day_stats()
        return self.obs

    def _habitual_action(self, day: int) -> np.ndarray:
        """The athlete's habitual session on `day`: `HABITUAL_WEEK`, each session kept with a
        per-athlete probability that makes its mean load the habitual load (else rest)."""
        week = self._week
        keep = np.clip(self.habitual * LOAD_SCALE_TRIMP / self._loads[0][week].mean(), 0, 1)
        u = _uniforms(self.keys, day, _S_WARMUP)[:, 0]
        return np.where(u < keep, week[(self.weekday0 + day) % 7], REST)

    def day_noise(self, day: int) -> DayNoise:
        """The standard normals of the noise innovations of `day` (into the next morning), each
        (N, 3): the fast components' and the slow components' keyed streams."""
        return DayNoise(_normals(self.keys, day, _S_NOISE, 3),
                        _normals(self.keys, day, _S_SLOW_NOISE, 3))

    @property
    def p(self) -> AthleteParams:
        """The athletes' physiology parameters (evaluation only, never an observation)."""
        return self.params

    @property
    def state(self) -> np.ndarray:
        """This morning's Banister physiology states, (N, 5)."""
        return self.athlete.banister

    @property
    def perf_state(self) -> np.ndarray:
        """This morning's performance states, (N, 5)."""
        return self.athlete.performance

    @property
    def perf_params(self) -> Any:
        return self.params.performance

    @property
    def noise(self) -> np.ndarray:
        """This morning's noise of ln HRV, RHR and the recovery logit, (N, 3)."""
        return self.athlete.noise

    @property
    def weekday(self) -> np.ndarray:
        return (self.weekday0 + self.day) % 7

    def oracle_view(self) -> dict[str, Any]:
        """Everything the simulator knows about each lane's athlete this morning, for the
        oracle planner only (never for a policy): true physiology parameters (`AthleteParams`
        of (N,)), `PerformanceParams` and `HazardParams` with (N,) fields, the Banister states
        (`state`, `perf_state`, (N, 5), morning of today, banister.py timing), the noise of
        ln HRV/RHR/recovery logit (`noise`, (N, 3)) and its slow component (`noise_slow`), the
        loads of the last 28 days (w units,
        (N, 28), newest last), the days left in the episode, the injury days left, the
        executed-action history (constraints.ActionHistory.array()) and the athlete's
        typical recovery (%)."""
        return {"physiology": self.params, "performance": self.perf_params,
                "hazard": self.hazard_params, "state": self.state.copy(),
                "perf_state": self.perf_state.copy(), "noise": self.noise.copy(),
                "noise_slow": self.athlete.noise_slow.copy(),
                "load_ring": np.roll(self.load_ring, -self.ring_pos, axis=1),
                "days_left": self.config.episode_days - self.day,
                "injury_left": self.injury_left.copy(), "history": self.history.array(),
                "typical_recovery": self.typical_recovery}

    def performance(self) -> np.ndarray:
        """Latent performance this morning (% of the untrained baseline), (N,)."""
        return self.perf_params.evaluate(self.perf_state)

    def performance_test(self, cv: float, rng: np.random.Generator) -> np.ndarray:
        """A performance test of every athlete this morning, (N,): the latent performance
        times exp(cv·ε), ε ~ N(0, 1), i.e. a within-athlete coefficient of variation cv (a
        time trial's: `agents.mpc.MPCConfig.performance_test_cv`). The test costs nothing
        here (no session is spent on it, the day's training goes ahead). The Busso model's P
        can fall below 0 under extreme overload (seen under random play); a result is the
        noisy P floored at 1 (% of the untrained baseline), so that it stays a speed or a
        power."""
        if not 0.0 <= cv < 1.0:
            raise ValueError(f"cv must be in [0, 1), got {cv}")
        return np.maximum(self.performance(), 1.0) * np.exp(cv * rng.standard_normal(self.n))

    def latents(self) -> dict[str, np.ndarray]:
        """This morning's latent states (normalised as world_model.latent_states: a steady
        load w reads as w) and P."""
        lat = self.state[:, :3] * state_normaliser(self.params.decays[:, :3])
        return {"fitness": lat[:, 0], "fatigue": lat[:, 1], "fast_fatigue": lat[:, 2],
                "performance": self.performance(), "injured": self.injury_left > 0}

    def critic_state(self) -> np.ndarray:
        """What the simulator knows and the wearable does not, (N, len(CRITIC_STATE_NAMES))
        float32, for training only (an asymmetric critic's extra input; never an observation
        and never an input of a deployed policy): the performance model's Banister states and
        parameters, P and its fitness and fatigue terms, what a unit of load today is still
        worth on the judging day (k1·e_fit^days_left, e_fat^days_left), the physiological
        latents, injury days left, days left, habitual load, ACWR and monotony, and the
        hazard parameters. Order: `CRITIC_STATE_NAMES`."""
        pp = self.perf_params
        n = self.n
        per = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n,))
        k1, k2, k3 = per(pp.fitness_gain), per(pp.fatigue_gain), per(pp.variable_fatigue_gain)
        s = self.perf_state
        fitness_term = k1 * s[:, banister.FITNESS]
        fatigue_term = (k2 * s[:, banister.FATIGUE]
                        + k3 * s[:, banister.VARIABLE_FATIGUE])
        days_left = float(self.config.episode_days - self.day)
        d = self.params.performance_decays
        lat = self.state[:, :3] * state_normaliser(self.params.decays[:, :3])
        acwr, mono = _acwr_and_monotony(self.load_ring, self.ring_pos)
        hz = self.hazard_params
        cols = [s[:, i] for i in range(s.shape[1])] + [
            self.performance(), fitness_term, fatigue_term,
            k1 * d[:, banister.FITNESS] ** days_left, d[:, banister.FATIGUE] ** days_left,
            k1, k2, k3, per(pp.tau_fit_days), per(pp.tau_fat_days),
            per(pp.tau_gain_days if pp.tau_gain_days is not None else 0.0),
            lat[:, 0], lat[:, 1], lat[:, 2], self.injury_left.astype(float),
            np.full(n, days_left), self.habitual, acwr, mono,
            per(hz.intercept), per(hz.spike_coef), per(hz.low_recovery_coef),
            per(hz.monotony_coef)]
        return np.nan_to_num(np.stack(cols, axis=1), nan=0.0, posinf=0.0,
                             neginf=0.0).astype(np.float32)

    def _observe_morning(self) -> None:
        """This morning's readings → features and mask."""
        cfg = self.config
        readings = observe(self.athlete, self.params, self.weekday)
        ill = self.injury_left > 0
        ln_hrv = readings["hrv"] - cfg.illness_ln_hrv_drop * ill
        rhr = readings["rhr"] + cfg.illness_rhr_rise_bpm * ill
        # recovery's link reads the HRV/RHR deviations the illness caused too
        rec_logit = (readings["recovery"]
                     - ill * (self.params.g_hrv * cfg.illness_ln_hrv_drop
                              + self.params.g_rhr * cfg.illness_rhr_rise_bpm))
        missing = _uniforms(self.keys, self.day, _S_MISSING)[:, 0] < cfg.missing_day_prob
        # A device reports within the physiological ranges of the daily table (a draw in the
        # population's tail would otherwise leave them, e.g. RMSSD above 300 ms).
        reported = np.clip(np.exp(ln_hrv), _HRV_RANGE.lo, _HRV_RANGE.hi)
        ln_hrv = np.log(reported)
        hrv_ms = np.where(missing, np.nan, reported)
        rhr = np.where(missing, np.nan, np.clip(rhr, _RHR_RANGE.lo, _RHR_RANGE.hi))
        recovery = np.where(missing, np.nan, logit_to_recovery(rec_logit))
        self.reading = {"hrv_rmssd_ms": hrv_ms, "rhr_bpm": rhr, "recovery_pct": recovery,
                        "injury": ill.astype(float)}
        day0 = self.day
        event = self.context["event_day"]
        if cfg.judge_day_is_event:
            event = np.where(event >= 0, event, cfg.episode_days)
        dte = np.where(event >= 0, event - day0, np.nan)
        cyc0 = self.context["cycle_day0"]
        cycle = np.where(np.isfinite(cyc0),
                         (cyc0 - 1 + day0) % cfg.features.cycle_length_days + 1, np.nan)
        obs = self.features.observe(self.reading, self.weekday, days_to_event=dte,
                                    cycle_day=cycle)
        self.obs = obs.astype(np.float32)
        f = _FEATURE_COLUMNS
        inputs = SafetyInputs(
            recovery_pct=recovery, recovery_pct_yesterday=self.recovery_prev,
            ln_hrv=np.where(missing, np.nan, ln_hrv),
            ln_hrv_baseline=obs[:, f["ln_hrv_baseline_28d"]],
            ln_hrv_baseline_sd=obs[:, f["ln_hrv_baseline_sd_28d"]],
            rhr_bpm=rhr, injury=ill.astype(float), history=self.history.array())
        result = hard_mask(inputs, self.config.safety)
        self.mask, self.reasons = result.mask, result.reasons
        # what the agent is shown: the mask, or (no-safety ablation) every action
        self.agent_mask = self.mask if cfg.enforce_safety else np.ones_like(self.mask)
        self.recovery_prev = recovery
        self.hrv_z = obs[:, f["ln_hrv_z_28d"]]
        self.recovery_ring = np.concatenate([self.recovery_ring[:, 1:], recovery[:, None]], 1)
        bad = np.where(missing, np.nan, self.hrv_z < BAD_HRV_Z)
        self.bad_hrv_run = np.where(np.isnan(bad), self.bad_hrv_run,
                                    np.where(bad == 1, self.bad_hrv_run + 1, 0))

    def to_session(self, action: np.ndarray) -> np.ndarray:
        """A continuous action in [-1, 1]² → (duration min, intensity % HRmax), (N, 2)."""
        return continuous_session(np.asarray(action).reshape(self.n, 2), self.config)

    def step(self, action: np.ndarray, fixed: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, bool]:
        """One day for every lane: returns (obs of the next morning, reward, episode over).
        `fixed` (N,) int, −1 where the action stands: lanes whose session is set whatever the
        policy asked (a performance test taken as the day's session), done as that discrete
        session with its nominal load, under the rules like any request."""
        cfg = self.config
        continuous = None
        if cfg.action_type == "continuous":
            continuous = self.to_session(action)
            requested = session_class(continuous)
        else:
            requested = np.asarray(action).reshape(self.n).astype(np.int64)
            if requested.min() < 0 or requested.max() >= N_ACTIONS:
                raise ValueError(f"actions must be in 0-{N_ACTIONS - 1}")
        if fixed is not None:
            fixed = np.asarray(fixed).reshape(self.n).astype(np.int64)
            if fixed.min() < -1 or fixed.max() >= N_ACTIONS:
                raise ValueError(f"fixed sessions must be −1 or in 0-{N_ACTIONS - 1}")
            requested = np.where(fixed >= 0, fixed, requested)
            if continuous is not None:  # a fixed session carries its nominal load
                continuous = np.where((fixed >= 0)[:, None], np.nan, continuous)
        reward = self._advance(requested, continuous=continuous)
        return self.obs, reward, self.day >= cfg.episode_days

    def _advance(self, requested: np.ndarray, *, warmup: bool = False,
                 continuous: np.ndarray | None = None) -> np.ndarray:
        cfg, n = self.config, self.n
        executed, violated = enforce(requested, self.mask)
        if not cfg.enforce_safety:
            executed = requested
        trimp, hi_min, strength = executed_loads(executed, continuous)
        w = trimp / LOAD_SCALE_TRIMP
        u = (hi_min + strength) / HI_LOAD_SCALE_MIN
        z45_nominal = hi_min
        self.features.record_load(trimp, z4_min=z45_nominal, z5_min=np.zeros(n),
                                  strength_min=strength,
                                  rest_session=(executed == REST).astype(float))
        recovery_today = self.reading["recovery_pct"]
        self.history.push(executed)
        self.hard_run = np.where(self._hard_lookup[executed], self.hard_run + 1, 0)
        self.rest_ring = np.concatenate([self.rest_ring[:, 1:], (executed == REST)[:, None]], 1)
        # physiology, performance, noise and hazard move to the next morning
        self.athlete = transition(self.athlete, self.params, (w, u), self.day_noise(self.day))
        self.load_ring[:, self.ring_pos] = w
        self.ring_pos = (self.ring_pos + 1) % self.load_ring.shape[1]
        acwr, mono = _acwr_and_monotony(self.load_ring, self.ring_pos)
        h = daily_hazard(acwr, recovery_today, mono, self.hazard_params)
        was_injured = self.injury_left > 0
        self.injury_left = np.maximum(self.injury_left - 1, 0)
        onset = (~was_injured) & (_uniforms(self.keys, self.day, _S_HAZARD)[:, 0] < h)
        u_len = _uniforms(self.keys, self.day, _S_DURATION)[:, 0]
        q = 1.0 / cfg.injury_mean_days
        length = 1 + np.floor(np.log(u_len) / np.log1p(-q)).astype(np.int64)
        self.injury_left = np.where(onset, length, self.injury_left)
        self.day += 1
        self._observe_morning()
        if warmup:
            return np.zeros(n)
        # reward on the new morning
        morning = self.day
        self.perf_trace[:, morning] = self.performance()
        penalty = soft_penalty(self.reading["recovery_pct"], self.hard_run, -self.hrv_z,
                               cfg.safety)
        if cfg.reward.injury_cost == "expected":  # tonight's onset, priced at its mean
            injured = np.where(was_injured, 0.0, h) * expected_injured_mornings(
                cfg.injury_mean_days, cfg.episode_days - morning + 1)
        else:
            injured = (self.injury_left > 0).astype(float)
        penalty = penalty + cfg.reward.injury_day_penalty * injured
        rec = recovery_term(self.reading["recovery_pct"], self.typical_recovery)
        final = morning >= cfg.episode_days
        reward = step_reward(cfg.reward, self.perf_trace, morning, final, rec, penalty)
        self._update_episode_stats(requested, executed, violated, reward, penalty, onset,
                                   trimp)
        self.last_executed, self.last_violated = executed, violated
        return reward

    # -- episode statistics (for the evaluation) -------------------------------------------------
    def _new_episode_stats(self) -> None:
        n = self.n
        self.stats = {
            "return": np.zeros(n), "penalty": np.zeros(n), "attempted_violations": np.zeros(n),
            "executed_violations": np.zeros(n), "injury_onsets": np.zeros(n),
            "injured_days": np.zeros(n), "recovery_gt60_days": np.zeros(n),
            "recovery_days": np.zeros(n), "hrv_crash_days": np.zeros(n),
            "risky_days": np.zeros(n), "load_trimp": np.zeros(n),
            "overtraining_score": np.zeros(n),
            "action_counts": np.zeros((n, N_ACTIONS)),
        }
        self.ctl_start = None

    def _record_day_stats(self) -> None:
        s = self.stats
        rec = self.reading["recovery_pct"]
        s["recovery_days"] += np.isfinite(rec)
        s["recovery_gt60_days"] += np.nan_to_num(rec) > 60.0
        s["hrv_crash_days"] += self.hrv_z < -self.config.safety.hrv_block_sd
        s["risky_days"] += self.reasons != 0
        s["injured_days"] += self.injury_left > 0
        if self.ctl_start is None:
            self.ctl_start = self.obs[:, _FEATURE_COLUMNS["ctl_trimp"]].astype(float)
            self.perf_start = self.performance()

    def _update_episode_stats(self, requested, executed, violated, reward, penalty, onset,
                              trimp) -> None:
        s = self.stats
        s["return"] += reward
        s["penalty"] += penalty
        s["attempted_violations"] += violated
        s["executed_violations"] += violated & (executed == requested)
        s["injury_onsets"] += onset
        s["load_trimp"] += trimp
        seen = np.isfinite(self.recovery_ring)
        recovery_7d = np.where(seen.any(axis=1), np.where(seen, self.recovery_ring, 0.0).sum(1)
                               / np.maximum(seen.sum(1), 1), np.nan)
        s["overtraining_score"] += overtraining_score(self.bad_hrv_run, recovery_7d,
                                                      self.rest_ring.sum(axis=1),
                                                      self.config.safety)
        s["action_counts"][np.arange(self.n), executed] += 1
        self._record_day_stats()

    def episode_summary(self) -> dict[str, np.ndarray]:
        """Per-lane statistics of the episode so far, each (N,) (analysis reads these)."""
        s = self.stats
        days = max(self.day, 1)
        ctl_end = self.obs[:, _FEATURE_COLUMNS["ctl_trimp"]].astype(float)
        counts = s["action_counts"]
        out = {k: v.copy() for k, v in s.items() if k != "action_counts"}
        out.update({
            "days": np.full(self.n, float(self.day)),
            "delta_performance": self.performance() - self.perf_start,
            "delta_ctl": ctl_end - self.ctl_start,
            "pct_recovery_gt60": 100.0 * s["recovery_gt60_days"] / np.maximum(s["recovery_days"], 1),
            "mean_load_trimp": s["load_trimp"] / days,
            "overtraining_score": s["overtraining_score"] / days,
            "athlete": self.index.astype(float),
        })
        for i, a in enumerate(ACTIONS):
            out[f"share_{a}"] = counts[:, i] / days
        return out


CRITIC_STATE_NAMES: tuple[str, ...] = (
    tuple(f"perf_state_{c}" for c in banister.CHANNELS)
    + ("performance", "performance_fitness_term", "performance_fatigue_term",
       "fitness_gain_left", "fatigue_decay_left", "fitness_gain", "fatigue_gain",
       "variable_fatigue_gain", "tau_fit_days", "tau_fat_days", "tau_gain_days",
       "fitness", "fatigue", "fast_fatigue", "injury_days_left", "days_left",
       "habitual_load", "acwr", "monotony", "hazard_intercept", "hazard_spike_coef",
       "hazard_low_recovery_coef", "hazard_monotony_coef"))
"""Columns of `Simulation.critic_state` (training-only inputs of an asymmetric critic)."""


# --------------------------------------------------------------------------------------------
# Gymnasium and SB3 interfaces
# --------------------------------------------------------------------------------------------


def _spaces(config: EnvConfig) -> tuple[gym.spaces.Space, gym.spaces.Box]:
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(len(FEATURE_NAMES),), dtype=np.float32)
    if config.action_type == "continuous":
        return gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32), obs
    return gym.spaces.Discrete(N_ACTIONS), obs


class PeriodizationEnv(gym.Env):
    """One simulated athlete (Gymnasium API): 90-day episodes of daily training decisions.

    Observation: the 48 features of the shared builder (what a wearable shows). Action:
    `Discrete(6)` (table.ACTIONS) with `action_masks()` (sb3-contrib's convention) and the same
    mask in `info["action_mask"]`, or a `Box` (duration, intensity) in [-1, 1]² projected on the
    allowed set. `info` also carries the executed action, whether the request was masked, the
    reasons the rules fired, and, for evaluation and training only, the latent states,
    `critic_state` (`Simulation.critic_state`, an asymmetric critic's input) and (at reset)
    the athlete's true parameters. The judging day (the last) ends the episode with
    `terminated=True` (`EnvConfig.judging_day_terminal`). `lane` picks the athlete stream: lane i of a
    `BatchedPeriodizationEnv` with the same cohort, config and seed gives the same rollout.
    """

    metadata: ClassVar[dict[str, list[str]]] = {"render_modes": []}

    def __init__(self, cohort: Cohort | None = None, config: EnvConfig = EnvConfig(),
                 lane: int = 0) -> None:
        super().__init__()
        if cohort is None:
            cohort = default_cohort()
        self.config = config
        self.sim = Simulation(cohort, 1, config, lane_offset=lane)
        self.action_space, self.observation_space = _spaces(config)
        self._started = False

    def action_masks(self) -> np.ndarray:
        return self.sim.agent_mask[0].copy()

    def _info(self) -> dict[str, Any]:
        lat = self.sim.latents()
        return {"action_mask": self.sim.agent_mask[0].copy(), "reasons": int(self.sim.reasons[0]),
                "latent": {k: float(v[0]) for k, v in lat.items()}, "day": self.sim.day,
                "critic_state": self.sim.critic_state()[0]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            if self._started:  # the next athlete of this lane, same random stream
                self.sim.episode += 1
            else:
                seed = int(self.np_random.integers(0, 2 ** 31))
        self._started = True
        obs = self.sim.reset(seed)
        info = self._info()
        info["true_params"] = self.sim.true_params(0)
        return obs[0].copy(), info

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64 if self.config.action_type == "continuous"
                       else np.int64).reshape(1, -1)
        obs, reward, done = self.sim.step(a if self.config.action_type == "continuous"
                                          else a[:, 0])
        info = self._info()
        info["executed_action"] = int(self.sim.last_executed[0])
        info["violation_attempted"] = bool(self.sim.last_violated[0])
        if done:
            info["episode_summary"] = {k: float(v[0]) for k, v in
                                       self.sim.episode_summary().items()}
        terminal = self.config.judging_day_terminal
        return (obs[0].copy(), float(reward[0]), bool(done) and terminal,
                bool(done) and not terminal, info)


class BatchedPeriodizationEnv(VecEnv):
    """N simulated athletes stepped together in numpy, behind SB3's `VecEnv` interface.

    All lanes run in lockstep (same episode length), so they end together; SB3's auto-reset
    convention is followed (the returned observation is the new episode's first, the last one
    is in `infos[i]["terminal_observation"]`). `action_masks()` gives the (N, 6) mask
    (sb3-contrib's MaskablePPO calls `env_method("action_masks")`, answered here too).
    Per-step arrays (mask, executed actions, latents, episode statistics) are attributes of
    `self.sim`; per-env dicts are built only at episode ends unless `info_level="full"`.

    The judging day is terminal (`EnvConfig.judging_day_terminal`): `TimeLimit.truncated` is
    False at episode ends, so SB3's PPO does not add γ·V(terminal obs) to the last reward and
    SB3's replay buffers store `done=1`. For training only, `critic_states()` gives the
    lanes' `Simulation.critic_state` this morning (N, L), and at episode ends
    `infos[i]["terminal_critic_state"]` keeps the judging day's before the auto-reset, as
    `terminal_observation` keeps its observation.
    """

    def __init__(self, cohort: Cohort, n_envs: int, config: EnvConfig = EnvConfig(),
                 seed: int = 0) -> None:
        self.config = config
        self.render_mode = None  # SB3 warns when a VecEnv has none
        self.sim = Simulation(cohort, n_envs, config)
        action_space, observation_space = _spaces(config)
        super().__init__(n_envs, observation_space, action_space)
        self._seed = seed
        self._actions: np.ndarray | None = None
        self.fixed: np.ndarray | None = None
        """Sessions fixed for the next step only (`Simulation.step`'s `fixed`; a wrapper that
        tests its athletes sets it before stepping), then cleared."""
        self.last_summary: dict[str, np.ndarray] | None = None

    # SB3 VecEnv API ------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if getattr(self, "_seeds", None) and self._seeds[0] is not None \
            else self._seed
        self._seeds = [None] * self.num_envs
        return self.sim.reset(seed).copy()

    def seed(self, seed: int | None = None):
        if seed is not None:
            self._seed = int(seed)
        return [self._seed] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, reward, done = self.sim.step(self._actions, self.fixed)
        self.fixed = None
        dones = np.full(self.num_envs, done)
        if self.config.info_level == "full":
            latent = self.sim.critic_state()
            infos = [{"action_mask": self.sim.agent_mask[i].copy(),
                      "executed_action": int(self.sim.last_executed[i]),
                      "violation_attempted": bool(self.sim.last_violated[i]),
                      "critic_state": latent[i]}
                     for i in range(self.num_envs)]
        else:
            infos = [{} for _ in range(self.num_envs)]
        if done:
            summary = self.sim.episode_summary()
            self.last_summary = summary
            terminal_latent = self.sim.critic_state()
            for i, info in enumerate(infos):
                info["terminal_critic_state"] = terminal_latent[i]
                info["terminal_observation"] = obs[i].copy()
                info["terminal_action_mask"] = self.sim.agent_mask[i].copy()
                info["episode"] = {"r": float(summary["return"][i]),
                                   "l": int(self.config.episode_days)}
                info["TimeLimit.truncated"] = not self.config.judging_day_terminal
            self.sim.episode += 1
            obs = self.sim.reset()
        return obs.copy(), reward.astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        return self.sim.agent_mask.copy()

    def critic_states(self) -> np.ndarray:
        """This morning's `Simulation.critic_state` of every lane, (N, L) float32: training
        only (an asymmetric critic's input), never a policy's."""
        return self.sim.critic_state()

    def close(self) -> None:
        """Nothing to release: the simulation holds numpy arrays only (SB3's VecEnv API)."""

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        if method_name == "action_masks":
            masks = self.sim.agent_mask
            return [masks[i].copy() for i in self._get_indices(indices)]
        raise AttributeError(f"the batched env has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def default_cohort(n: int = 64, seed: int = 0) -> Cohort:
    """A cohort drawn from the shipped world model (for `gym.make("Periodization-v0")`)."""

    model_dir = shipped_model_dir()
    return generate_cohort(WorldModel.load(model_dir), n, seed, model_dir=str(model_dir))


def make_config(**overrides: Any) -> EnvConfig:
    """An `EnvConfig` with some fields replaced (nested reward/safety given as objects)."""
    return replace(EnvConfig(), **overrides)
