"""The one `Policy` protocol every evaluator uses (DESIGN §8), and the helpers policies share.

A policy is asked, every morning, for the sessions of N athletes at once:

    actions = policy.act(obs, mask)      # obs (N, F) float, mask (N, 6) bool → (N,) int64

`obs` holds the feature vector of `physiology_model.features.batch.FEATURE_NAMES` in raw, unscaled
units (index it by name with `simulator.observation.FEATURE_INDEX`); `mask[i, a]` says whether
action `a` (an index into `physiology_model.data.table.ACTIONS`: 0 rest, 1 active_recovery,
2 z2_aerobic, 3 tempo_threshold, 4 hiit, 5 strength) is allowed for athlete i today. The env
enforces the mask itself (`simulator.constraints.enforce`), but a policy must never ask for a
masked action: every helper here returns allowed actions only.

State. A policy may keep per-episode state (a day counter, a random generator). `reset(seed)`
marks the start of a new episode for every athlete of the batch: it clears that state and, when
`seed` is given, reseeds the policy's own generator (with `seed=None` a generator keeps its
stream, as Gymnasium's `reset` does). Row i of every `act` call of an episode is the same
athlete; `act` is called once per simulated day. A policy never touches global random state.

Helpers: `check_batch` validates an (obs, mask) pair; `masked_choice` (argmax over the allowed
actions), `masked_sample` (sampling restricted to the mask) and `step_down` (the closest allowed
easier session, with the same ranking as the env's enforcement) turn scores or plans into
allowed actions; `weekday_of` reads the weekday back from `dow_sin`/`dow_cos`; `DayCounter`
counts the days of an episode per athlete.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from physiology_model.data.table import ACTIONS, N_ACTIONS
from physiology_model.features.batch import FEATURE_NAMES
from simulator.constraints import DEFAULT_SAFETY_CONFIG, SafetyConfig, preference_order
from simulator.observation import FEATURE_INDEX

N_FEATURES = len(FEATURE_NAMES)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}
"""Index of each action name in `ACTIONS` (the action encoding of the env)."""


@runtime_checkable
class Policy(Protocol):
    """What every agent and baseline offers the evaluators (see the module docstring)."""

    name: str
    """Short identifier used in reports (e.g. `random`, `hrv_guided`)."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode for all athletes: clear per-episode state; reseed the policy's
        own generator when `seed` is given."""
        ...

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Today's action of each athlete: obs (N, F) float, mask (N, 6) bool → (N,) int64,
        every action allowed by its row of `mask`."""
        ...


def reads_performance_tests(policy: object) -> bool:
    """Whether `policy` learns from performance tests (`observe_performance(results)` before
    a morning's `act`): the MPC planner that draws the performance response and a planner
    distilled from it (`performance_draws` > 0 in their config). Any other policy is never
    handed a test."""
    return (callable(getattr(policy, "observe_performance", None))
            and getattr(getattr(policy, "config", None), "performance_draws", 0) > 0)


def check_batch(obs: np.ndarray, mask: np.ndarray,
                n_features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """Validate one morning's batch and return it as (obs float (N, F), mask bool (N, 6)).

    Raises `ValueError` naming the problem: obs not 2-D with `n_features` columns or not finite,
    mask not (N, 6) of booleans (or 0/1 integers), different N, or a row that allows nothing.
    """
    o = np.asarray(obs)
    if o.ndim != 2 or o.shape[1] != n_features:
        raise ValueError(f"obs must have shape (N, {n_features}), got {o.shape}")
    if not np.issubdtype(o.dtype, np.number):
        raise ValueError(f"obs must be numeric, got dtype {o.dtype}")
    if not np.isfinite(o).all():
        column = int(np.nonzero(~np.isfinite(o).all(axis=0))[0][0])
        name = FEATURE_NAMES[column] if n_features == N_FEATURES else f"column {column}"
        raise ValueError(f"obs has non-finite values (first in {name})")
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[1] != N_ACTIONS:
        raise ValueError(f"mask must have shape (N, {N_ACTIONS}), got {m.shape}")
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask must be boolean (or 0/1 integers), got dtype {m.dtype}")
        m = m.astype(bool)
    if m.shape[0] != o.shape[0]:
        raise ValueError(f"obs has {o.shape[0]} rows but mask has {m.shape[0]}")
    empty = ~m.any(axis=1)
    if empty.any():
        raise ValueError(f"mask allows no action for athlete {int(np.argmax(empty))}")
    return o, m


def _check_mask_like(values: np.ndarray, mask: np.ndarray, what: str) -> np.ndarray:
    """`values` as float (N, 6) matching `mask` (already validated), without NaN."""
    v = np.asarray(values, dtype=float)
    if v.shape != mask.shape:
        raise ValueError(f"{what} must have the mask's shape {mask.shape}, got {v.shape}")
    if np.isnan(v).any():
        raise ValueError(f"{what} contain NaN")
    return v


def _valid_mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[1] != N_ACTIONS or m.dtype != bool:
        raise ValueError(f"mask must be a bool array (N, {N_ACTIONS}), got {m.dtype} {m.shape}")
    if not m.any(axis=1).all():
        raise ValueError(f"mask allows no action for athlete {int(np.argmax(~m.any(axis=1)))}")
    return m


def masked_choice(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Argmax of `scores` (N, 6) over each row's allowed actions → (N,) int64.

    Ties go to the lower action index. Allowed actions scored −inf still beat masked ones, so
    the result is always allowed. Raises `ValueError` for NaN scores or a bad mask.
    """
    m = _valid_mask(mask)
    s = _check_mask_like(scores, m, "scores")
    best = np.argmax(np.where(m, s, -np.inf), axis=1)
    # a row whose allowed scores are all −inf: argmax would land on index 0, masked or not
    none_finite = ~(m & (s > -np.inf)).any(axis=1)
    return np.where(none_finite, np.argmax(m, axis=1), best).astype(np.int64)


def masked_sample(probs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one action per row from `probs` (N, 6) restricted to the mask → (N,) int64.

    Masked entries are set to 0 and each row renormalised (the conditional distribution given
    that the action is allowed). A row whose allowed actions all have probability 0 is drawn
    uniformly from its allowed actions. One uniform number per row from `rng`. Raises
    `ValueError` for negative or NaN probabilities or a bad mask.
    """
    m = _valid_mask(mask)
    p = _check_mask_like(probs, m, "probabilities")
    if (p < 0).any():
        raise ValueError("probabilities must not be negative")
    p = np.where(m, p, 0.0)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), m / m.sum(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0])[:, None] * cdf[:, -1:]
    # First column whose cumulative mass exceeds u; masked columns add no mass, so u cannot
    # land on them (strict inequality skips zero-width steps).
    drawn = (cdf <= u).sum(axis=1)
    # Floating round-off can leave u == cdf[-1]: fall back to the last allowed action.
    last_allowed = N_ACTIONS - 1 - np.argmax(m[:, ::-1], axis=1)
    drawn = np.where(drawn >= N_ACTIONS, last_allowed, drawn)
    return drawn.astype(np.int64)


def step_down(planned: np.ndarray, mask: np.ndarray,
              config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """The closest allowed session no harder than the plan → (N,) int64.

    `planned` (N,) action indices. An allowed plan is kept. A masked one becomes the allowed
    *easy* action (neither hard nor Z4-5 in `config`) ranked highest below it in
    `config.intensity_order`, which is exactly what the env's `simulator.constraints.enforce`
    executes, so a policy using this is never overruled by the env. Only when the mask forbids
    all of those (possible only when rest itself is masked) does it take a demanding action below
    the plan, and failing that the least demanding allowed action above it.
    """
    m = _valid_mask(mask)
    p = np.asarray(planned)
    if p.shape != (m.shape[0],) or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"planned must be integer actions of shape ({m.shape[0]},), got "
                         f"{p.dtype} {p.shape}")
    if p.size and (p.min() < 0 or p.max() >= N_ACTIONS):
        raise ValueError(f"planned actions must be in 0-{N_ACTIONS - 1}")
    prefs = preference_order(config)[p]                              # (N, 6)
    allowed = np.take_along_axis(m, prefs, axis=1)
    first = np.argmax(allowed, axis=1)
    return prefs[np.arange(len(p)), first].astype(np.int64)


def weekday_of(obs: np.ndarray) -> np.ndarray:
    """Weekday of each observation, Monday = 0 … Sunday = 6, from its `dow_sin`/`dow_cos`
    features (sin/cos of 2π·weekday/7) → (N,) int64."""
    o = np.asarray(obs, dtype=float)
    if o.ndim != 2 or o.shape[1] != N_FEATURES:
        raise ValueError(f"obs must have shape (N, {N_FEATURES}), got {o.shape}")
    angle = np.arctan2(o[:, FEATURE_INDEX["dow_sin"]], o[:, FEATURE_INDEX["dow_cos"]])
    return (np.rint(angle * 7.0 / (2.0 * np.pi)).astype(np.int64) % 7)


def feature(obs: np.ndarray, name: str) -> np.ndarray:
    """Column `name` of `FEATURE_NAMES` of an (N, F) observation batch → (N,)."""
    if name not in FEATURE_INDEX:
        raise ValueError(f"unknown feature {name!r}")
    return np.asarray(obs)[:, FEATURE_INDEX[name]]


class DayCounter:
    """Days since the start of the episode, per athlete: 0 on the first `advance`, then 1, ….

    The batch size is fixed by the first `advance` after `reset`; a different N before the next
    `reset` is an error (the rows would no longer be the same athletes).
    """

    def __init__(self) -> None:
        self._days: np.ndarray | None = None

    def reset(self) -> None:
        """Start a new episode: the next `advance` returns day 0 for every athlete."""
        self._days = None

    def advance(self, n_athletes: int) -> np.ndarray:
        """Today's episode day of each of `n_athletes` athletes → (N,) int64, and move on."""
        if self._days is None:
            self._days = np.zeros(n_athletes, dtype=np.int64)
        elif len(self._days) != n_athletes:
            raise ValueError(f"the batch changed from {len(self._days)} to {n_athletes} athletes "
                             f"within an episode; call reset() first")
        today = self._days.copy()
        self._days += 1
        return today
