"""The two reward designs of the simulator (DESIGN §6, seed §2.3 and §4.2).

Both are computed from the same daily quantities, per athlete (arrays (N,)), after the action of
day t, on the morning of day t + 1:

- latent performance P (performance.py, % of the athlete's untrained baseline), on every
  morning of the episode: P_0 … P_{t+1};
- R_recovery(t+1) = (recovery_{t+1} − the athlete's typical recovery) / 100, where the typical
  recovery is the athlete's recovery baseline (logistic of mu_rec, %); centring it on the
  athlete's own baseline keeps it from being a constant per-step bonus;
- the seed's soft penalty (constraints.soft_penalty: recovery < 33, more than 2 hard days in a
  row, HRV drop > 2 SD) plus `injury_day_penalty` for each day that starts injured or ill
  (`injury_cost="realised"`), or, with `injury_cost="expected"`, for each injured morning an
  onset tonight is expected to bring (the day's onset hazard × E[min(episode length, mornings
  left)]): the realised cost's expectation without its noise. The MPC's objective
  (`simulator.rollout`) prices an onset the same way but caps the mean length at the mornings
  left (min(mean, K)) instead of taking E[min(L, K)]: the two differ only near the episode's
  end.

Potential-based (`kind="potential"`, the default)
    r_t = (P_{t+1} − P_t) + w_rec·R_recovery(t+1) − λ·penalty_t.
    Its episode sum is P_T − P_0 + w_rec·Σ R_recovery − λ·Σ penalty: the performance gained
    over the episode, plus how recovered the athlete was, minus the damage done. Performance is
    the potential (Ng, Harada & Russell 1999, ICML): its shaping telescopes, so the sum is the
    long-term objective itself, not a proxy.

Multi-horizon (`kind="multi_horizon"`, seed §2.3)
    r_t = α·R_recovery(t+1) + β·R_adaptation + γ·R_fitness − λ·penalty_t,
    with the delayed terms credited honestly, when their window closes: the 14-day window that
    started on morning s = t + 1 − 14 closes on morning t + 1 and credits
    R_adaptation = (P_{t+1} − P_s)/14 (the mean daily gain over the window); likewise the 30-day
    window credits R_fitness = (P_{t+1} − P_{t+1−30})/30. Windows still open when the episode
    ends are closed on its last morning with their partial gain (P_T − P_s)/L, so nothing is
    lost or counted twice: the episode sum of the β term is β·Σ_s (P_{min(s+14, T)} − P_s)/14
    over every starting morning s < T. Defaults α 0.2, β 0.3, γ 0.5 (seed §9.1; β > α, γ > β).

Short-term only (`kind="short_term"`, the seed's §11.3 ablation)
    r_t = R_recovery(t+1) − λ·penalty_t: the next morning only, no fitness term at all; used to
    measure what ignoring the long term costs in fitness.

No term is a constant per step; rewards are finite for finite inputs (NaN recovery counts 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REWARD_KINDS: tuple[str, ...] = ("potential", "multi_horizon", "short_term")
INJURY_COSTS: tuple[str, ...] = ("realised", "expected")


def expected_injured_mornings(mean_days: float, mornings_left: np.ndarray) -> np.ndarray:
    """E[min(L, K)] for an episode length L geometric on 1, 2, … with mean `mean_days` (≥ 1,
    the simulator's) and K = `mornings_left` mornings before the episode ends (negative: 0):
    Σ_{j=1..K} P(L ≥ j) = mean_days·(1 − (1 − 1/mean_days)^K)."""
    k = np.maximum(np.asarray(mornings_left, dtype=float), 0.0)
    stay = 1.0 - 1.0 / mean_days  # P(L ≥ j + 1 | L ≥ j)
    return mean_days * (1.0 - stay ** k)


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the rewards (module docstring). Performance is in % of baseline."""

    kind: str = "potential"
    alpha: float = 0.2
    """Weight of the next-morning recovery term (multi-horizon)."""
    beta: float = 0.3
    """Weight of the 14-day adaptation term (multi-horizon)."""
    gamma: float = 0.5
    """Weight of the 30-day fitness term (multi-horizon)."""
    adaptation_days: int = 14
    fitness_days: int = 30
    recovery_weight: float = 0.2
    """w_rec of the potential-based reward (per unit of R_recovery, i.e. per 100 % points)."""
    penalty_weight: float = 0.002
    """λ: reward units (% of performance) per unit of the seed's soft penalty (10 per recovery
    point below 33, 20 per extra hard day, 15 per HRV crash). Calibrated so that neither side
    swamps the other: on 256 simulated athletes (shipped model, seed 0, 90 days) always
    resting vs always Z2 changed ΔP by about 3 % and the summed penalty by about 800 units,
    which λ = 0.002 prices at 1.6 %; at the seed-like 0.01 the penalty (mostly set by each
    athlete's own low baseline recovery, which training cannot change) outweighed fitness five
    to one and made rest the best plan."""
    injury_day_penalty: float = 15.0
    """Soft-penalty units for each morning that starts injured or ill (seed §2.3: the penalty
    includes injury flags)."""
    injury_cost: str = "realised"
    """How injured mornings are charged: `realised`, on each morning that starts injured;
    `expected`, the day an onset becomes possible, as its hazard × the injured mornings it is
    expected to bring (module docstring)."""

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"reward kind {self.kind!r} is not one of {REWARD_KINDS}")
        if not (self.gamma > self.beta > self.alpha >= 0):
            raise ValueError("the multi-horizon weights need gamma > beta > alpha >= 0 "
                             f"(seed §2.3), got {self.alpha}, {self.beta}, {self.gamma}")
        if self.injury_cost not in INJURY_COSTS:
            raise ValueError(f"injury_cost {self.injury_cost!r} is not one of {INJURY_COSTS}")
        if self.adaptation_days < 1 or self.fitness_days < 1:
            raise ValueError("reward windows must be at least one day")


def recovery_term(recovery_pct: np.ndarray, typical_recovery_pct: np.ndarray) -> np.ndarray:
    """R_recovery: (recovery − typical) / 100; a missing reading (NaN) counts 0."""
    r = (np.asarray(recovery_pct, float) - typical_recovery_pct) / 100.0
    return np.nan_to_num(r, nan=0.0)


def _window_credit(perf: np.ndarray, morning: int, window: int, final: bool) -> np.ndarray:
    """Σ of (P_morning − P_s)/window over the windows closing on `morning` (the one that started
    `window` mornings ago, and on the final morning every still-open one). `perf` (N, ≥ morning+1)
    holds P_0 … P_morning."""
    now = perf[:, morning]
    credit = np.zeros_like(now)
    start = morning - window
    if start >= 0:
        credit += (now - perf[:, start]) / window
    if final:
        first_open = max(start + 1, 0)
        if first_open < morning:
            credit += (now[:, None] - perf[:, first_open:morning]).sum(axis=1) / window
    return credit


def step_reward(config: RewardConfig, perf: np.ndarray, morning: int, final: bool,
                recovery: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """The reward of the step that ended on morning `morning` (= t + 1), (N,).

    `perf` (N, ≥ morning + 1): performance on mornings 0 … morning of the episode; `recovery`
    R_recovery(t+1) (`recovery_term`); `penalty` the soft penalty of the step (≥ 0); `final`
    whether this morning ends the episode.
    """
    lam = config.penalty_weight * penalty
    if config.kind == "short_term":
        return recovery - lam
    if config.kind == "potential":
        return (perf[:, morning] - perf[:, morning - 1]) + config.recovery_weight * recovery - lam
    adapt = _window_credit(perf, morning, config.adaptation_days, final)
    fit = _window_credit(perf, morning, config.fitness_days, final)
    return config.alpha * recovery + config.beta * adapt + config.gamma * fit - lam
