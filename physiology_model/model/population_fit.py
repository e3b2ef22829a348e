"""Large cohorts: the population by NUTS on K athletes, every other athlete personalised.

NUTS on the whole hierarchical model costs time roughly in proportion to athletes × days
(docs/world_model.md, "Speed"), so a cohort of a thousand athletes cannot be fitted that way on a
small machine. `fit_population` (what `periodize model fit --population-athletes K` runs) splits
the fit in two:

1. the population posterior (per-source locations, between-athlete scales, the noise's AR(1)
   coefficients) by NUTS on K of the fit's athletes, chosen reproducibly from the seed and
   stratified by source (`choose_population_athletes`: every source keeps at least one athlete,
   so every source keeps its own location, and the K are shared out in proportion to the
   sources' sizes);
2. every other athlete personalised against that population, held fixed, by the importance
   sampling of `WorldModel.personalize` (`personalize.personalize_series`) on the same days the
   NUTS fit would have used (`prepare_arrays` with the fit's `max_days`), in independent tasks
   that a runner (`analysis.parallel.run_tasks`: this process, local workers or Ray) executes.
   Each athlete's random stream is keyed by (seed, athlete), so the draws do not depend on the
   runner, the number of workers or how the athletes are sharded.

The personalised athletes are athletes of the model like the NUTS ones (`WorldModel.athletes_`,
saved in `posterior.nc` with as many draws as the population keeps), so every command that
reads a model directory reads this one. What they do not contribute: the population itself
(their data never enter its posterior: that is the approximation), and their noise AR(1)
coefficients, which in a saved model are the population's for every athlete (`posterior.nc`
keeps one set per draw), so a personalised athlete's coefficients lose their weighting by its
own likelihood on saving and loading.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.dynamics.observation import recovery_to_logit
from physiology_model.model.arrays import AthleteArrays, prepare_arrays
from physiology_model.model.forecast import AthleteSeries
from physiology_model.model.personalize import Population, personalize_series

TaskRunner = Callable[..., list]
"""`run(fn, tasks, weights=..., desc=...)` → `[fn(t) for t in tasks]` in task order, e.g.
`functools.partial(analysis.parallel.run_tasks, workers=4)`."""

ATHLETES_PER_TASK = 20
"""Athletes personalised by one task: large enough that a worker's start-up is amortised, small
enough that the tasks spread over the workers and the progress bar moves."""


def serial_runner(fn: Callable, tasks: Sequence, **_: Any) -> list:
    """The runner without workers: each task in turn in this process."""
    return [fn(task) for task in tasks]


def check_population_athletes(k: Any, n_athletes: int | None = None, n_sources: int = 1
                              ) -> int:
    """K as a whole number between the number of sources and the number of athletes (None: not
    known yet, K ≥ 1 only), or one `ValueError` saying what is allowed."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"--population-athletes must be a whole number, got {k!r}")  # noqa: TRY004 (the CLI prints a ValueError as one line)
    k = int(k)
    if k < 1:
        raise ValueError(f"--population-athletes must be at least 1 (athletes fitted by NUTS), "
                         f"got {k}")
    low = max(1, n_sources)
    if n_athletes is not None and not low <= k <= n_athletes:
        why = (f" (at least one per data source: {n_sources} sources)" if n_sources > 1
               else "")
        raise ValueError(f"--population-athletes must be between {low}{why} and {n_athletes} "
                         f"(the fit's training athletes), got {k}")
    return k


def choose_population_athletes(user_ids: Sequence[str], sources: Sequence[str], k: int,
                               seed: int) -> tuple[str, ...]:
    """K athletes for the population's NUTS fit, stratified by source, reproducibly.

    Each source gets one athlete, and the remaining K − S are shared out in proportion to the
    sources' athlete counts (largest remainders, ties to the larger then the alphabetically
    first source). Within a source, athletes are taken in the order of a permutation drawn from
    (seed, source), applied to the sorted ids, so the choice depends on the seed and the set of
    athletes only, not on their order. Returns the chosen ids, sorted."""
    ids = [str(u) for u in user_ids]
    by_source: dict[str, list[str]] = {}
    for uid, source in zip(ids, sources):
        by_source.setdefault(str(source), []).append(uid)
    names = sorted(by_source)
    k = check_population_athletes(k, len(ids), len(names))
    counts = np.array([len(by_source[s]) for s in names])
    share = np.ones(len(names), dtype=int)
    extra = k - len(names)
    if extra:
        room = counts - 1
        ideal = extra * room / room.sum()
        share += np.floor(ideal).astype(int)
        left = extra - int(np.floor(ideal).sum())
        order = sorted(range(len(names)), key=lambda i: (-(ideal[i] - np.floor(ideal[i])),
                                                         -counts[i], names[i]))
        for i in order:
            if left == 0:
                break
            if share[i] < counts[i]:
                share[i] += 1
                left -= 1
    chosen: list[str] = []
    for i, source in enumerate(names):
        members = sorted(by_source[source])
        rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
        chosen.extend(members[j] for j in rng.permutation(len(members))[:share[i]])
    return tuple(sorted(chosen))


def athlete_series(arrays: AthleteArrays, a: int) -> AthleteSeries:
    """Athlete `a` of the fit's arrays as the `AthleteSeries` that `personalize_series` takes:
    the same days, filled loads and observations the NUTS fit would have used."""
    n = int(arrays.n_valid[a])
    return AthleteSeries(
        dates=arrays.dates[a, :n].astype("datetime64[D]"), load=arrays.load[a, :n].copy(),
        hi_load=arrays.hi_load[a, :n].copy(), hrv=arrays.hrv[a, :n].copy(),
        rhr=arrays.rhr[a, :n].copy(), recovery_logit=recovery_to_logit(arrays.recovery[a, :n]),
        source=arrays.sources[int(arrays.source_index[a])])


def personalize_task(task: dict[str, Any]) -> list[tuple[str, dict[str, np.ndarray], float]]:
    """One task of `fit_population`: personalise each (athlete id, series) of `task["series"]`
    against `task["population"]`; (id, draws, ESS) per athlete. Top-level and fed plain data
    (arrays), as `analysis.parallel` requires."""
    population: Population = task["population"]
    out = []
    for uid, series in task["series"]:
        rng = np.random.default_rng([task["seed"], zlib.crc32(uid.encode())])
        result = personalize_series(population, series, rng, n_proposals=task["n_proposals"],
                                    n_draws=task["n_draws"])
        out.append((uid, {name: np.asarray(v, dtype=float) for name, v in result.params.items()},
                    float(result.ess)))
    return out


def fit_population(model, frame: pd.DataFrame, k: int, *, seed: int = 0,
                   run: TaskRunner = serial_runner, say: Callable[[str], None] = print):
    """Fit `model` (an unfitted `WorldModel` with its config, sampler and priors) as the module
    docstring says: NUTS on K athletes of `frame` (the fit's rows), the rest personalised
    through `run`. Returns the model, fitted, with `fit_info_["population_fit"]` recording the
    K athletes, the personalised ones' effective sample sizes and the timings."""
    from physiology_model.model import bayes

    arrays = prepare_arrays(frame, max_days=model.config.max_days,
                            min_hrv_days=model.config.min_hrv_days)
    chosen = choose_population_athletes(arrays.user_ids, arrays.athlete_sources, k, seed)
    picked = set(chosen)
    nuts_index = [a for a, u in enumerate(arrays.user_ids) if u in picked]
    rest_index = [a for a, u in enumerate(arrays.user_ids) if u not in picked]
    say(f"population: NUTS on {len(chosen)} of {arrays.n_athletes} athletes (stratified by "
        f"source, seed {seed}); {len(rest_index)} personalised against it")
    sub = arrays.subset(np.array(nuts_index))
    priors = model.priors or bayes.PriorConfig()
    idata = bayes.sample(bayes.build_model(sub, priors), model.sampler or bayes.SamplerConfig())
    model._set_from_idata(idata, sub)
    timings = model.fit_info_.setdefault("timings", {})
    say(f"population posterior: compile {timings.get('compile_s', 0.0):.0f} s, sampling "
        f"{timings.get('sample_s', 0.0):.0f} s")

    started = time.perf_counter()
    population = model.population_
    n_draws = population.n_draws
    shards = [rest_index[i:i + ATHLETES_PER_TASK]
              for i in range(0, len(rest_index), ATHLETES_PER_TASK)]
    tasks = [{"population": population, "seed": seed, "n_draws": n_draws,
              "n_proposals": model.config.personalize_proposals,
              "series": [(arrays.user_ids[a], athlete_series(arrays, a)) for a in shard]}
             for shard in shards]
    results = run(personalize_task, tasks, weights=[len(s) for s in shards],
                  desc="personalise") if tasks else []
    ess = {}
    for uid, draws, athlete_ess in (item for result in results for item in result):
        model.athletes_[uid] = draws
        ess[uid] = athlete_ess
    model.athletes_ = dict(sorted(model.athletes_.items()))
    personalise_s = time.perf_counter() - started
    timings["personalise_s"] = personalise_s
    values = np.array(list(ess.values())) if ess else np.zeros(0)
    model.fit_info_["n_athletes"] = arrays.n_athletes
    model.fit_info_["population_fit"] = {
        "population_athletes": len(chosen), "nuts_athletes": list(chosen),
        "personalised_athletes": len(ess), "seed": seed, "draws_per_athlete": n_draws,
        "n_proposals": model.config.personalize_proposals,
        "ess": ({"min": float(values.min()), "median": float(np.median(values)),
                 "below_50": int(np.sum(values < 50))} if values.size else {}),
        "personalise_s": personalise_s}
    if values.size:
        say(f"personalised {len(ess)} athletes in {personalise_s:.0f} s (importance-sampling "
            f"ESS median {np.median(values):.0f}, min {values.min():.1f} of "
            f"{model.config.personalize_proposals} proposals)")
    return model


def arrays_frame(arrays: AthleteArrays) -> pd.DataFrame:
    """The canonical daily rows of `arrays` (e.g. a `bayes.simulate_cohort` cohort): what a
    canonical CSV or parquet export of those athletes holds, so that a synthetic cohort whose
    truth is known can go through `periodize model fit` (loads back in `params.py` units:
    load_trimp = w · `LOAD_SCALE_TRIMP`, z4_min = u · `HI_LOAD_SCALE_MIN`)."""
    from physiology_model.dynamics.params import HI_LOAD_SCALE_MIN, LOAD_SCALE_TRIMP

    parts = []
    for a, uid in enumerate(arrays.user_ids):
        n = int(arrays.n_valid[a])
        parts.append(pd.DataFrame({
            "user_id": uid, "date": pd.to_datetime(arrays.dates[a, :n]),
            "source": arrays.sources[int(arrays.source_index[a])],
            "hrv_rmssd_ms": np.exp(arrays.hrv[a, :n]), "rhr_bpm": arrays.rhr[a, :n],
            "recovery_pct": arrays.recovery[a, :n],
            "load_trimp": np.where(arrays.load_known[a, :n],
                                   arrays.load[a, :n] * LOAD_SCALE_TRIMP, np.nan),
            "z4_min": np.where(arrays.hi_load_known[a, :n],
                               arrays.hi_load[a, :n] * HI_LOAD_SCALE_MIN, np.nan)}))
    return pd.concat(parts, ignore_index=True)
