"""Baseline policies (seed TRD §6.4, DESIGN §8): random, the seed's recovery rule, HRV-guided
training and fixed 3:1 periodization. Behaviour cloning of the real users is in `agents.bc`.

Every baseline is a `agents.policy.Policy`: batched over athletes, never choosing a masked
action. Planned sessions the mask forbids become the closest allowed easier session
(`agents.policy.step_down`, the same ranking the env's enforcement uses), so the env never has to
overrule a baseline.

Weekly loads quoted in the docstrings are nominal: the sum over a template week of each
session's Edwards TRIMP and zone 4-5 minutes from `physiology_model.data.load.action_loads` with the
shipped session table (rest 0, active recovery 30, Z2 135, tempo 146, HIIT 134, strength 78 TRIMP);
`week_nominal_load` recomputes them, and the tests check the docstrings against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from agents.policy import (
    ACTION_INDEX,
    DayCounter,
    check_batch,
    feature,
    masked_choice,
    masked_sample,
    step_down,
    weekday_of,
)
from physiology_model.data.load import action_loads
from physiology_model.data.table import ACTIONS
from simulator.constraints import DEFAULT_SAFETY_CONFIG

_RANK = np.array([DEFAULT_SAFETY_CONFIG.intensity_order.index(a) for a in ACTIONS], dtype=float)
"""Position of each action in the env's intensity order (rest 0 … HIIT 5)."""


class WeekLoad(NamedTuple):
    """Nominal load of a template week."""

    trimp: float
    """Edwards TRIMP summed over the week."""
    z45_min: float
    """Minutes in zones 4-5 summed over the week."""


def week_nominal_load(week: Sequence[str]) -> WeekLoad:
    """Nominal TRIMP and zone 4-5 minutes of a week of action names (`action_loads`)."""
    _check_week("week", week, length=None)
    loads = action_loads(np.array([ACTION_INDEX[a] for a in week], dtype=np.int64))
    return WeekLoad(float(loads.trimp.sum()), float(loads.hi_min.sum()))


def _check_week(name: str, week: object, length: int | None = 7) -> None:
    if not isinstance(week, tuple) or not all(isinstance(a, str) for a in week):
        raise ValueError(f"{name} must be a tuple of action names, got {week!r}")
    unknown = [a for a in week if a not in ACTION_INDEX]
    if unknown:
        raise ValueError(f"{name}: unknown actions {unknown}; expected some of {ACTIONS}")
    if length is not None and len(week) != length:
        raise ValueError(f"{name} must list {length} days, got {len(week)}")


def _indices(week: tuple[str, ...]) -> np.ndarray:
    return np.array([ACTION_INDEX[a] for a in week], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Random
# --------------------------------------------------------------------------------------------


class RandomPolicy:
    """Uniformly random among each athlete's allowed actions (seed TRD §6.4 baseline 1, "random
    action each day", restricted to the safety mask so that it is comparable with the others).

    `reset(seed)` reseeds its generator, so the same seed gives the same actions for the same
    masks; `reset(None)` keeps the stream going.
    """

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the generator when `seed` is given (there is no other state)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One uniform draw per athlete from its allowed actions → (N,) int64."""
        _, m = check_batch(obs, mask)
        return masked_sample(np.ones(m.shape), m, self._rng)


# --------------------------------------------------------------------------------------------
# The seed's rule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRuleConfig:
    """Threshold of the seed's rule."""

    recovery_threshold_pct: float = 70.0
    """Recovery strictly above this (%) means an intensity day (seed TRD §6.4: "> 70 %")."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.recovery_threshold_pct <= 100.0:
            raise ValueError(f"recovery_threshold_pct must be in 0-100, got "
                             f"{self.recovery_threshold_pct!r}")


class SeedRulePolicy:
    """The seed's rule-based heuristic (seed TRD §6.4 baseline 2): "if recovery > 70 % →
    intensity, else rest".

    Reads `recovery_pct` of the observation (the feature builder's filled value: the morning's
    score, else the last one within 2 days, else the athlete's 28-day mean, else 60 %).
    Intensity = HIIT; if HIIT is masked, tempo/threshold; if both are, the most demanding allowed
    action in the env's intensity order (strength, Z2, active recovery, rest). Otherwise rest, or
    the least demanding allowed action when rest is masked. Stateless.
    """

    name = "seed_rule"

    def __init__(self, config: SeedRuleConfig = SeedRuleConfig()) -> None:
        self.config = config

    def reset(self, seed: int | None = None) -> None:
        """Nothing to clear: the rule has no state and no randomness."""

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Intensity when recovery > threshold, else rest → (N,) int64."""
        o, m = check_batch(obs, mask)
        go = feature(o, "recovery_pct") > self.config.recovery_threshold_pct
        scores = np.where(go[:, None], _RANK[None, :], -_RANK[None, :])
        return masked_choice(scores, m)


# --------------------------------------------------------------------------------------------
# HRV-guided training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HRVGuidedConfig:
    """The weekly plan and the HRV bands of `HRVGuidedPolicy`."""

    week: tuple[str, ...] = ("rest", "hiit", "z2_aerobic", "tempo_threshold", "active_recovery",
                             "hiit", "z2_aerobic")
    """Planned session of each weekday, Monday first: one rest day, three hard days (as
    Vesterinen et al.'s predefined group: two to three moderate/high-intensity sessions a week),
    easy days between them."""
    hard_actions: tuple[str, ...] = ("tempo_threshold", "hiit")
    """Planned sessions that go ahead only when HRV is in or above the normal range."""
    hard_band_sd: float = 0.5
    """A hard day needs ln RMSSD ≥ baseline − this × baseline SD: the lower edge of the smallest
    worthwhile change band of Vesterinen et al. (2016)."""
    train_band_sd: float = 1.0
    """Below baseline − this × SD, any training day becomes active recovery: Kiviniemi et al.'s
    (2007) "significant decrease" (below the reference mean − SD)."""
    easy_action: str = "z2_aerobic"
    """What a hard day becomes when HRV is below the hard band but not the training band."""
    recovery_action: str = "active_recovery"
    """What a training day becomes when HRV is below the training band."""
    hard_min_recovery_pct: float = 50.0
    """Without an HRV baseline: a hard day needs recovery ≥ this (%). 50 % is the 31st
    percentile of the shipped WHOOP users' recovery (7,062 mornings, data/real/whoop and
    whoop_api), the share of days that lie below −0.5 SD on a normal scale."""
    train_min_recovery_pct: float = 37.0
    """Without an HRV baseline: below this recovery (%), training days become active recovery.
    37 % is the same users' 16th percentile, the share below −1 SD."""

    def __post_init__(self) -> None:
        _check_week("week", self.week)
        _check_week("hard_actions", self.hard_actions, length=None)
        for name in ("easy_action", "recovery_action"):
            if getattr(self, name) not in ACTION_INDEX:
                raise ValueError(f"{name} must be one of {ACTIONS}, got {getattr(self, name)!r}")
        if not 0.0 <= self.hard_band_sd <= self.train_band_sd:
            raise ValueError(f"need 0 ≤ hard_band_sd ≤ train_band_sd, got {self.hard_band_sd!r} "
                             f"and {self.train_band_sd!r}")
        if not 0.0 <= self.train_min_recovery_pct <= self.hard_min_recovery_pct <= 100.0:
            raise ValueError(f"need 0 ≤ train_min_recovery_pct ≤ hard_min_recovery_pct ≤ 100, got "
                             f"{self.train_min_recovery_pct!r} and {self.hard_min_recovery_pct!r}")


def hrv_baseline_established(obs: np.ndarray) -> np.ndarray:
    """(N,) bool: whether the observation carries a 28-day ln HRV baseline.

    The feature builder fills an unestablished baseline with the day's own ln HRV and its z-score
    with 0 (`physiology_model.features.batch.FEATURES`), so both equalities together mark the fill; an
    established baseline equal to today's value to the last bit is a measure-zero event, and then
    the HRV test would pass either way.
    """
    ln_hrv = feature(obs, "ln_hrv")
    return ~((feature(obs, "ln_hrv_baseline_28d") == ln_hrv) & (feature(obs, "ln_hrv_z_28d") == 0))


class HRVGuidedPolicy:
    """HRV-guided training: a weekly plan whose hard days go ahead only when the morning's HRV is
    within or above the athlete's normal range.

    Sources: Kiviniemi et al. 2007, Eur J Appl Physiol 101:743 (high intensity when HRV had
    increased or not changed; low intensity or rest when it fell below the 10-day mean − SD);
    Vesterinen et al. 2016, Med Sci Sports Exerc 48:1347 (moderate/high-intensity sessions only
    when ln RMSSD was within the smallest worthwhile change, baseline ± 0.5 SD; otherwise low
    intensity). As DESIGN §8 asks, HRV above the band also counts as ready (Kiviniemi's rule;
    Vesterinen also downgraded above it). Differences from the trials: the daily ln RMSSD is
    compared (Vesterinen used a 7-day rolling mean), against the feature builder's 28-day baseline
    (`ln_hrv_baseline_28d`, `ln_hrv_baseline_sd_28d`).

    Each morning, for the weekday's planned session (`HRVGuidedConfig.week`, nominal load
    715 TRIMP and 73 Z4-5 minutes a week):

    - ln_hrv ≥ baseline − 0.5·SD: as planned;
    - a hard day (tempo/HIIT) with ln_hrv below that: Z2 aerobic;
    - any training day with ln_hrv < baseline − 1·SD: active recovery;
    - before a baseline exists (the first 7 observed days), recovery ≥ 50 % and ≥ 37 % play the
      two bands' roles (`HRVGuidedConfig`);
    - rest stays rest; a masked result steps down to the closest allowed easier session.

    The weekday comes from the observation (`dow_sin`, `dow_cos`), so the policy is stateless.
    """

    name = "hrv_guided"

    def __init__(self, config: HRVGuidedConfig = HRVGuidedConfig()) -> None:
        self.config = config
        self._week = _indices(config.week)
        self._hard = np.isin(np.arange(len(ACTIONS)), _indices(config.hard_actions))

    def reset(self, seed: int | None = None) -> None:
        """Nothing to clear: the plan is keyed by weekday and the rule has no randomness."""

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The weekday's plan, adjusted to the morning's HRV, within the mask → (N,) int64."""
        o, m = check_batch(obs, mask)
        cfg = self.config
        planned = self._week[weekday_of(o)]
        ready_hard, ready_train = self._readiness(o)
        training = planned != ACTION_INDEX["rest"]
        session = np.where(self._hard[planned] & ~ready_hard, ACTION_INDEX[cfg.easy_action],
                           planned)
        session = np.where(training & ~ready_train, ACTION_INDEX[cfg.recovery_action], session)
        return step_down(session, m)

    def _readiness(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hard day allowed, training day allowed), each (N,) bool."""
        cfg = self.config
        ln_hrv = feature(obs, "ln_hrv")
        base = feature(obs, "ln_hrv_baseline_28d")
        sd = feature(obs, "ln_hrv_baseline_sd_28d")
        recovery = feature(obs, "recovery_pct")
        has_base = hrv_baseline_established(obs)
        ready_hard = np.where(has_base, ln_hrv >= base - cfg.hard_band_sd * sd,
                              recovery >= cfg.hard_min_recovery_pct)
        ready_train = np.where(has_base, ln_hrv >= base - cfg.train_band_sd * sd,
                               recovery >= cfg.train_min_recovery_pct)
        return ready_hard, ready_train


# --------------------------------------------------------------------------------------------
# Fixed periodization
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedPeriodizationConfig:
    """The repeating block of `FixedPeriodizationPolicy`: one tuple of 7 sessions per week."""

    weeks: tuple[tuple[str, ...], ...] = (
        ("rest", "z2_aerobic", "tempo_threshold", "active_recovery", "z2_aerobic",
         "active_recovery", "z2_aerobic"),
        ("rest", "z2_aerobic", "tempo_threshold", "active_recovery", "z2_aerobic", "z2_aerobic",
         "hiit"),
        ("rest", "z2_aerobic", "tempo_threshold", "z2_aerobic", "hiit", "z2_aerobic",
         "tempo_threshold"),
        ("rest", "z2_aerobic", "active_recovery", "z2_aerobic", "active_recovery", "z2_aerobic",
         "active_recovery"),
    )
    """Weeks 1-3 add a hard day each (1, 2, 3 tempo/HIIT days, easy days turning into Z2);
    week 4 deloads to Z2 and active recovery. Each week starts with its rest day, so every 7
    consecutive days hold one."""

    def __post_init__(self) -> None:
        if not isinstance(self.weeks, tuple) or not self.weeks:
            raise ValueError(f"weeks must be a non-empty tuple of weeks, got {self.weeks!r}")
        for i, week in enumerate(self.weeks):
            _check_week(f"weeks[{i}]", week)


class FixedPeriodizationPolicy:
    """Fixed periodization, 3 weeks progressive + 1 week deload, cycling (seed TRD §6.4
    baseline 3; the 3:1 loading pattern of classical periodization, e.g. Bompa & Haff 2009,
    "Periodization", 5th ed.).

    Day k of the episode (k = 0 on the first `act` after `reset`) gets session k mod 7 of week
    (k div 7) mod 4 of `FixedPeriodizationConfig.weeks`, whatever the athlete's state. Nominal
    weekly load of the default block: 611, 716, 832, 495 TRIMP (14, 43, 57, 0 Z4-5 minutes):
    rising for three weeks, then a deload to 60 % of week 3. A masked day takes the closest
    allowed easier session (`agents.policy.step_down`).

    State: a per-athlete day counter, advanced by each `act` and cleared by `reset`.
    """

    name = "fixed_periodization"

    def __init__(self, config: FixedPeriodizationConfig = FixedPeriodizationConfig()) -> None:
        self.config = config
        self._plan = np.concatenate([_indices(week) for week in config.weeks])
        self._counter = DayCounter()

    def reset(self, seed: int | None = None) -> None:
        """Start the block again at week 1, day 1 (no randomness to seed)."""
        self._counter.reset()

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's planned session, stepped down where masked → (N,) int64."""
        o, m = check_batch(obs, mask)
        day = self._counter.advance(o.shape[0])
        return step_down(self._plan[day % len(self._plan)], m)
