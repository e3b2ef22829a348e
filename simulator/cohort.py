"""Synthetic athletes: world-model parameters + performance + hazard + static context (DESIGN §6).

A simulated athlete is

- the world model's physiology parameters (`params.PARAM_NAMES` + `NOISE_PARAMS`: baselines,
  loadings, time constants, noise SDs, and the noise's fast AR(1) coefficients, slow shares,
  slow coefficients and same-day correlations of ln HRV, RHR and recovery; a file written
  before the slow component or the coupling existed reads with `NOISE_DEFAULTS`, one AR(1) per
  signal and independent signals, as it was simulated),
  drawn from the population posterior (`WorldModel.sample_athletes`) or, for a digital twin,
  the posterior median of a real athlete's personalised posterior (`WorldModel.personalize`);
- the latent performance parameters (`performance.sample_performance_params`, Busso's
  saturating dose-response, priors only: no shipped series identifies them,
  docs/identifiability.md), with the athlete's habitual load as the reference load;
- the illness/injury hazard coefficients (`hazard.sample_hazard_params`, priors only);
- static context: age (years), sex (+1 female, −1 male), habitual load ("baseline fitness":
  the load, in 100 TRIMP/day, the athlete trained at before the episode; simulated athletes
  start in the steady state of that load), an optional event day and an optional menstrual
  cycle day on day 0. Context enters the observation (the feature builder's age, sex,
  days_to_event, cycle features); the world model has no age/sex/cycle effect on physiology
  because the shipped data do not identify one, so none is invented here.

A `Cohort` saves to one `.npz` file (arrays only, read back with `allow_pickle=False`) with its
metadata as JSON inside; loading gives identical arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.table import atomic_write
from physiology_model.dynamics.hazard import HazardParams, sample_hazard_params
from physiology_model.dynamics.observation import coupling_problem
from physiology_model.dynamics.params import (
    COUPLING_PARAMS,
    LOAD_SCALE_TRIMP,
    NOISE_PARAMS,
    PARAM_NAMES,
    with_noise_defaults,
)
from physiology_model.dynamics.performance import PerformanceParams, sample_performance_params
from physiology_model.errors import DataError
from physiology_model.features.batch import weekdays

PHYSIOLOGY_KEYS: tuple[str, ...] = PARAM_NAMES + NOISE_PARAMS
PERFORMANCE_KEYS: tuple[str, ...] = ("fitness_gain", "fatigue_gain", "variable_fatigue_gain",
                                     "tau_fit_days", "tau_fat_days", "tau_gain_days", "baseline")
HAZARD_KEYS: tuple[str, ...] = ("intercept", "spike_coef", "low_recovery_coef", "monotony_coef")
CONTEXT_KEYS: tuple[str, ...] = ("age_years", "sex", "habitual_load", "event_day", "cycle_day0")
"""Context every cohort holds. Optional: `weekday0`, the weekday of an athlete's first day
(0 = Monday; NaN or absent: the simulation draws it), which a twin takes from its history."""

COHORT_FORMAT = "adaptive-periodization.Cohort"
COHORT_VERSION = 1


@dataclass(frozen=True)
class CohortConfig:
    """How synthetic athletes' context is drawn."""

    habitual_load_median: float = 0.9
    """Median habitual load, 100 TRIMP/day (≈ 45 min of mostly zone-2 training a day; the
    features' population reference)."""
    habitual_load_log_sd: float = 0.4
    age_range_years: tuple[float, float] = (20.0, 60.0)
    female_share: float = 0.5
    event_share: float = 0.0
    """Share of athletes with a planned event (race) inside the episode."""
    event_day_range: tuple[int, int] = (60, 89)
    cycle_share_of_female: float = 0.7
    """Share of female athletes with a tracked menstrual cycle (the rest: unknown)."""
    cycle_length_days: int = 28


@dataclass(frozen=True)
class Cohort:
    """N simulated athletes: every field is a dict of (N,) float arrays."""

    physiology: dict[str, np.ndarray]
    performance: dict[str, np.ndarray]
    hazard: dict[str, np.ndarray]
    context: dict[str, np.ndarray]
    meta: dict[str, object] = field(default_factory=dict)
    """seed, kind (`synthetic` or `twin`), the model directory, athlete ids for twins."""

    def __post_init__(self) -> None:
        if "phi_hrv" in self.physiology:  # an older cohort: no slow noise or coupling
            object.__setattr__(self, "physiology", with_noise_defaults(self.physiology))
        n = len(self.context["age_years"])
        for group, keys in (("physiology", PHYSIOLOGY_KEYS), ("performance", PERFORMANCE_KEYS),
                            ("hazard", HAZARD_KEYS), ("context", CONTEXT_KEYS)):
            values = getattr(self, group)
            missing = [k for k in keys if k not in values]
            if missing:
                raise ValueError(f"cohort {group} lacks {missing}")
            bad = [k for k in keys if np.shape(values[k]) != (n,)]
            if bad:
                raise ValueError(f"cohort {group} arrays {bad} are not of length {n}")
        problem = coupling_problem(*(self.physiology[k] for k in COUPLING_PARAMS))
        if problem:
            raise ValueError(f"cohort physiology arrays {list(COUPLING_PARAMS)} hold {problem}")
        if "weekday0" in self.context:
            w = np.asarray(self.context["weekday0"], dtype=float)
            known = w[np.isfinite(w)]
            if w.shape != (n,) or np.any((known != np.round(known)) | (known < 0) | (known > 6)):
                raise ValueError(f"cohort context array weekday0 must hold {n} weekdays (0 = "
                                 f"Monday … 6, NaN: drawn)")

    @property
    def n(self) -> int:
        return len(self.context["age_years"])

    def performance_params(self, index: np.ndarray | slice = slice(None)) -> PerformanceParams:
        p = {k: np.asarray(v)[index] for k, v in self.performance.items()}
        return PerformanceParams(**p)

    def hazard_params(self, index: np.ndarray | slice = slice(None)) -> HazardParams:
        return HazardParams(**{k: np.asarray(v)[index] for k, v in self.hazard.items()})

    def subset(self, index: np.ndarray) -> Cohort:
        """The athletes at `index`, in that order."""
        take = lambda d: {k: np.asarray(v)[index].copy() for k, v in d.items()}
        meta = dict(self.meta)
        if "athlete_ids" in meta:
            meta["athlete_ids"] = [meta["athlete_ids"][i] for i in np.asarray(index)]
        return Cohort(take(self.physiology), take(self.performance), take(self.hazard),
                      take(self.context), meta)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the cohort to one `.npz` file, atomically."""
        arrays = {f"{group}/{k}": np.asarray(v, dtype=float)
                  for group in ("physiology", "performance", "hazard", "context")
                  for k, v in getattr(self, group).items()}
        header = {"format": COHORT_FORMAT, "version": COHORT_VERSION, "meta": self.meta}
        arrays["meta_json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> Cohort:
        """Read a cohort written by `save`; a file of another kind fails with a `DataError`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "no such cohort file")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a cohort file ({exc})") from None
        if "meta_json" not in arrays:
            raise DataError(path, "not a cohort file (no metadata)")
        header = json.loads(arrays.pop("meta_json").tobytes().decode())
        if header.get("format") != COHORT_FORMAT or header.get("version") != COHORT_VERSION:
            raise DataError(path, f"cohort format {header.get('format')} v{header.get('version')}"
                                  f" is not {COHORT_FORMAT} v{COHORT_VERSION}")
        groups: dict[str, dict[str, np.ndarray]] = {g: {} for g in
                                                    ("physiology", "performance", "hazard",
                                                     "context")}
        for key, value in arrays.items():
            group, _, name = key.partition("/")
            if group not in groups:
                raise DataError(path, f"unexpected array {key!r}")
            groups[group][name] = value
        try:
            return cls(**groups, meta=header.get("meta", {}))
        except ValueError as exc:
            raise DataError(path, str(exc)) from None


def _draw_context(n: int, rng: np.random.Generator, config: CohortConfig,
                  habitual_load: np.ndarray | None = None) -> dict[str, np.ndarray]:
    lo, hi = config.age_range_years
    sex = np.where(rng.random(n) < config.female_share, 1.0, -1.0)
    if habitual_load is None:
        habitual_load = config.habitual_load_median * np.exp(
            config.habitual_load_log_sd * rng.standard_normal(n))
    has_event = rng.random(n) < config.event_share
    e_lo, e_hi = config.event_day_range
    event_day = np.where(has_event, rng.integers(e_lo, e_hi + 1, size=n), -1).astype(float)
    tracked = (sex > 0) & (rng.random(n) < config.cycle_share_of_female)
    cycle = np.where(tracked, rng.integers(1, config.cycle_length_days + 1, size=n), np.nan)
    return {"age_years": rng.uniform(lo, hi, size=n), "sex": sex,
            "habitual_load": np.asarray(habitual_load, dtype=float),
            "event_day": event_day, "cycle_day0": cycle.astype(float)}


def _performance_dict(params: PerformanceParams) -> dict[str, np.ndarray]:
    return {k: np.asarray(getattr(params, k), dtype=float) for k in PERFORMANCE_KEYS}


def _hazard_dict(params: HazardParams) -> dict[str, np.ndarray]:
    return {k: np.asarray(getattr(params, k), dtype=float) for k in HAZARD_KEYS}


def generate_cohort(model, n: int, seed: int, *, config: CohortConfig = CohortConfig(),
                    source: str | None = None, model_dir: str | None = None) -> Cohort:
    """`n` synthetic athletes drawn from a fitted `WorldModel`'s population posterior.

    `source` picks the device whose population location the physiology is drawn from (None: a
    random fitted source per athlete). Deterministic in `seed`.
    """
    if n < 1:
        raise ValueError(f"a cohort needs at least one athlete, got n={n}")
    rng = np.random.default_rng(seed)
    physiology = with_noise_defaults(model.sample_athletes(n, rng, source))
    context = _draw_context(n, rng, config)
    performance = sample_performance_params(n, rng, variable_dose=True,
                                            reference_load=context["habitual_load"])
    hazard = sample_hazard_params(n, rng)
    meta = {"seed": int(seed), "kind": "synthetic", "model_dir": model_dir, "source": source}
    return Cohort({k: np.asarray(physiology[k], dtype=float) for k in PHYSIOLOGY_KEYS},
                  _performance_dict(performance), _hazard_dict(hazard), context, meta)


def twin_cohort(model, frame: pd.DataFrame, seed: int, *, min_days: int = 14,
                config: CohortConfig = CohortConfig(), model_dir: str | None = None
                ) -> Cohort:
    """Digital twins of the real athletes in a daily-table `frame`: each twin's physiology is
    the posterior median of its personalised posterior (the fitted posterior for athletes in
    the fit); habitual load = its mean known load; age and sex from the data where known.
    Athletes with fewer than `min_days` days of HRV or RHR are skipped (listed in meta), and
    twins whose personalisation weights were degenerate (ESS < 20) are listed in
    meta["rough_personalisation"] instead of warning once each."""
    import warnings

    rng = np.random.default_rng(seed)
    ids, rows, skipped, rough = [], [], [], []
    loads, ages, sexes, firsts = [], [], [], []
    for uid, g in frame.groupby("user_id", sort=True):
        n_obs = int((g["hrv_rmssd_ms"].notna() | g["rhr_bpm"].notna()).sum())
        if n_obs < min_days:
            skipped.append(str(uid))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            draws = with_noise_defaults(model.athlete_params(g, rng))
        if any("degenerate" in str(w.message) for w in caught):
            rough.append(str(uid))
        rows.append({k: float(np.median(draws[k])) for k in PHYSIOLOGY_KEYS})
        ids.append(str(uid))
        firsts.append(float(weekdays(np.datetime64(g["date"].min(), "D"))))
        known = g["load_trimp"].dropna()
        loads.append(float(known.mean()) / LOAD_SCALE_TRIMP if len(known) else np.nan)
        ages.append(float(g["age"].dropna().iloc[-1]) if "age" in g and g["age"].notna().any()
                    else np.nan)
        sex = g["sex"].dropna() if "sex" in g else pd.Series(dtype=object)
        sexes.append({"female": 1.0, "male": -1.0}.get(str(sex.iloc[-1]), np.nan)
                     if len(sex) else np.nan)
    if not ids:
        raise DataError("(history)", f"no athlete has {min_days} days of HRV or RHR for a twin")
    n = len(ids)
    habitual = np.asarray(loads)
    habitual = np.where(np.isfinite(habitual) & (habitual > 0.05), habitual,
                        config.habitual_load_median)
    context = _draw_context(n, rng, config, habitual_load=habitual)
    context["age_years"] = np.where(np.isfinite(ages), ages, context["age_years"])
    context["sex"] = np.where(np.isfinite(sexes), sexes, context["sex"])
    # a twin's day 0 is its first day (its recorded sessions are replayed from there), on the
    # weekday that day was, so the weekday offsets fall on the days they fell on
    context["weekday0"] = np.asarray(firsts, dtype=float)
    performance = sample_performance_params(n, rng, variable_dose=True,
                                            reference_load=context["habitual_load"])
    hazard = sample_hazard_params(n, rng)
    physiology = {k: np.array([r[k] for r in rows]) for k in PHYSIOLOGY_KEYS}
    meta = {"seed": int(seed), "kind": "twin", "model_dir": model_dir, "athlete_ids": ids,
            "skipped": skipped, "rough_personalisation": rough}
    return Cohort(physiology, _performance_dict(performance), _hazard_dict(hazard), context,
                  meta)
