"""Training load in one unit for every source and every action (DESIGN §4).

`load_trimp` is an Edwards TRIMP-equivalent: minutes in heart-rate zones 1-5 (50-60 %, ...,
90-100 % of HRmax) weighted 1-5 (Edwards 1993, "The Heart Rate Monitor Book"). Sources that do
not give zone minutes are converted with the documented approximations below; the column
`load_basis` records which conversion produced each day's value.

The module has four parts:

- unit conversions (`edwards_trimp`, `srpe_to_trimp`, `tss_to_trimp`, `is_strength_activity`);
- the action → load map: every action has a nominal session (`NominalSession`, config in
  `configs/sessions.toml`), and discrete and continuous actions go through one zone function
  (`zone_mix`), so `action_loads` and `continuous_loads` agree at each nominal session;
- `infer_session`: which of the six actions a recorded day most resembles;
- the WHOOP day strain → TRIMP calibration (`fit_strain_calibration`, shipped as
  `strain_calibration.json`), and `derive_load_columns`, which fills `load_trimp`,
  `load_basis` and `session` where the loaders left them empty.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import ndtr

from physiology_model.data.table import ACTIONS, NoteLog, atomic_write
from physiology_model.errors import DataError

# --------------------------------------------------------------------------------------------
# Unit conversions
# --------------------------------------------------------------------------------------------

ZONE_WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
"""Edwards (1993) weights for minutes in HR zones 1-5."""

ZONE_COLUMNS: tuple[str, ...] = ("z1_min", "z2_min", "z3_min", "z4_min", "z5_min")

ZONE_LOWER_EDGES_PCT_HRMAX = np.array([50.0, 60.0, 70.0, 80.0, 90.0])
"""Lower edge of Edwards zones 1-5 in % of HRmax; zone 5 is open above (HR above HRmax
counts as zone 5), time below 50 % is in no zone and adds no load."""

TRIMP_PER_TSS = 2.5
"""TrainingPeaks TSS → Edwards TRIMP. 100 TSS is one hour at threshold (Allen & Coggan 2010),
which is mostly zone 4 by heart rate (60 min × 4 = 240 TRIMP); an easy hour (IF 0.65, 42 TSS)
is zone 2 (120 TRIMP, ratio 2.9). 2.5 is the compromise; it is an approximation."""


def edwards_trimp(zone_minutes: np.ndarray) -> np.ndarray:
    """Edwards TRIMP from minutes in zones 1-5, shape (..., 5) → (...). NaN zones count as 0,
    but a row with every zone NaN gives NaN."""
    z = np.asarray(zone_minutes, dtype=float)
    all_nan = np.all(np.isnan(z), axis=-1)
    trimp = np.nansum(z * ZONE_WEIGHTS, axis=-1)
    return np.where(all_nan, np.nan, trimp)


def rpe_zone_weight(rpe_cr10: np.ndarray) -> np.ndarray:
    """The Edwards zone weight (1-5) of a session rated `rpe_cr10` on Borg's CR-10 scale.

    CR-10 1-2 ≈ zone 1, 3-4 ≈ zone 2, 5-6 ≈ zone 3, 7-8 ≈ zone 4, 9-10 ≈ zone 5, following the
    RPE-HR correspondence behind session-RPE (Foster et al. 2001, J Strength Cond Res 15:109;
    Impellizzeri et al. 2004 found sRPE and Edwards TRIMP correlate at r ≈ 0.5-0.85).
    """
    r = np.asarray(rpe_cr10, dtype=float)
    return np.clip(np.ceil(r / 2.0), 1.0, 5.0)


def srpe_to_trimp(rpe_cr10: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Session RPE (Foster 2001: RPE × minutes) → Edwards TRIMP-equivalent: minutes × the zone
    weight of that RPE (see `rpe_zone_weight`). Approximation, recorded as `load_basis='srpe'`."""
    return rpe_zone_weight(rpe_cr10) * np.asarray(minutes, dtype=float)


def tss_to_trimp(tss: np.ndarray) -> np.ndarray:
    """TrainingPeaks/Coggan TSS → Edwards TRIMP-equivalent (`TRIMP_PER_TSS`, approximate)."""
    return TRIMP_PER_TSS * np.asarray(tss, dtype=float)


_STRENGTH = re.compile(
    r"weight|strength|strenght|lifting|resistance|functional fitness|crossfit|powerlifting|"
    r"bodybuilding|kettlebell|gym|kraft|musculation|calisthenics",
    re.IGNORECASE,
)


def is_strength_activity(name: str | None) -> bool:
    """Whether an activity name (WHOOP sport, Fitbit/Garmin activity type) is resistance work."""
    return bool(name) and bool(_STRENGTH.search(str(name)))


# --------------------------------------------------------------------------------------------
# Actions → nominal sessions → load
# --------------------------------------------------------------------------------------------

ZONE_SPREAD_PCT_HRMAX = 5.0
"""Default spread (SD, in % of HRmax) of a session's minute-by-minute heart rate around its
target intensity. A modelling assumption (warm-up, drift, terrain), not a measured constant."""


def zone_mix(intensity_pct_hrmax: np.ndarray,
             spread_pct_hrmax: float = ZONE_SPREAD_PCT_HRMAX) -> np.ndarray:
    """Fraction of a session's minutes in Edwards zones 1-5 at a target intensity.

    The session's heart rate is taken as normally distributed around the target
    (`intensity_pct_hrmax`, % of HRmax) with SD `spread_pct_hrmax`; each zone gets the
    probability mass between its edges (`ZONE_LOWER_EDGES_PCT_HRMAX`), zone 5 also the mass
    above 100 %. The mass below 50 % is in no zone, so a row sums to at most 1.

    Shape: (...) → (..., 5). This is the one zone function behind both `action_loads` and
    `continuous_loads`.
    """
    if not spread_pct_hrmax > 0:
        raise ValueError(f"spread_pct_hrmax must be positive, got {spread_pct_hrmax}")
    x = np.asarray(intensity_pct_hrmax, dtype=float)[..., None]
    cdf = ndtr((ZONE_LOWER_EDGES_PCT_HRMAX - x) / spread_pct_hrmax)  # P(HR < edge)
    upper = np.concatenate([cdf[..., 1:], np.ones_like(cdf[..., :1])], axis=-1)
    return upper - cdf


class SessionLoads(NamedTuple):
    """The load of one or many sessions, each an array of the input's shape."""

    trimp: np.ndarray
    """Edwards TRIMP-equivalent (the `load_trimp` unit)."""
    hi_min: np.ndarray
    """Minutes in zones 4-5: the fast-fatigue component (DESIGN §4)."""
    strength_min: np.ndarray
    """Minutes of resistance training: the strength component."""


def continuous_loads(duration_min: np.ndarray, intensity_pct_hrmax: np.ndarray, *,
                     strength_min: np.ndarray | float = 0.0,
                     spread_pct_hrmax: float = ZONE_SPREAD_PCT_HRMAX) -> SessionLoads:
    """Load of a continuous action: `duration_min` minutes at `intensity_pct_hrmax` % of HRmax.

    Minutes per zone = duration × `zone_mix(intensity)`; TRIMP = Edwards weights · zone
    minutes; `hi_min` = zone 4 + zone 5 minutes. `strength_min` passes through (0 for a pure
    cardio action). Inputs broadcast against each other; NaN propagates.
    """
    duration = np.asarray(duration_min, dtype=float)
    if np.any(duration < 0):
        raise ValueError("duration_min must not be negative")
    minutes = duration[..., None] * zone_mix(intensity_pct_hrmax, spread_pct_hrmax)
    trimp = minutes @ ZONE_WEIGHTS
    hi_min = minutes[..., 3] + minutes[..., 4]
    strength = np.broadcast_to(np.asarray(strength_min, dtype=float), trimp.shape).copy()
    return SessionLoads(trimp, hi_min, strength)


@dataclass(frozen=True)
class NominalSession:
    """The session an action prescribes, as `continuous_loads` reads it.

    Its zone mix is not stored: it is `zone_mix(intensity_pct_hrmax)`, the same function the
    continuous action uses, so a discrete action and the continuous action at the same
    (duration, intensity) have the same load by construction.
    """

    duration_min: float
    """Session length in minutes, warm-up and rest intervals included (0 for rest)."""
    intensity_pct_hrmax: float
    """Target heart rate in % of HRmax, the centre of the session's zone mix (0 for rest)."""
    strength_min: float = 0.0
    """Minutes of the session spent on resistance work (at most `duration_min`)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.duration_min <= 600.0:
            raise ValueError(f"duration_min must be in 0-600, got {self.duration_min}")
        if not 0.0 <= self.intensity_pct_hrmax <= 110.0:
            raise ValueError(f"intensity_pct_hrmax must be in 0-110, got "
                             f"{self.intensity_pct_hrmax}")
        if not 0.0 <= self.strength_min <= self.duration_min:
            raise ValueError(f"strength_min must be in 0-duration_min, got {self.strength_min}")


@dataclass(frozen=True)
class SessionTable:
    """Nominal session of each action (seed §2.2); the defaults are the seed's ranges' middles.

    Field names are the action names of `table.ACTIONS`; `configs/sessions.toml` holds the same
    values (`load_session_table`).
    """

    rest: NominalSession = NominalSession(0.0, 0.0)
    """Complete rest: no session."""
    active_recovery: NominalSession = NominalSession(30.0, 55.0)
    """Zone 1, < 60 % HRmax, 20-40 min."""
    z2_aerobic: NominalSession = NominalSession(67.5, 65.0)
    """Aerobic base, zone 2, 60-70 % HRmax, 45-90 min."""
    tempo_threshold: NominalSession = NominalSession(45.0, 77.5)
    """Tempo/threshold, zones 3-4, 70-85 % HRmax, 30-60 min."""
    hiit: NominalSession = NominalSession(30.0, 90.0)
    """High-intensity intervals, zone 5, > 85 % HRmax, 20-40 min including rest."""
    strength: NominalSession = NominalSession(60.0, 58.0, 60.0)
    """Resistance training with a moderate cardiovascular load. The seed gives no numbers: the
    shipped WHOOP strength workouts (Weightlifting, Functional Fitness, Powerlifting, ...) last
    65 min (median) at a median average HR of 107 bpm, about 58 % of a typical HRmax, and
    spend 39/20/7/1/0 % of their time in zones 1-5."""
    zone_spread_pct_hrmax: float = ZONE_SPREAD_PCT_HRMAX
    """SD of heart rate around a session's target, in % of HRmax (see `zone_mix`)."""

    def session(self, action: str) -> NominalSession:
        """The nominal session of an action name."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        return getattr(self, action)

    def sessions(self) -> tuple[NominalSession, ...]:
        """The nominal sessions in action-index order (`table.ACTIONS`)."""
        return tuple(getattr(self, a) for a in ACTIONS)

    def zone_minutes(self) -> np.ndarray:
        """Minutes in zones 1-5 of each nominal session, shape (6, 5), action-index order."""
        s = self.sessions()
        duration = np.array([x.duration_min for x in s])
        intensity = np.array([x.intensity_pct_hrmax for x in s])
        return duration[:, None] * zone_mix(intensity, self.zone_spread_pct_hrmax)

    def loads(self) -> SessionLoads:
        """Load of each nominal session, arrays of shape (6,), action-index order."""
        s = self.sessions()
        return continuous_loads(np.array([x.duration_min for x in s]),
                                np.array([x.intensity_pct_hrmax for x in s]),
                                strength_min=np.array([x.strength_min for x in s]),
                                spread_pct_hrmax=self.zone_spread_pct_hrmax)


DEFAULT_SESSION_TABLE = SessionTable()


@lru_cache(maxsize=16)
def _load_lookup(table: SessionTable) -> np.ndarray:
    """(3, 6) array: trimp, hi_min, strength_min per action; cached per (frozen) table."""
    lookup = np.stack(table.loads())
    lookup.setflags(write=False)
    return lookup


def action_loads(actions: np.ndarray, table: SessionTable = DEFAULT_SESSION_TABLE) -> SessionLoads:
    """Load of discrete actions (integer indices into `table.ACTIONS`), any shape.

    Returns `SessionLoads` arrays of the same shape; equal to `continuous_loads` at each
    action's nominal (duration, intensity, strength minutes). Raises `ValueError` for an index
    outside 0-5.
    """
    a = np.asarray(actions)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be integers, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= len(ACTIONS)):
        raise ValueError(f"actions must be in 0-{len(ACTIONS) - 1}")
    lookup = _load_lookup(table)
    return SessionLoads(lookup[0][a], lookup[1][a], lookup[2][a])


def read_toml(path: Path) -> dict[str, object]:
    """A TOML config file as a dict; an unreadable file or invalid TOML is a `DataError` naming
    the file (used by every config reader: sessions here, safety in simulator/constraints.py)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid TOML ({exc})") from None


def load_session_table(path: str | Path) -> SessionTable:
    """Read a session table from TOML: optional `zone_spread_pct_hrmax`, and one table per
    action with `duration_min`, `intensity_pct_hrmax`, `strength_min`. Actions or fields left
    out keep their defaults; unknown names and invalid values raise `DataError`."""
    path = Path(path)
    raw = read_toml(path)
    known = {f.name for f in fields(SessionTable)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataError(path, f"unknown keys {unknown}; expected {sorted(known)}")
    session_fields = {f.name for f in fields(NominalSession)}
    values: dict[str, object] = {}
    for action in ACTIONS:
        if action not in raw:
            continue
        entry = raw[action]
        if not isinstance(entry, dict):
            raise DataError(path, f"[{action}] must be a table of {sorted(session_fields)}")
        bad = sorted(set(entry) - session_fields)
        if bad:
            raise DataError(path, f"[{action}]: unknown keys {bad}")
        merged = {**asdict(getattr(DEFAULT_SESSION_TABLE, action)), **entry}
        values[action] = _make(path, f"[{action}]", NominalSession, merged)
    if "zone_spread_pct_hrmax" in raw:
        values["zone_spread_pct_hrmax"] = raw["zone_spread_pct_hrmax"]
    return _make(path, "", SessionTable, values)


def _make(path: Path, where: str, cls: type, values: dict[str, object]):
    """`cls(**values)` with numbers checked, as a `DataError` naming the file."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, NominalSession)):
            raise DataError(path, f"{where}{' ' if where else ''}{key} must be a number, "
                                  f"got {value!r}")
    numbers = {k: float(v) if isinstance(v, (int, float)) else v for k, v in values.items()}
    try:
        obj = cls(**numbers)
        if isinstance(obj, SessionTable) and not obj.zone_spread_pct_hrmax > 0:
            raise ValueError("zone_spread_pct_hrmax must be positive")
    except ValueError as exc:
        raise DataError(path, f"{where}{' ' if where else ''}{exc}") from None
    return obj


# --------------------------------------------------------------------------------------------
# Session inference from a recorded day
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRules:
    """Thresholds that name a recorded day's training after one of the six actions.

    Applied in this order to days with zone minutes (Z1-Z5 minutes summed = "zone minutes"):
    strength, hiit, tempo_threshold, z2_aerobic, active_recovery, else rest. The defaults
    classify each nominal session of `SessionTable()` as its own action (tested).
    """

    strength_min_session: float = 15.0
    """A day is `strength` when it has at least this many strength minutes and no more
    minutes in zones 2-5 than strength minutes (the lifting, not the cardio, dominates)."""
    hiit_min_z5_min: float = 5.0
    """`hiit` needs at least this many minutes in zone 5 ..."""
    hiit_min_z5_share: float = 0.15
    """... and at least this share of the zone minutes in zone 5."""
    tempo_min_z34_min: float = 10.0
    """`tempo_threshold` needs at least this many minutes in zones 3-4 ..."""
    tempo_min_z345_share: float = 0.30
    """... and at least this share of the zone minutes in zones 3-5."""
    aerobic_min_z2plus_min: float = 20.0
    """`z2_aerobic` needs at least this many minutes in zones 2-5."""
    rest_max_zone_min: float = 10.0
    """Fewer zone minutes than this (and no strength session) is `rest`: incidental heart-rate
    excursions (stairs, a commute) are not training."""


DEFAULT_SESSION_RULES = SessionRules()


def infer_session(zone_min: np.ndarray, strength_min: np.ndarray, load_trimp: np.ndarray,
                  rules: SessionRules = DEFAULT_SESSION_RULES) -> np.ndarray:
    """Name each day's training: an action name, `unknown`, or None (no information).

    `zone_min`: (n, 5) minutes in zones 1-5 (NaN where unknown; a row with some zones NaN
    counts those as 0); `strength_min`: (n,) minutes of resistance work (NaN = unknown);
    `load_trimp`: (n,) the day's measured load (NaN = unknown).

    - zone minutes present: the `SessionRules` thresholds, in their order;
    - no zone minutes: `strength` when strength minutes reach `strength_min_session`; `rest`
      when the load is a measured 0 and there are no strength minutes; `unknown` when there
      is load (e.g. sRPE or TSS) or some strength minutes, but no zones to tell its kind;
      None when nothing is known.

    Returns an object array of length n.
    """
    z = np.asarray(zone_min, dtype=float)
    if z.ndim != 2 or z.shape[1] != 5:
        raise ValueError(f"zone_min must have shape (n, 5), got {z.shape}")
    strength = np.asarray(strength_min, dtype=float)
    load = np.asarray(load_trimp, dtype=float)
    has_zones = ~np.all(np.isnan(z), axis=1)
    z = np.nan_to_num(z)
    s = np.nan_to_num(strength)
    total = z.sum(axis=1)
    # share of zone minutes; 0 where there are none (those days are rest or strength anyway)
    share = np.divide(z, total[:, None], out=np.zeros_like(z), where=total[:, None] > 0)
    z2plus = z[:, 1:].sum(axis=1)

    is_strength = (s >= rules.strength_min_session) & (s >= z2plus)
    is_hiit = (z[:, 4] >= rules.hiit_min_z5_min) & (share[:, 4] >= rules.hiit_min_z5_share)
    is_tempo = ((z[:, 2] + z[:, 3] >= rules.tempo_min_z34_min)
                & (share[:, 2:].sum(axis=1) >= rules.tempo_min_z345_share))
    is_aerobic = z2plus >= rules.aerobic_min_z2plus_min
    is_active = total >= rules.rest_max_zone_min

    no_zone_strength = s >= rules.strength_min_session
    no_zone_rest = (load == 0) & (s == 0)
    no_zone_unknown = (load > 0) | (s > 0)

    conditions = [has_zones & is_strength, has_zones & is_hiit, has_zones & is_tempo,
                  has_zones & is_aerobic, has_zones & is_active, has_zones,
                  no_zone_strength, no_zone_rest, no_zone_unknown]
    names = ["strength", "hiit", "tempo_threshold", "z2_aerobic", "active_recovery", "rest",
             "strength", "rest", "unknown"]
    # object arrays throughout: the result holds None where nothing is known
    choices = [np.full(len(z), name, dtype=object) for name in names]
    return np.select(conditions, choices, default=np.full(len(z), None, dtype=object))


# --------------------------------------------------------------------------------------------
# WHOOP day strain → TRIMP
# --------------------------------------------------------------------------------------------

STRAIN_FORM = "load_trimp = a_trimp * (exp(b_per_strain * strain) - 1)"
STRAIN_CALIBRATION_FILE = "strain_calibration.json"
CALIBRATE_COMMAND = ("periodize data calibrate data/real/whoop data/real/whoop_api "
                     "--out physiology_model/data/strain_calibration.json")
"""The command that reproduces the shipped `strain_calibration.json`."""
MIN_CALIBRATION_DAYS = 30


@dataclass(frozen=True)
class StrainCalibration:
    """WHOOP day strain (0-21) → Edwards TRIMP of that day's recorded workouts.

    Strain is logarithmic in cardiovascular load, so the map is exponential:
    `load_trimp = a_trimp · (exp(b_per_strain · strain) − 1)` (monotone, 0 at strain 0).
    It is fitted by least squares on the TRIMP scale, zero-workout days included, so it
    estimates the expected TRIMP at a given strain (days without a workout pull the mean down
    at low strain, as they should); see `fit_strain_calibration`. The shipped file is
    reproduced by `CALIBRATE_COMMAND`.
    """

    a_trimp: float
    """Scale, in TRIMP."""
    b_per_strain: float
    """Growth rate per strain unit."""
    n_days: int
    """Days (with both day strain and zone minutes) in the fit."""
    n_users: int
    """Users in the fit."""
    r2_trimp: float
    """In-sample R² on the TRIMP scale."""
    r2_log1p: float
    """In-sample R² of log1p(TRIMP) (penalises the zero-workout days the mean cannot predict)."""
    residual_sd_trimp: float
    """SD of the residuals (observed − fitted), TRIMP."""
    residual_q10_trimp: float
    """10 % quantile of the residuals, TRIMP."""
    residual_q90_trimp: float
    """90 % quantile of the residuals, TRIMP."""
    louo_r2_trimp: float
    """Leave-one-user-out R² on the TRIMP scale: each user predicted by a fit without them,
    pooled over users (NaN with fewer than 2 users)."""
    louo_r2_log1p: float
    """Leave-one-user-out R² of log1p(TRIMP)."""
    users: tuple[str, ...] = ()
    """user_ids of the fit."""
    data_paths: tuple[str, ...] = ()
    """The export paths the fit read (`calibrate_strain`); empty when fitted on a frame."""
    form: str = STRAIN_FORM
    """The fitted formula."""

    def predict(self, strain: np.ndarray) -> np.ndarray:
        """Expected TRIMP at a day strain (0-21); NaN stays NaN."""
        s = np.asarray(strain, dtype=float)
        return self.a_trimp * np.expm1(self.b_per_strain * s)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (lists for tuples)."""
        d = asdict(self)
        d["users"] = list(self.users)
        d["data_paths"] = list(self.data_paths)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object],
                  where: str | Path = "(calibration)") -> StrainCalibration:
        """Inverse of `to_dict`; missing or unknown keys raise `DataError`."""
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.name not in ("users", "data_paths", "form")}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise DataError(where, f"not a strain calibration (missing {missing}, "
                                   f"unknown {unknown})")
        values = dict(data)
        values["users"] = tuple(values.get("users", ()))
        values["data_paths"] = tuple(values.get("data_paths", ()))
        for key in ("n_days", "n_users"):
            values[key] = int(values[key])
        for key in required - {"n_days", "n_users"}:
            values[key] = float(np.nan if values[key] is None else values[key])
        return cls(**values)

    def describe(self) -> str:
        """The fit's statistics as a few human-readable lines."""
        return "\n".join([
            f"{self.form}: a_trimp = {self.a_trimp:.4g}, b_per_strain = {self.b_per_strain:.4g}",
            f"fitted on {self.n_days} days of {self.n_users} users"
            + (f" from {' '.join(self.data_paths)}" if self.data_paths else ""),
            f"R² (TRIMP) = {self.r2_trimp:.3f}, R² (log1p TRIMP) = {self.r2_log1p:.3f}",
            (f"leave-one-user-out R² (TRIMP) = {self.louo_r2_trimp:.3f}, "
             f"(log1p) = {self.louo_r2_log1p:.3f}"),
            (f"residual SD = {self.residual_sd_trimp:.1f} TRIMP, 10-90 % quantiles = "
             f"{self.residual_q10_trimp:.1f} .. {self.residual_q90_trimp:.1f} TRIMP"),
            "TRIMP at strain 5/10/15/20 = "
            + "/".join(f"{v:.0f}" for v in self.predict(np.array([5.0, 10, 15, 20]))),
        ])


def _r2(observed: np.ndarray, predicted: np.ndarray) -> float:
    ss_tot = float(np.sum((observed - observed.mean()) ** 2))
    return float(1.0 - np.sum((observed - predicted) ** 2) / ss_tot) if ss_tot > 0 else np.nan


def _fit_exponential(strain: np.ndarray, trimp: np.ndarray,
                     start: np.ndarray | None = None) -> np.ndarray:
    """Least-squares (a, b) of `a·(exp(b·strain) − 1)` on the TRIMP scale, a, b > 0.

    Parameters are fitted on the log scale (positivity); the start, unless given, comes from
    the mean TRIMP at high and middle strain. Deterministic.
    """
    if start is None:
        start = np.log([5.0, 0.2])

    def residuals(p: np.ndarray) -> np.ndarray:
        # / 100: keeps the residual scale near 1 for the solver's tolerances
        return (np.exp(p[0]) * np.expm1(np.exp(p[1]) * strain) - trimp) / 100.0

    result = least_squares(residuals, start, method="trf")
    return result.x


def calibration_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """The days a strain calibration can use: `user_id`, `strain`, and `trimp` (Edwards TRIMP
    of the zone minutes, never a `load_trimp` derived from strain). A day needs day strain and
    at least one zone column; loaders set zone minutes to 0 on days their workout log covers
    without a workout, and those zeros are kept."""
    zones = frame[list(ZONE_COLUMNS)].to_numpy(dtype=float)
    trimp = edwards_trimp(zones)
    strain = frame["strain"].to_numpy(dtype=float)
    keep = ~np.isnan(trimp) & ~np.isnan(strain)
    return pd.DataFrame({"user_id": frame["user_id"].to_numpy()[keep],
                         "strain": strain[keep], "trimp": trimp[keep]})


def fit_strain_calibration(frame: pd.DataFrame,
                           where: str | Path = "(strain calibration)") -> StrainCalibration:
    """Fit `StrainCalibration` on every day of `frame` with both day strain and zone minutes.

    Least squares on the TRIMP scale, not on log1p(TRIMP): on the shipped WHOOP data
    (13 users, 5.7k days, about a third without any workout) a log1p fit of the same form
    predicts a mean TRIMP about 35 per day too low, because the many zero days pull a fit of
    log-values towards a geometric mean; the TRIMP-scale fit has mean residual 0, so loads
    filled from strain are unbiased on average, which is what an impulse-response model summing
    daily loads needs. Raises `DataError` (naming `where`) with fewer than
    `MIN_CALIBRATION_DAYS` days.
    """
    pairs = calibration_pairs(frame)
    if len(pairs) < MIN_CALIBRATION_DAYS:
        raise DataError(where, f"only {len(pairs)} days have both WHOOP day strain and HR-zone "
                               f"minutes; at least {MIN_CALIBRATION_DAYS} are needed")
    strain = pairs["strain"].to_numpy()
    trimp = pairs["trimp"].to_numpy()
    users = pairs["user_id"].to_numpy()
    params = _fit_exponential(strain, trimp)
    fitted = np.exp(params[0]) * np.expm1(np.exp(params[1]) * strain)
    residual = trimp - fitted

    unique_users = np.unique(users)
    held_out = np.full_like(trimp, np.nan)
    if len(unique_users) >= 2:
        for user in unique_users:
            mine = users == user
            p = _fit_exponential(strain[~mine], trimp[~mine], start=params)
            held_out[mine] = np.exp(p[0]) * np.expm1(np.exp(p[1]) * strain[mine])
    louo = not np.isnan(held_out).any()

    return StrainCalibration(
        a_trimp=float(np.exp(params[0])),
        b_per_strain=float(np.exp(params[1])),
        n_days=len(pairs),
        n_users=len(unique_users),
        r2_trimp=_r2(trimp, fitted),
        r2_log1p=_r2(np.log1p(trimp), np.log1p(fitted)),
        residual_sd_trimp=float(np.std(residual, ddof=1)),
        residual_q10_trimp=float(np.quantile(residual, 0.10)),
        residual_q90_trimp=float(np.quantile(residual, 0.90)),
        louo_r2_trimp=_r2(trimp, held_out) if louo else np.nan,
        louo_r2_log1p=_r2(np.log1p(trimp), np.log1p(held_out)) if louo else np.nan,
        users=tuple(str(u) for u in unique_users),
    )


def save_strain_calibration(calibration: StrainCalibration, path: str | Path) -> None:
    """Write the calibration as JSON, atomically."""
    text = json.dumps(calibration.to_dict(), indent=1, allow_nan=True) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_strain_calibration(path: str | Path) -> StrainCalibration:
    """Read a calibration JSON written by `save_strain_calibration`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "not a strain calibration (expected a JSON object)")
    return StrainCalibration.from_dict(data, path)


@lru_cache(maxsize=1)
def shipped_strain_calibration() -> StrainCalibration | None:
    """The calibration shipped with the package (`strain_calibration.json`), or None when the
    file is absent (then strain-only days keep `load_trimp` empty)."""
    resource = resources.files("physiology_model.data").joinpath(STRAIN_CALIBRATION_FILE)
    if not resource.is_file():
        return None
    data = json.loads(resource.read_text(encoding="utf-8"))
    return StrainCalibration.from_dict(data, f"physiology_model/data/{STRAIN_CALIBRATION_FILE}")


# --------------------------------------------------------------------------------------------
# Derived columns of the daily table
# --------------------------------------------------------------------------------------------


def derive_load_columns(frame: pd.DataFrame, log: NoteLog, where: str = "(table)",
                        calibration: StrainCalibration | None = None,
                        rules: SessionRules = DEFAULT_SESSION_RULES) -> pd.DataFrame:
    """Fill `load_trimp`, `load_basis` and `session` where the loaders left them empty.

    - `load_trimp` empty, zone minutes present → Edwards TRIMP (`load_basis='hr_zones'`);
    - `load_trimp` empty, no zone minutes, day strain present → the strain calibration
      (`load_basis='strain_calibrated'`); `calibration` None means the shipped one
      (`shipped_strain_calibration`); without any, these days keep `load_trimp` empty;
    - `session` empty → `infer_session`; a day whose load was filled from strain (an expected
      value, not a measurement) is `unknown` unless its strength minutes decide it.

    Each fill is counted in an `info` note about `where` (the file or folder the rows came
    from). Run `table.validate_frame` on the result: derived loads are range-checked too.
    Returns a new frame; the input is not modified.
    """
    out = frame.copy()
    zones = out[list(ZONE_COLUMNS)].to_numpy(dtype=float)
    from_zones_trimp = edwards_trimp(zones)
    has_zones = ~np.isnan(from_zones_trimp)
    trimp = out["load_trimp"].to_numpy(dtype=float).copy()
    basis = out["load_basis"].to_numpy(dtype=object).copy()

    fill_zones = np.isnan(trimp) & has_zones
    trimp[fill_zones] = from_zones_trimp[fill_zones]
    basis[fill_zones] = "hr_zones"
    if fill_zones.any():
        log.add(where, "info", "load_trimp computed from HR-zone minutes (Edwards TRIMP)",
                int(fill_zones.sum()))

    if calibration is None:
        calibration = shipped_strain_calibration()
    strain = out["strain"].to_numpy(dtype=float)
    fill_strain = np.isnan(trimp) & ~np.isnan(strain)
    if calibration is not None and fill_strain.any():
        trimp[fill_strain] = calibration.predict(strain[fill_strain])
        basis[fill_strain] = "strain_calibrated"
        log.add(where, "info",
                f"load_trimp estimated from WHOOP day strain ({calibration.form}, "
                f"a={calibration.a_trimp:.3g}, b={calibration.b_per_strain:.3g}; "
                f"leave-one-user-out R² {calibration.louo_r2_trimp:.2f})",
                int(fill_strain.sum()))
    elif fill_strain.any():
        log.add(where, "info", "no strain calibration available; days with only WHOOP "
                                      "day strain keep load_trimp empty", int(fill_strain.sum()))
        fill_strain = np.zeros_like(fill_strain)

    session = out["session"].to_numpy(dtype=object).copy()
    empty = pd.isna(out["session"]).to_numpy()
    measured_load = np.where(fill_strain, np.nan, trimp)
    inferred = infer_session(zones, out["strength_min"].to_numpy(dtype=float), measured_load,
                             rules)
    inferred = np.where(fill_strain & pd.isna(inferred), "unknown", inferred)
    fill_session = empty & pd.notna(inferred)
    session[fill_session] = inferred[fill_session]
    if fill_session.any():
        counts = pd.Series(inferred[fill_session]).value_counts()
        detail = ", ".join(f"{name} {int(counts.get(name, 0))}"
                           for name in (*ACTIONS, "unknown") if counts.get(name, 0))
        log.add(where, "info", f"session inferred from zone minutes, strength minutes "
                                      f"and load ({detail})", int(fill_session.sum()))

    out["load_trimp"] = trimp
    out["load_basis"] = pd.Series(basis, index=out.index, dtype=object).where(
        pd.notna(basis), None)
    out["session"] = pd.Series(session, index=out.index, dtype=object).where(
        pd.notna(session), None)
    return out


def actual_actions(history: pd.DataFrame, days: int) -> np.ndarray | None:
    """The first `days` days of an athlete's sessions as action indices (module docstring);
    None when the history is shorter."""
    h = history.sort_values("date").set_index("date")
    full = h.reindex(pd.date_range(h.index.min(), h.index.max(), freq="D"))
    if len(full) < days:
        return None
    full = full.iloc[:days]
    session = full["session"].astype(object) if "session" in full else pd.Series(
        [None] * days, index=full.index)
    load = full["load_trimp"].to_numpy(dtype=float)
    out = np.where(load > 20.0, ACTIONS.index("z2_aerobic"), ACTIONS.index("rest"))
    for i, s in enumerate(session.to_numpy()):
        if isinstance(s, str) and s in ACTIONS:
            out[i] = ACTIONS.index(s)
    return out.astype(np.int64)
