"""The correlation of the three signals' noises on the same morning, estimated after the fit.

The hierarchical model's likelihood treats the noises of ln HRV, RHR and the recovery logit
as independent (each its own slow + fast AR(1)); on the same morning they are not. Measured in
data/real (`periodize model check`'s `coupling`): within an athlete ln HRV and resting HR
correlate at a median −0.56 (WHOOP −0.79), and a recovery score, computed by the device from
the morning's HRV and resting HR, follows ln HRV. Each target's likelihood is its own marginal,
so the fitted marginal parameters stay what they are (the independence likelihood is a
composite likelihood of the joint model: Varin, Reid & Firth 2011, Stat Sinica 21:5); what the
fit leaves out is the dependence, estimated here and carried in every athlete's draws as
`params.COUPLING_PARAMS`, so that the simulator's athletes, twins and replays read three
signals that move together as real ones do (`step.transition`, `step.simulate`).

Estimate. For every athlete of the fit, on the fit's rows: each target's one-step-ahead
forecast of every morning from the athlete's posterior (`forecast.forecast_gaussians`, horizon
1: the Banister mean plus the filtered slow and fast noise; the equal mixture over the kept
draws, `hybrid.mixture_moments`), and the standardised error z = (y − mean) / sd. On mornings
where two targets were both measured, the correlation of their z, pooled over the athletes of
a source: Σ z_i z_j / √(Σ z_i² Σ z_j²) (z is already centred and scaled by the model; pooling
weights athletes by their days). A one-step error is nearly all the day's fast innovation (the
slow component's daily innovation is a few per cent of it), so this is the innovations'
correlation, used for the slow component's innovations too. A source with fewer than
`MIN_PAIRS` mornings of a pair (or fewer than `MIN_ATHLETES` athletes) gets the value pooled over
every source; a pair never measured together gets 0. The three correlations of a source are
then made a valid correlation matrix: shrunk toward independence, R ← (1 − λ)·R + λ·I with the
smallest λ on a grid of 0.05 whose matrix has every eigenvalue ≥ `MIN_EIGENVALUE`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import NOISE_COUPLING, TARGETS, WARM_START_DAYS
from physiology_model.model.forecast import forecast_gaussians, observed_targets, series_from_frame
from physiology_model.model.hybrid import mixture_moments

MIN_PAIRS = 300
"""Fewest mornings with both signals measured for a source's own correlation."""
MIN_ATHLETES = 3
"""Fewest athletes with such mornings for a source's own correlation."""
MIN_EIGENVALUE = 0.05
"""Smallest eigenvalue of a kept correlation matrix (`shrink_to_valid`)."""
MAX_DRAWS = 100
"""Posterior draws of an athlete used for its one-step forecasts (evenly spaced)."""
POOLED = "(all sources)"


@dataclass(frozen=True)
class Coupling:
    """Per source, the three same-day correlations in `observation.NOISE_COUPLING` order
    (`values`; `POOLED`: over every source), the mornings each came from (`pairs`: the
    source's own, or the pooled count where the pooled value was used), whether it is the
    source's own (`own`) and the shrinkage λ that made it valid; and the source of each athlete
    it was estimated on (`athletes`)."""

    values: dict[str, tuple[float, float, float]]
    pairs: dict[str, tuple[int, int, int]]
    own: dict[str, tuple[bool, bool, bool]]
    shrinkage: dict[str, float]
    athletes: dict[str, str]

    def to_dict(self) -> dict:
        names = [name for _, _, name in NOISE_COUPLING]
        return {source: {"correlation": dict(zip(names, self.values[source])),
                         "mornings": dict(zip(names, self.pairs[source])),
                         "own": dict(zip(names, self.own[source])),
                         "shrinkage": self.shrinkage[source]}
                for source in self.values}


def one_step_errors(model, rows: pd.DataFrame) -> np.ndarray | None:
    """(T, 3) one-step standardised errors of one fitted athlete's mornings (NaN where not
    measured or before `WARM_START_DAYS`), or None for an athlete not in the model."""
    athlete = str(rows["user_id"].iloc[0])
    draws = model.athletes_.get(athlete)
    if draws is None:
        return None
    series = series_from_frame(rows)
    n_days = len(series.load)
    if n_days <= WARM_START_DAYS:
        return None
    n_draws = len(draws["mu_hrv"])
    keep = np.unique(np.linspace(0, n_draws - 1, min(n_draws, MAX_DRAWS)).astype(int))
    p = {k: np.asarray(v)[keep] for k, v in draws.items()}
    origins = np.arange(WARM_START_DAYS, n_days)
    mean, sd = mixture_moments(forecast_gaussians(p, series, origins, 1,
                                                  getattr(model, "drift_", None)))
    observed = observed_targets(series)
    z = np.full((n_days, len(TARGETS)), np.nan)
    for k, target in enumerate(TARGETS):
        z[origins, k] = (observed[target][origins] - mean[:, 0, k]) / sd[:, 0, k]
    return z


def shrink_to_valid(r: tuple[float, float, float]) -> tuple[tuple[float, float, float], float]:
    """(r12, r13, r23) shrunk toward 0 by the smallest λ (grid of 0.05) whose correlation
    matrix has every eigenvalue ≥ `MIN_EIGENVALUE`, and λ."""
    for lam in np.arange(0.0, 1.0001, 0.05):
        a, b, c = ((1.0 - lam) * v for v in r)
        matrix = np.array([[1.0, a, b], [a, 1.0, c], [b, c, 1.0]])
        if np.linalg.eigvalsh(matrix).min() >= MIN_EIGENVALUE:
            return (float(a), float(b), float(c)), float(round(lam, 2))
    return (0.0, 0.0, 0.0), 1.0


def estimate_coupling(model, frame: pd.DataFrame, say: Callable[[str], None] | None = None
                      ) -> Coupling:
    """The same-day correlations of the fitted athletes of `frame` (module docstring), per
    source of the model. Raises ValueError when no athlete of the model is in `frame`."""
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    sums: dict[str, np.ndarray] = {}  # source → (3 pairs, [Σ z_i z_j, Σ z_i², Σ z_j², n])
    athletes: dict[str, np.ndarray] = {}
    used: dict[str, str] = {}
    for athlete, rows in frame.groupby("user_id", sort=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = one_step_errors(model, rows)
        if z is None:
            continue
        source = str(rows["source"].dropna().iloc[-1]) if rows["source"].notna().any() else ""
        used[str(athlete)] = source
        s = sums.setdefault(source, np.zeros((len(NOISE_COUPLING), 4)))
        a = athletes.setdefault(source, np.zeros(len(NOISE_COUPLING)))
        for k, (ti, tj, _) in enumerate(NOISE_COUPLING):
            zi, zj = z[:, TARGETS.index(ti)], z[:, TARGETS.index(tj)]
            both = np.isfinite(zi) & np.isfinite(zj)
            if both.any():
                s[k] += [zi[both] @ zj[both], zi[both] @ zi[both], zj[both] @ zj[both],
                         both.sum()]
                a[k] += 1
    if not used:
        raise ValueError("no athlete of the model is in the data: nothing to estimate the "
                         "signals' coupling on")
    total = sum(sums.values())

    def corr(s: np.ndarray) -> float:
        return float(s[0] / np.sqrt(s[1] * s[2])) if s[3] > 0 and s[1] * s[2] > 0 else 0.0

    values, pairs, own, shrinkage = {}, {}, {}, {}
    for source in (*model.population_.sources, POOLED):
        s = sums.get(source, np.zeros_like(total))
        a = athletes.get(source, np.zeros(len(NOISE_COUPLING)))
        mine = [source != POOLED and s[k, 3] >= MIN_PAIRS and a[k] >= MIN_ATHLETES
                for k in range(len(NOISE_COUPLING))]
        raw = tuple(corr(s[k]) if mine[k] else corr(total[k]) for k in range(len(mine)))
        values[source], shrinkage[source] = shrink_to_valid(raw)
        pairs[source] = tuple(int(s[k, 3] if mine[k] else total[k, 3]) for k in range(len(mine)))
        own[source] = tuple(bool(m) for m in mine)
        if say:
            text = ", ".join(f"{name} {v:+.2f} ({n} mornings{'' if m else ', pooled'})"
                             for (_, _, name), v, n, m in zip(NOISE_COUPLING, values[source],
                                                              pairs[source], mine))
            say(f"coupling {source}: {text}"
                + (f"; shrunk by {shrinkage[source]:.2f}" if shrinkage[source] else ""))
    return Coupling(values, pairs, own, shrinkage, used)


def apply_coupling(model, coupling: Coupling) -> None:
    """Write the correlations into the model's draws, as `params.COUPLING_PARAMS`: the
    population's (draw, source) arrays, so that new and synthetic athletes get their source's,
    and every fitted athlete's draws (its source's; the pooled values for one the estimate did
    not see)."""
    population = model.population_
    for k, (_, _, name) in enumerate(NOISE_COUPLING):
        population.phi[name] = np.tile([coupling.values[s][k] for s in population.sources],
                                        (population.n_draws, 1)).astype(float)
    for athlete, draws in model.athletes_.items():
        values = coupling.values.get(coupling.athletes.get(athlete), coupling.values[POOLED])
        for k, (_, _, name) in enumerate(NOISE_COUPLING):
            draws[name] = np.full(len(draws["mu_hrv"]), values[k])
