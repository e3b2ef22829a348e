"""Safety rules (seed TRD §4, §6.3; DESIGN §7): one module for the env, the MPC planner and real
recommendations, batched over athletes.

Timing (DESIGN §3): the decision for day d is taken on the morning of d. It sees day d's
physiology (HRV, resting HR, recovery measured in the sleep that ended that morning), the
morning before it, and the sessions *executed* on days before d. Day d's own session is the
action being decided.

Hard rules (an action mask, True = allowed), checked for every athlete at once:

- (a) `RECOVERY_FLOOR`: recovery < `recovery_floor_pct` on each of the last
  `recovery_floor_days` mornings (today and yesterday by default) → rest only. In `hard_mask`
  (the simulator, the seed's rule) a missing recovery on any of those mornings means the rule
  cannot fire. For a real athlete (`mask_from_table`) missing is not fine: a morning below the
  floor whose yesterday is missing or out of range counts as two low mornings (the rule fires,
  and `MaskResult.notes` says why), so a gap in the data never switches the rule off.
- (b) `HRV_DROP`: today's ln RMSSD < baseline − `hrv_block_sd`·SD → no `z45_actions`. The
  baseline and SD are the feature builder's `ln_hrv_baseline_28d` / `ln_hrv_baseline_sd_28d`;
  without an established baseline (NaN, or SD not > 0) or without today's HRV it cannot fire.
  ln RMSSD is the scale HRV-guided training uses for its normal range (Plews et al. 2013,
  Sports Med 43:773; Kiviniemi et al. 2007).
- (c) `HARD_STREAK`: the last `max_consecutive_hard` executed days were all hard
  (`hard_actions`) → no hard action today, so at most that many hard days run in a row.
- (d) `NO_REST`: none of the last `rest_window_days − 1` executed days was rest → rest only, so
  every `rest_window_days` consecutive days hold a rest day.
- (e) `INJURY`: injury/illness flag set → `injury_allowed` only.
- `OUT_OF_RANGE`: a reading outside the daily table's physiological range
  (`physiology_model.data.table.NUMERIC_COLUMNS`: HRV 3-300 ms, RHR 25-120 bpm, recovery 0-100 %,
  injury 0-1) → `safe_actions_when_invalid` only. An out-of-range reading is a sensor or unit
  error, so rules (a) and (b) treat it as missing rather than as evidence.
- `MISSING_READINGS`: today's HRV and RHR both missing → `safe_actions_when_invalid` only: no
  hard session is recommended blind.

Rest is never masked (resting is never unsafe), so a mask always allows at least one action.

Executed-day codes of a history: an action index 0-5 (`table.ACTIONS`), `UNKNOWN_DAY` (−1:
nothing known, or before the data) or `TRAINED_DAY` (−2: trained, type unknown, e.g. a WHOOP day
with strain but no workout). **A rule fires only on evidence**: an unknown day is neither rest
nor hard, so it breaks a hard streak (c) *and* a rest-free streak (d); a `TRAINED_DAY` is
not rest (it extends a rest-free streak) and not hard. Counting unknown days as "not rest" would
force rest on the first morning of every episode (empty history) and on every day of a real
user whose device does not label sessions; rule (d) guarantees a rest day in any 7 consecutive
*known* days, which is what the env, whose history is always known after reset, needs.

Enforcement (`enforce`): a masked request becomes the **most demanding allowed easy action below
it** in `intensity_order` (rest < active recovery < Z2 aerobic < strength < tempo < HIIT), where
easy = neither hard nor Z4-5. So a blocked HIIT or tempo day becomes Z2 aerobic, a blocked
strength day Z2 aerobic, a blocked Z2 day (injury) active recovery, and a rest-only day rest: what
a coach does with a planned hard day when the athlete is not ready (downgrade to easy aerobic,
not full rest), never a different hard session and never more than was asked. The nominal TRIMP
order (`physiology_model.data.load.action_loads`) was rejected as the ranking: with the shipped
session table Z2 (135 TRIMP) carries slightly more TRIMP than HIIT (134), because TRIMP does not
weigh the fast, high-intensity fatigue, so "largest load not above the request" would send a
blocked HIIT day to strength or active recovery.

Soft penalties (`soft_penalty`, seed §4.2) and the overtraining score (`overtraining_score`,
seed §6.3) use the same config.

Use: the env and the planner keep an `ActionHistory`, build `SafetyInputs` each morning, call
`hard_mask` then `enforce`, and `push` the executed actions; a real recommendation calls
`mask_from_table` on the athlete's daily table. All thresholds live in `SafetyConfig`
(`configs/safety.toml`, `load_safety_config`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pandas as pd

from physiology_model.data.load import read_toml
from physiology_model.data.table import ACTIONS, N_ACTIONS, NUMERIC_COLUMNS
from physiology_model.errors import DataError
from physiology_model.features.batch import FeatureConfig
from simulator.observation import observations_from_table

ACTION_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(ACTIONS)}
REST = ACTION_INDEX["rest"]

UNKNOWN_DAY = -1
"""History code: nothing is known about that day's training (or it is before the data)."""
TRAINED_DAY = -2
"""History code: the athlete trained (not a rest day) but the session type is unknown."""

_MIN_CODE = TRAINED_DAY


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyConfig:
    """Thresholds of the hard rules and coefficients of the soft penalties. Defaults are the
    seed's values (TRD §4.1, §4.2, §6.3); `configs/safety.toml` holds the same values."""

    recovery_floor_pct: float = 30.0
    """Rule (a): recovery below this (%, strictly) on each of the last `recovery_floor_days`
    mornings forces rest."""
    recovery_floor_days: int = 2
    """Rule (a): consecutive mornings (today included) below the floor; 1 or 2."""
    hrv_block_sd: float = 2.0
    """Rule (b): today's ln RMSSD below baseline − this many baseline SDs blocks Z4-5 sessions."""
    max_consecutive_hard: int = 3
    """Rule (c): most hard days in a row."""
    rest_window_days: int = 7
    """Rule (d): every this many consecutive days contain at least one rest day."""
    z45_actions: tuple[str, ...] = ("tempo_threshold", "hiit")
    """Sessions with zone 4-5 minutes (tempo is Z3-4, HIIT Z5): blocked by rule (b)."""
    hard_actions: tuple[str, ...] = ("tempo_threshold", "hiit", "strength")
    """What counts as a high-intensity day for rule (c) and the soft penalty."""
    injury_allowed: tuple[str, ...] = ("rest", "active_recovery")
    """Rule (e): the actions allowed while the injury/illness flag is set (must include rest)."""
    safe_actions_when_invalid: tuple[str, ...] = ("rest", "active_recovery")
    """Actions allowed when today's readings are out of range or HRV and RHR are both missing
    (must include rest)."""
    intensity_order: tuple[str, ...] = ("rest", "active_recovery", "z2_aerobic", "strength",
                                         "tempo_threshold", "hiit")
    """All six actions from least to most demanding, rest first: `enforce` replaces a masked
    request by the highest allowed easy action below it in this order."""
    penalty_recovery_below_pct: float = 33.0
    """Soft penalty: recovery below this (%) costs `penalty_per_recovery_pct` per point."""
    penalty_per_recovery_pct: float = 10.0
    """Soft penalty per recovery point below `penalty_recovery_below_pct`."""
    penalty_hard_days_free: int = 2
    """Soft penalty: hard days in a row (today included) beyond this cost
    `penalty_per_extra_hard_day` each."""
    penalty_per_extra_hard_day: float = 20.0
    """Soft penalty per hard day in a row beyond `penalty_hard_days_free`."""
    penalty_hrv_drop_sd: float = 2.0
    """Soft penalty: an ln HRV drop of more than this many baseline SDs costs
    `penalty_hrv_drop`."""
    penalty_hrv_drop: float = 15.0
    """Soft penalty of an HRV drop beyond `penalty_hrv_drop_sd`."""
    overtraining_bad_hrv_days: int = 3
    """Overtraining score: more than this many bad-HRV days in a row scores 1."""
    overtraining_recovery_mean_pct: float = 40.0
    """Overtraining score: a 7-day mean recovery below this (%) scores 1."""
    overtraining_rest_window_days: int = 14
    """Overtraining score: no rest day in this many days scores 1."""

    def __post_init__(self) -> None:
        _check_number("recovery_floor_pct", self.recovery_floor_pct, 0.0, 100.0)
        if self.recovery_floor_days not in (1, 2):
            raise ValueError(f"recovery_floor_days must be 1 or 2 (the inputs carry today's and "
                             f"yesterday's recovery), got {self.recovery_floor_days!r}")
        _check_number("hrv_block_sd", self.hrv_block_sd, 0.0, np.inf, open_low=True)
        _check_int("max_consecutive_hard", self.max_consecutive_hard, 1)
        _check_int("rest_window_days", self.rest_window_days, 2)
        for name in ("z45_actions", "hard_actions", "injury_allowed",
                     "safe_actions_when_invalid", "intensity_order"):
            _check_actions(name, getattr(self, name))
        for name in ("z45_actions", "hard_actions"):
            if "rest" in getattr(self, name):
                raise ValueError(f"{name} must not contain 'rest' (rest is never unsafe)")
        for name in ("injury_allowed", "safe_actions_when_invalid"):
            if "rest" not in getattr(self, name):
                raise ValueError(f"{name} must contain 'rest' (rest is always allowed)")
        if sorted(self.intensity_order) != sorted(ACTIONS) or self.intensity_order[0] != "rest":
            raise ValueError(f"intensity_order must list all six actions once, rest first; got "
                             f"{self.intensity_order}")
        for name in ("penalty_recovery_below_pct", "overtraining_recovery_mean_pct"):
            _check_number(name, getattr(self, name), 0.0, 100.0)
        for name in ("penalty_per_recovery_pct", "penalty_per_extra_hard_day",
                     "penalty_hrv_drop_sd", "penalty_hrv_drop"):
            _check_number(name, getattr(self, name), 0.0, np.inf)
        _check_int("penalty_hard_days_free", self.penalty_hard_days_free, 0)
        _check_int("overtraining_bad_hrv_days", self.overtraining_bad_hrv_days, 0)
        _check_int("overtraining_rest_window_days", self.overtraining_rest_window_days, 1)

    @property
    def history_days(self) -> int:
        """Executed days before today the hard rules read: max(max_consecutive_hard,
        rest_window_days − 1)."""
        return max(self.max_consecutive_hard, self.rest_window_days - 1)


def _check_number(name: str, value: object, lo: float, hi: float, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < lo or value > hi or (open_low and value == lo):
        bound = f"> {lo:g}" if open_low else f"≥ {lo:g}"
        raise ValueError(f"{name} must be {bound}" + (f" and ≤ {hi:g}" if np.isfinite(hi) else "")
                         + f", got {value!r}")


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer ≥ {lo}, got {value!r}")


def _check_actions(name: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a tuple of action names, got {value!r}")
    unknown = [v for v in value if v not in ACTIONS]
    if unknown:
        raise ValueError(f"{name}: unknown actions {unknown}; expected some of {ACTIONS}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists an action twice: {value}")


DEFAULT_SAFETY_CONFIG = SafetyConfig()


def load_safety_config(path: str | Path) -> SafetyConfig:
    """Read a `SafetyConfig` from TOML: top-level keys are its field names (action sets as
    arrays of action names); keys left out keep their defaults. Unknown keys, wrong types and
    invalid values raise `DataError` naming the file and the key."""
    path = Path(path)
    raw = read_toml(path)
    hints = get_type_hints(SafetyConfig)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise DataError(path, f"unknown keys {unknown}; expected some of {sorted(hints)}")
    values: dict[str, object] = {}
    for key, value in raw.items():
        kind = hints[key]
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value
        elif kind == tuple[str, ...] and isinstance(value, list) and all(
                isinstance(v, str) for v in value):
            values[key] = tuple(value)
        else:
            expected = {float: "a number", int: "an integer"}.get(kind, "an array of action names")
            raise DataError(path, f"{key} must be {expected}, got {value!r}")
    try:
        return SafetyConfig(**values)
    except ValueError as exc:
        raise DataError(path, str(exc)) from None


def dump_safety_config(config: SafetyConfig) -> str:
    """The config as TOML text that `load_safety_config` reads back to an equal config (for the
    resolved config written next to every output)."""
    lines = []
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        lines.append(f"{f.name} = {text}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Rules and their reasons
# --------------------------------------------------------------------------------------------


class Rule(enum.IntFlag):
    """Bit flags of the hard rules; `MaskResult.reasons` and `.per_action` hold their OR."""

    RECOVERY_FLOOR = 1
    HRV_DROP = 2
    HARD_STREAK = 4
    NO_REST = 8
    INJURY = 16
    OUT_OF_RANGE = 32
    MISSING_READINGS = 64


REASONS: Mapping[Rule, str] = {
    Rule.RECOVERY_FLOOR: "recovery below {recovery_floor_pct:g} % on the last "
                        "{recovery_floor_days} morning(s): rest only",
    Rule.HRV_DROP: "HRV more than {hrv_block_sd:g} SD below the athlete's 28-day baseline: "
                   "no zone 4-5 session ({z45})",
    Rule.HARD_STREAK: "{max_consecutive_hard} high-intensity days in a row: no hard session "
                      "({hard}) today",
    Rule.NO_REST: "no rest day in the last {no_rest_days} days: rest today (at least one rest "
                  "day in any {rest_window_days})",
    Rule.INJURY: "injury or illness reported: only {injury}",
    Rule.OUT_OF_RANGE: "a reading is outside its physiological range (sensor or unit error?): "
                       "only {safe}",
    Rule.MISSING_READINGS: "no HRV and no resting heart rate this morning: only {safe}",
}
"""Each rule's sentence, a template filled from the config by `explain`."""


def explain(reasons_bits: int, config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> list[str]:
    """The human sentences of the rules set in `reasons_bits` (one entry of
    `MaskResult.reasons` or `.per_action`), in rule order, with the config's thresholds."""
    bits = int(reasons_bits)
    if bits < 0 or bits >= 2 * max(Rule):
        raise ValueError(f"not a combination of safety rule flags: {reasons_bits!r}")
    words = {f.name: getattr(config, f.name) for f in fields(config)}
    words.update(
        z45=", ".join(config.z45_actions), hard=", ".join(config.hard_actions),
        injury=" or ".join(config.injury_allowed),
        safe=" or ".join(config.safe_actions_when_invalid),
        no_rest_days=config.rest_window_days - 1,
    )
    return [REASONS[rule].format(**words) for rule in Rule if bits & rule]


@dataclass(frozen=True)
class _Tables:
    """Lookup tables derived once per config, so that the batched functions are a few array
    operations (a (N, 6) broadcast or a reduction over 6 columns is 10-30× slower in numpy
    than a 1-D take)."""

    per_action: np.ndarray
    """(2**len(Rule), 6) int: for each combination of fired rules, the rules masking each
    action."""
    hard_by_code: np.ndarray
    """(8,) bool: whether a history code (offset by −TRAINED_DAY) is a hard day."""
    fallback: np.ndarray
    """(6 · 2**6,) int: at [requested · 64 + allowed-pattern], the action `enforce` executes
    instead of a masked request (allowed-pattern bit a = action a allowed)."""


def _action_set(names: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(N_ACTIONS, dtype=bool)
    out[[ACTION_INDEX[n] for n in names]] = True
    return out


@lru_cache(maxsize=8)
def preference_order(config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """(6, 6) int: for each requested action, every action in order of preference — the
    request itself, then the easy actions (neither hard nor Z4-5) below it from the highest in
    `config.intensity_order` down (rest last of them), then the demanding ones below it, then
    those above it from the least demanding. `enforce` executes the first allowed one (which
    is always an easy one, as rest is always allowed), and `agents.policy.step_down` applies
    the same order to masks that forbid rest too."""
    rank = {a: config.intensity_order.index(a) for a in ACTIONS}
    demanding = set(config.hard_actions) | set(config.z45_actions)
    order = np.zeros((N_ACTIONS, N_ACTIONS), dtype=np.int64)
    for requested in ACTIONS:
        below = sorted((a for a in ACTIONS if rank[a] < rank[requested]), key=lambda a: -rank[a])
        above = sorted((a for a in ACTIONS if rank[a] > rank[requested]), key=lambda a: rank[a])
        prefs = ([requested] + [a for a in below if a not in demanding]
                 + [a for a in below if a in demanding] + above)
        order[ACTIONS.index(requested)] = [ACTIONS.index(a) for a in prefs]
    order.setflags(write=False)
    return order


@lru_cache(maxsize=32)
def _tables(config: SafetyConfig) -> _Tables:
    z45, hard = _action_set(config.z45_actions), _action_set(config.hard_actions)
    all_but_rest = np.arange(N_ACTIONS) != REST
    blocked_by = {
        Rule.RECOVERY_FLOOR: all_but_rest,
        Rule.HRV_DROP: z45,
        Rule.HARD_STREAK: hard,
        Rule.NO_REST: all_but_rest,
        Rule.INJURY: ~_action_set(config.injury_allowed),
        Rule.OUT_OF_RANGE: ~_action_set(config.safe_actions_when_invalid),
        Rule.MISSING_READINGS: ~_action_set(config.safe_actions_when_invalid),
    }
    blocks = np.zeros(N_ACTIONS, dtype=np.int64)
    for rule, blocked in blocked_by.items():
        blocks |= np.where(blocked, int(rule), 0)
    per_action = np.arange(2 * max(Rule))[:, None] & blocks[None, :]

    hard_by_code = np.zeros(N_ACTIONS - _MIN_CODE, dtype=bool)
    hard_by_code[-_MIN_CODE:] = hard

    # fallback[request, pattern of allowed actions]: the first allowed action in the request's
    # preference order (REST where none is; `enforce` is never asked for such a pattern).
    patterns = np.arange(2 ** N_ACTIONS)
    allowed = (patterns[:, None] >> np.arange(N_ACTIONS)[None, :]) & 1 == 1  # (64, 6)
    fallback = np.full((N_ACTIONS, len(patterns)), REST, dtype=np.int64)
    for requested, prefs in enumerate(preference_order(config)):
        ok = allowed[:, prefs]
        fallback[requested] = np.where(ok.any(axis=1), prefs[np.argmax(ok, axis=1)], REST)
    fallback = fallback.ravel()
    for arr in (per_action, hard_by_code, fallback):
        arr.setflags(write=False)
    return _Tables(per_action, hard_by_code, fallback)


# --------------------------------------------------------------------------------------------
# Inputs, history and the mask
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyInputs:
    """What the hard rules see on the morning of day d, for N athletes; every array is (N,)
    float unless stated. NaN = missing."""

    recovery_pct: np.ndarray
    """Recovery score of day d's morning, %."""
    recovery_pct_yesterday: np.ndarray
    """Recovery score of day d − 1's morning, %."""
    ln_hrv: np.ndarray
    """ln of day d's RMSSD in ms (the measured value, not a fill)."""
    ln_hrv_baseline: np.ndarray
    """Mean ln RMSSD of the baseline window before d (features' `ln_hrv_baseline_28d`); NaN
    when not established (the feature builder's own fill, today's ln HRV, also cannot fire)."""
    ln_hrv_baseline_sd: np.ndarray
    """SD of ln RMSSD over the same window (`ln_hrv_baseline_sd_28d`); NaN or ≤ 0 when not
    established."""
    rhr_bpm: np.ndarray
    """Resting heart rate of day d's morning, bpm."""
    injury: np.ndarray
    """1 when an injury or illness is reported for day d, 0 or NaN (no report) otherwise."""
    history: np.ndarray
    """(N, H) int, H ≥ `SafetyConfig.history_days`: executed-day codes of the days before d,
    oldest first, yesterday in the last column (action index, `UNKNOWN_DAY`, `TRAINED_DAY`)."""


@dataclass(frozen=True)
class MaskResult:
    """The hard rules' verdict for N athletes."""

    mask: np.ndarray
    """(N, 6) bool, True = allowed; column order `table.ACTIONS`; rest is always True."""
    reasons: np.ndarray
    """(N,) int: OR of the `Rule` flags that fired (a fired rule may mask nothing new)."""
    per_action: np.ndarray
    """(N, 6) int: OR of the fired rules that mask each action (0 exactly where allowed)."""
    notes: tuple[str, ...] = ()
    """What a one-athlete verdict (`mask_from_table`) assumed about missing data."""

    def explain(self, athlete: int = 0,
                config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> list[str]:
        """Sentences for the rules that fired for one athlete (and what they assumed)."""
        return explain(int(self.reasons[athlete]), config) + list(self.notes)


def _as_vector(name: str, value: np.ndarray, n: int | None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        raise ValueError(f"{name} must have shape ({n if n is not None else 'N'},), "
                         f"got {a.shape}")
    return a


def _check_history(history: np.ndarray, n: int | None, width: int) -> np.ndarray:
    """Validate (N, ≥width) integer day codes (raises `ValueError`); returns the array."""
    h = np.asarray(history)
    if h.ndim != 2 or (n is not None and h.shape[0] != n) or h.shape[1] < width:
        expected = f"({n if n is not None else 'N'}, ≥{width})"
        raise ValueError(f"history must have shape {expected}, got {h.shape}")
    if not np.issubdtype(h.dtype, np.integer):
        raise ValueError(f"history must hold integer day codes, got dtype {h.dtype}")
    if h.size and (h.min() < _MIN_CODE or h.max() >= N_ACTIONS):
        raise ValueError(f"history codes must be in {_MIN_CODE}..{N_ACTIONS - 1} (action index, "
                         f"UNKNOWN_DAY = -1, TRAINED_DAY = -2)")
    return h.astype(np.int8, copy=False)  # signed, so that code − TRAINED_DAY is an index


def _all_columns(flags: np.ndarray) -> np.ndarray:
    """(N, k) bool → (N,): every column True (k ≥ 1)."""
    out = flags[:, 0].copy()
    for j in range(1, flags.shape[1]):
        out &= flags[:, j]
    return out


def _outside(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Non-missing values outside [lo, hi] (±inf included)."""
    return (x < lo) | (x > hi)


_HRV_MS, _RHR, _RECOVERY, _INJURY = (NUMERIC_COLUMNS[c] for c in
                                     ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "injury"))
_LN_HRV_LO, _LN_HRV_HI = float(np.log(_HRV_MS.lo)), float(np.log(_HRV_MS.hi))


def hard_mask(inputs: SafetyInputs, config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> MaskResult:
    """The action mask of N athletes on the morning of day d (module docstring: the rules).

    Vectorised over athletes (no Python loop). Every threshold comparison is strict: recovery
    exactly at the floor, or ln HRV exactly at baseline − k·SD, does not fire. Shape or dtype
    errors raise `ValueError`; bad *values* (NaN, ±inf, absurd) never raise: they degrade to the
    safe actions with a reason.
    """
    recovery = _as_vector("recovery_pct", inputs.recovery_pct, None)
    n = recovery.shape[0]
    recovery_y = _as_vector("recovery_pct_yesterday", inputs.recovery_pct_yesterday, n)
    ln_hrv = _as_vector("ln_hrv", inputs.ln_hrv, n)
    base = _as_vector("ln_hrv_baseline", inputs.ln_hrv_baseline, n)
    sd = _as_vector("ln_hrv_baseline_sd", inputs.ln_hrv_baseline_sd, n)
    rhr = _as_vector("rhr_bpm", inputs.rhr_bpm, n)
    injury = _as_vector("injury", inputs.injury, n)
    width = config.history_days
    history = _check_history(inputs.history, n, width)
    history = history[:, history.shape[1] - width:]
    tables = _tables(config)

    bad_recovery = _outside(recovery, _RECOVERY.lo, _RECOVERY.hi)
    bad_recovery_y = _outside(recovery_y, _RECOVERY.lo, _RECOVERY.hi)
    bad_hrv = _outside(ln_hrv, _LN_HRV_LO, _LN_HRV_HI)
    out_of_range = (bad_recovery | bad_recovery_y | bad_hrv | _outside(rhr, _RHR.lo, _RHR.hi)
                    | _outside(injury, _INJURY.lo, _INJURY.hi))
    missing = np.isnan(ln_hrv) & np.isnan(rhr)

    # Comparisons with NaN are False, so a missing reading cannot fire a rule.
    floor = config.recovery_floor_pct
    low_recovery = (recovery < floor) & ~bad_recovery
    if config.recovery_floor_days == 2:
        low_recovery &= (recovery_y < floor) & ~bad_recovery_y
    with np.errstate(over="ignore", invalid="ignore"):  # absurd baselines: no warning spam
        threshold = base - config.hrv_block_sd * sd
    hrv_drop = (ln_hrv < threshold) & (sd > 0) & ~bad_hrv

    # Per-column loops (at most history_days columns): see `_Tables` for why not `.all(axis=1)`.
    hard_day = tables.hard_by_code.take(history[:, width - config.max_consecutive_hard:]
                                        - _MIN_CODE)
    hard_streak = _all_columns(hard_day)
    window = history[:, width - (config.rest_window_days - 1):]
    no_rest = _all_columns((window != REST) & (window != UNKNOWN_DAY))
    injured = (injury > 0) & ~(injury > _INJURY.hi)

    reasons = (low_recovery * int(Rule.RECOVERY_FLOOR) | hrv_drop * int(Rule.HRV_DROP)
               | hard_streak * int(Rule.HARD_STREAK) | no_rest * int(Rule.NO_REST)
               | injured * int(Rule.INJURY) | out_of_range * int(Rule.OUT_OF_RANGE)
               | missing * int(Rule.MISSING_READINGS))
    per_action = tables.per_action.take(reasons, axis=0)
    return MaskResult(per_action == 0, reasons, per_action)


def enforce(requested: np.ndarray, mask: np.ndarray,
            config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> tuple[np.ndarray, np.ndarray]:
    """Execute requested actions under a mask: `(executed (N,) int, violated (N,) bool)`.

    An allowed request is executed as asked. A masked one (`violated`) becomes the allowed easy
    action (neither hard nor Z4-5) ranked highest below it in `config.intensity_order`; rest
    ranks lowest and is always allowed, so one always exists (see the module docstring for why
    this ranking rather than nominal TRIMP). Raises `ValueError` for requests outside 0-5, a
    mask of the wrong shape, or a mask that forbids rest.
    """
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[1] != N_ACTIONS or m.dtype != bool:
        raise ValueError(f"mask must be a bool array (N, {N_ACTIONS}), got {m.dtype} {m.shape}")
    r = np.asarray(requested)
    if r.shape != (m.shape[0],) or not np.issubdtype(r.dtype, np.integer):
        raise ValueError(f"requested must be integer actions of shape ({m.shape[0]},), got "
                         f"{r.dtype} {r.shape}")
    if r.size and (r.min() < 0 or r.max() >= N_ACTIONS):
        raise ValueError(f"requested actions must be in 0-{N_ACTIONS - 1}")
    if not m[:, REST].all():
        raise ValueError("the mask forbids rest for some athlete; rest is always allowed")
    pattern = np.zeros(r.shape[0], dtype=np.int64)
    for a in range(N_ACTIONS):
        pattern |= m[:, a].astype(np.int64) << a
    violated = (pattern >> r) & 1 == 0
    fallback = _tables(config).fallback.take(r * 2 ** N_ACTIONS + pattern)
    executed = np.where(violated, fallback, r)
    return executed, violated


# --------------------------------------------------------------------------------------------
# History of executed days
# --------------------------------------------------------------------------------------------


def _trailing_run(flags: np.ndarray) -> np.ndarray:
    """(N, H) bool → (N,) int: how many of the last columns are all True."""
    return np.cumprod(flags[:, ::-1], axis=1).sum(axis=1)


def longest_runs(flags: np.ndarray) -> np.ndarray:
    """(days, N) bool → (N,) int: each athlete's longest run of consecutive True days (the
    evaluation's longest injury, the safety check's longest hard streak)."""
    f = np.asarray(flags, dtype=bool)
    if f.ndim != 2:
        raise ValueError(f"flags must be (days, N), got shape {f.shape}")
    run = np.zeros(f.shape[1], dtype=np.int64)
    best = run.copy()
    for day in f:
        run = np.where(day, run + 1, 0)
        np.maximum(best, run, out=best)
    return best


def consecutive_hard_days(history: np.ndarray,
                          config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """(N,) int: hard days in a row ending yesterday (an unknown day ends the run), at most H.
    Add 1 when today's session is hard to get the soft penalty's count."""
    h = _check_history(history, None, 1)
    return _trailing_run(_tables(config).hard_by_code.take(h - _MIN_CODE))


def consecutive_non_rest_days(history: np.ndarray) -> np.ndarray:
    """(N,) int: known non-rest days in a row ending yesterday (rest and unknown days end the
    run), at most H. Rule (d) fires when it reaches `rest_window_days − 1`."""
    h = _check_history(history, None, 1)
    return _trailing_run((h != REST) & (h != UNKNOWN_DAY))


class ActionHistory:
    """Ring buffer of the last executed-day codes of N athletes (all step together).

    `push` once per day after enforcement; `array()` is the `SafetyInputs.history` of the next
    morning. A fresh or reset row is all `UNKNOWN_DAY` unless an initial history is given.
    """

    def __init__(self, n_athletes: int, config: SafetyConfig = DEFAULT_SAFETY_CONFIG,
                 days: int | None = None) -> None:
        days = config.history_days if days is None else days
        if n_athletes < 1 or days < config.history_days:
            raise ValueError(f"need n_athletes ≥ 1 and days ≥ {config.history_days}, got "
                             f"{n_athletes}, {days}")
        self.config = config
        self._buffer = np.full((n_athletes, days), UNKNOWN_DAY, dtype=np.int8)
        self._head = 0  # column of the oldest day

    @property
    def n_athletes(self) -> int:
        return self._buffer.shape[0]

    @property
    def days(self) -> int:
        return self._buffer.shape[1]

    def push(self, actions: np.ndarray) -> None:
        """Append each athlete's executed code of the day that just ended, shape (N,)."""
        a = np.asarray(actions)
        if a.shape != (self.n_athletes,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be integers of shape ({self.n_athletes},), got "
                             f"{a.dtype} {a.shape}")
        if a.size and (a.min() < _MIN_CODE or a.max() >= N_ACTIONS):
            raise ValueError(f"codes must be in {_MIN_CODE}..{N_ACTIONS - 1}")
        self._buffer[:, self._head] = a
        self._head = (self._head + 1) % self.days

    def reset(self, which: np.ndarray | slice | None = None,
              initial: np.ndarray | None = None) -> None:
        """Forget the history of the athletes in `which` (bool (N,), indices, or None = all);
        `initial` (k, days) codes, oldest first, replaces it instead of `UNKNOWN_DAY`."""
        rows = np.arange(self.n_athletes)[slice(None) if which is None else which]
        if initial is None:
            self._buffer[rows] = UNKNOWN_DAY
            return
        init = _check_history(initial, len(rows), self.days)
        init = init[:, init.shape[1] - self.days:]
        order = (np.arange(self.days) - self._head) % self.days
        self._buffer[rows] = init[:, order]

    def array(self) -> np.ndarray:
        """(N, days) int8 codes, oldest first, yesterday last (a copy)."""
        order = (self._head + np.arange(self.days)) % self.days
        return self._buffer[:, order]

    def consecutive_hard(self) -> np.ndarray:
        """`consecutive_hard_days` of the buffer."""
        return consecutive_hard_days(self.array(), self.config)

    def consecutive_non_rest(self) -> np.ndarray:
        """`consecutive_non_rest_days` of the buffer."""
        return consecutive_non_rest_days(self.array())


# --------------------------------------------------------------------------------------------
# Soft penalties and the overtraining score
# --------------------------------------------------------------------------------------------


def hrv_drop_sd(ln_hrv: np.ndarray, ln_hrv_baseline: np.ndarray,
                ln_hrv_baseline_sd: np.ndarray) -> np.ndarray:
    """How many baseline SDs today's ln HRV lies below the baseline (negative = above); NaN
    when any input is missing or the SD is not > 0."""
    sd = np.asarray(ln_hrv_baseline_sd, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = (np.asarray(ln_hrv_baseline, dtype=float) - np.asarray(ln_hrv, dtype=float)) / sd
    return np.where(sd > 0, drop, np.nan)


def soft_penalty(recovery_pct: np.ndarray, consecutive_hard_including_today: np.ndarray,
                 hrv_drop_sd: np.ndarray,
                 config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """Seed §4.2 penalty per athlete, ≥ 0, shape of the broadcast inputs:

    `10·(33 − recovery)` if recovery < 33, plus `20·(n − 2)` if n > 2 hard days in a row
    (today included), plus `15` if the ln HRV drop exceeds 2 baseline SDs (coefficients from
    the config).
    Missing (NaN) or non-finite inputs contribute 0; recovery is clipped to 0-100 % so a sensor
    error cannot give an unbounded penalty.
    """
    recovery = np.clip(np.asarray(recovery_pct, dtype=float), _RECOVERY.lo, _RECOVERY.hi)
    hard = np.asarray(consecutive_hard_including_today, dtype=float)
    drop = np.asarray(hrv_drop_sd, dtype=float)
    shortfall = np.maximum(config.penalty_recovery_below_pct - recovery, 0.0)
    extra = np.maximum(hard - config.penalty_hard_days_free, 0.0)
    shortfall = np.where(np.isfinite(shortfall), shortfall, 0.0)
    extra = np.where(np.isfinite(extra), extra, 0.0)
    with np.errstate(over="ignore"):  # an absurd streak count may give inf, never NaN
        return (config.penalty_per_recovery_pct * shortfall
                + config.penalty_per_extra_hard_day * extra
                + config.penalty_hrv_drop * (drop > config.penalty_hrv_drop_sd))


def overtraining_score(consecutive_bad_hrv_days: np.ndarray, recovery_mean_7d: np.ndarray,
                       rest_days_in_window: np.ndarray,
                       config: SafetyConfig = DEFAULT_SAFETY_CONFIG) -> np.ndarray:
    """Seed §6.3 overtraining score per athlete-day, 0-3 (int), shape of the broadcast inputs:
    (bad-HRV days in a row > 3) + (7-day mean recovery < 40 %) + (no rest day in the last
    `overtraining_rest_window_days` = 14 days). A NaN input scores 0 for its term.

    What makes a day "bad" for HRV is the caller's choice to report (e.g. `hrv_drop_sd` above
    `hrv_block_sd`, the day rule (b) would fire); `rest_days_in_window` is the count of rest days
    among the window's days.
    """
    bad = np.asarray(consecutive_bad_hrv_days, dtype=float)
    recovery = np.asarray(recovery_mean_7d, dtype=float)
    rest = np.asarray(rest_days_in_window, dtype=float)
    return ((bad > config.overtraining_bad_hrv_days).astype(np.int64)
            + (recovery < config.overtraining_recovery_mean_pct)
            + (rest == 0))


# --------------------------------------------------------------------------------------------
# One real athlete's daily table
# --------------------------------------------------------------------------------------------


DEFAULT_FEATURE_CONFIG = FeatureConfig()


def day_codes(session: pd.Series, load_trimp: pd.Series,
              rest_max_trimp: float = DEFAULT_FEATURE_CONFIG.rest_max_trimp) -> np.ndarray:
    """Executed-day codes of recorded days: rest when the session is `rest` or the load is at
    most `rest_max_trimp` (the feature builder's rest day), else the session's action index, else
    `TRAINED_DAY` when a load above that is known, else `UNKNOWN_DAY`."""
    names = session.astype("object").where(session.notna(), None).to_numpy()
    load = pd.to_numeric(load_trimp, errors="coerce").to_numpy(dtype=float)
    codes = np.array([ACTION_INDEX.get(s, UNKNOWN_DAY) if isinstance(s, str) else UNKNOWN_DAY
                      for s in names], dtype=np.int64)
    codes = np.where((codes == UNKNOWN_DAY) & (load > rest_max_trimp), TRAINED_DAY, codes)
    return np.where(load <= rest_max_trimp, REST, codes)


def mask_from_table(history: pd.DataFrame, config: SafetyConfig = DEFAULT_SAFETY_CONFIG,
                    feature_config: FeatureConfig = DEFAULT_FEATURE_CONFIG,
                    features: pd.DataFrame | None = None) -> MaskResult:
    """The mask (N = 1) of one real athlete for **the morning of the last row's date**, before
    that day's training: the last row gives today's HRV, RHR and recovery; its `load_trimp` and
    `session` are ignored (they are today's action). For a plan starting tomorrow, append
    tomorrow's morning row first.

    `history` holds daily-table rows of one athlete (`date`, optional `user_id`, and any of
    `hrv_rmssd_ms`, `rhr_bpm`, `recovery_pct`, `injury`, `session`, `load_trimp`). Calendar days
    absent from it are missing data: yesterday's recovery is NaN and the days are `UNKNOWN_DAY`.
    The ln HRV baseline and SD are the feature builder's (`simulator.observation`), as the policy
    sees them; the injury flag is the feature's (a report is carried forward
    `ffill_limit_days`). `features`: `observations_from_table(history)` (under
    `feature_config`; any planned events) when the caller has built them already; only their
    last row is read. Raises `ValueError` for an empty frame, several athletes, no `date`
    column or duplicate dates.
    """
    if "date" not in history.columns:
        raise ValueError("the history has no 'date' column")
    if history.empty:
        raise ValueError("the history has no rows")
    frame = history.copy()
    if "user_id" in frame.columns:
        users = frame["user_id"].astype(str).unique()
        if len(users) != 1:
            raise ValueError(f"mask_from_table takes one athlete's rows, got {len(users)} users")
    else:
        frame["user_id"] = "athlete"
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
    if frame["date"].duplicated().any():
        raise ValueError("the history has duplicate dates")
    frame = frame.sort_values("date").reset_index(drop=True)
    today = frame["date"].iloc[-1]

    if features is None:
        features = observations_from_table(frame, config=feature_config)
    last = features.iloc[-1]
    calendar = pd.date_range(end=today, periods=config.history_days + 1, freq="D")
    by_day = frame.set_index("date").reindex(calendar)

    def column(name: str) -> pd.Series:
        if name in by_day.columns:
            return by_day[name]
        return pd.Series(np.nan, index=by_day.index, dtype=object if name == "session" else float)

    recovery = pd.to_numeric(column("recovery_pct"), errors="coerce").to_numpy(dtype=float)
    hrv = pd.to_numeric(column("hrv_rmssd_ms"), errors="coerce").to_numpy(dtype=float)[-1]
    # A non-positive RMSSD is an out-of-range reading (ln → −inf), not a missing one.
    ln_hrv = float(np.log(hrv)) if hrv > 0 else (hrv if np.isnan(hrv) else -np.inf)
    rhr = pd.to_numeric(column("rhr_bpm"), errors="coerce").to_numpy(dtype=float)[-1]
    raw_injury = pd.to_numeric(column("injury"), errors="coerce").to_numpy(dtype=float)[-1]
    # A raw out-of-range flag stays visible to the range check; otherwise the feature's value.
    injury = raw_injury if _outside(raw_injury, _INJURY.lo, _INJURY.hi) else last["injury"]
    codes = day_codes(column("session")[:-1], column("load_trimp")[:-1],
                      feature_config.rest_max_trimp)
    inputs = SafetyInputs(
        recovery_pct=np.array([recovery[-1]]),
        recovery_pct_yesterday=np.array([recovery[-2]]),
        ln_hrv=np.array([ln_hrv], dtype=float),
        ln_hrv_baseline=np.array([last["ln_hrv_baseline_28d"]], dtype=float),
        ln_hrv_baseline_sd=np.array([last["ln_hrv_baseline_sd_28d"]], dtype=float),
        rhr_bpm=np.array([rhr]),
        injury=np.array([injury], dtype=float),
        history=codes[None, :],
    )
    result = hard_mask(inputs, config)
    return _missing_yesterday_is_low(result, recovery[-1], recovery[-2], config)


def _missing_yesterday_is_low(result: MaskResult, today: float, yesterday: float,
                              config: SafetyConfig) -> MaskResult:
    """Rule (a) on a real morning (module docstring): when today's recovery is below the floor
    and yesterday's is unknown (missing or out of range), yesterday counts as low too."""
    floor = config.recovery_floor_pct
    unknown_yesterday = np.isnan(yesterday) or bool(
        _outside(np.array([yesterday]), _RECOVERY.lo, _RECOVERY.hi)[0])
    today_low = (not np.isnan(today) and today < floor
                 and not _outside(np.array([today]), _RECOVERY.lo, _RECOVERY.hi)[0])
    if config.recovery_floor_days != 2 or not (today_low and unknown_yesterday):
        return result
    if result.reasons[0] & Rule.RECOVERY_FLOOR:
        return result
    reasons = result.reasons | int(Rule.RECOVERY_FLOOR)
    per_action = _tables(config).per_action.take(reasons, axis=0)
    note = (f"yesterday's recovery is {'missing' if np.isnan(yesterday) else 'out of range'}: "
            f"this morning's {today:.0f} % counts as the second low morning (missing data "
            f"makes the rule more careful, not less)")
    return MaskResult(per_action == 0, reasons, per_action, (*result.notes, note))
