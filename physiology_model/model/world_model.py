"""The `WorldModel` (DESIGN §5): predict, personalise, sample athletes, save and load.

It holds posterior draws of every fitted athlete's parameters (`params.ATHLETE_PARAMS`) and of
the population (location per source, between-athlete scale, AR(1) coefficients), and computes
everything else with numpy from `banister.py` and the observation equations in `params.py`.

- `predict(history, planned_loads)`: predictive samples and quantiles of next-morning ln HRV,
  RHR and recovery (and the latent fitness/fatigue) for each planned day, with the noise
  filtered through the observed residuals (`drift.py`: each target's slow and fast noise
  components, from the posterior or chosen after it by `fit_drift`).
- `personalize(history)`: a posterior for an athlete the fit never saw, from as little as 7
  days, by Rao-Blackwellised importance sampling: population draws of the nonlinear parameters
  (time constants, noise SDs, AR coefficients) and the recovery link's gains are weighted by
  their marginal likelihood, and the parameters that enter linearly (baselines and loadings)
  are drawn from their exact joint Gaussian posterior given each draw (given the gains, the
  three targets are one linear-Gaussian model after prewhitening, so the HRV and RHR
  loadings' uncertainty reaches the recovery baseline: `personalize.RECOVERY_GAINS`).
  A long history pins the noise SDs down far more tightly than the population spreads them,
  so plain population proposals leave a handful of useful weights (an ESS of 1-6 of 2,000 on
  a year of WHOOP data). The proposals are therefore adapted over a few rounds (population
  Monte Carlo, Cappé et al. 2004, J Comput Graph Stat 13:907): each round draws the
  population draw from the last round's weights and the free nonlinear parameters from a
  Gaussian fitted to them, both mixed with the population itself (10 %, so no region the
  population allows is left out), and weighs by prior × likelihood / proposal; the round with
  the largest ESS gives the draws. An unknown device adapts its mixture over sources too.
- `sample_athletes(n, rng)`: parameter sets of new synthetic athletes from the population.
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from physiology_model.data.table import atomic_write
from physiology_model.dynamics.observation import (
    LATENTS,
    NOISE_PHI,
    NOISE_PHI_SLOW,
    NOISE_SIGMA,
    NOISE_SLOW_SHARE,
    TARGETS,
    WARM_START_DAYS,
    latent_states,
    logit_to_recovery,
    observation_means,
)
from physiology_model.dynamics.params import (  # noqa: F401 - ATHLETE_PARAMS and the load scales
    AR_PARAMS,  # are re-exported: the simulator reads them next to the equations below
    ATHLETE_PARAMS,
    HI_LOAD_SCALE_MIN,
    LOAD_SCALE_TRIMP,
    NOISE_PARAMS,
    NOISE_POPULATION_KEYS,
    PARAM_NAMES,
    RECOVERY_CLIP_PCT,
    SLOW_SHARE_PARAMS,
    TAU_FAST_DAYS,
    state_normaliser,
    to_constrained,
)
from physiology_model.errors import DataError
from physiology_model.jsonio import jsonable, package_versions
from physiology_model.model.arrays import prepare_arrays
from physiology_model.model.calibration import FILE_NAME as CALIBRATION_FILE
from physiology_model.model.calibration import load_calibration, measured_days
from physiology_model.model.drift import (
    DRIFT_GRID,
    NO_DRIFT,
    DriftCase,
    SlowDrift,
    select_drift,
)
from physiology_model.features.batch import weekdays
from physiology_model.model.forecast import (
    AthleteSeries,
    forecast_gaussians,
    forecast_samples,
    observed_targets,
    plan_frame,
    sample_gaussians,
    series_from_frame,
    stack_athletes,
)
from physiology_model.model.model_files import check_model_meta, config_field_names, read_posterior
from physiology_model.model.personalize import (
    PERSONALIZE_ROUNDS,
    Personalization,
    Population,
    constrained,
    personalize_series,
)

if TYPE_CHECKING:  # torch is imported only where a residual is used
    from physiology_model.model.calibration import IntervalCalibration
    from physiology_model.model.residual import TrainedResidual

_VERSIONED = ("adaptive-periodization", "numpy", "pymc", "arviz", "torch")

SHIPPED = "shipped"
"""The name that stands for the shipped model wherever a model directory is asked for."""


def shipped_model_dir() -> Path:
    """The directory of the world model fitted on the shipped data (`models/shipped`): in a
    source checkout the repository's own folder, in an installed package the copy `pip install`
    puts under `<prefix>/share/adaptive-periodization/models/shipped` (pyproject's data-files)."""
    import sys

    for candidate in (Path(__file__).resolve().parents[2] / "models" / SHIPPED,
                      Path(sys.prefix) / "share" / "adaptive-periodization" / "models" / SHIPPED):
        if (candidate / "model.json").is_file():
            return candidate
    raise DataError("models/shipped", "the shipped world model is missing from this "
                    "installation (reinstall the package, or pass --model DIR)")


def resolve_model_dir(directory: str | Path) -> Path:
    """`directory`, or the shipped model's directory for the name `shipped`."""
    return shipped_model_dir() if str(directory) == SHIPPED else Path(directory)


PERSONALIZE_BYTES_PER_PROPOSAL_DAY = 200
"""Memory `personalize` takes per proposal and day of history (its latent states and design
matrices are proposals × days arrays): 173 bytes measured for 500 and for 2,000 proposals on an
11,435-day history (3.8 GB at 2,000), rounded up. A plan from a long export takes this on top of
the model's fixed ~1.1 GB (docs/untrusted_input.md)."""


def check_personalize_memory(n_proposals: int, days: int) -> None:
    """Refuse (one `DataError`) a history too long to personalise in the memory left, rather
    than be killed halfway."""
    from physiology_model.data.loaders._io import amount, available_memory_bytes

    need = n_proposals * days * PERSONALIZE_BYTES_PER_PROPOSAL_DAY
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError("(history)", f"{days:,} days of history: fitting the world model to "
                                     f"this athlete needs about {amount(need)} of memory and "
                                     f"{amount(available)} is left; plan from a shorter export "
                                     f"(its last few years) or free memory")


ROUGH_ESS = 20
"""A personalisation whose importance weights have a smaller effective sample size warns that
its posterior is rough (`RoughPosteriorWarning`)."""


class RoughPosteriorWarning(UserWarning):
    """A personalisation's posterior rests on few of the population's draws (ESS under
    `ROUGH_ESS`). Batch callers catch it and say so once per athlete in their own output
    (`periodize plan` / `recommend` notes) instead of letting it reach stderr per athlete."""


FORMAT = "adaptive-periodization.WorldModel"
FORMAT_VERSION = 3
"""2: states normalised by `params.state_normaliser` ((1 − e)/e; version 1 used 1 − e, so its
gains mean something else) and pooled parameters (scale 0). 3: the noise parameters per source
(`<name>_loc`, (draw, source)) and per athlete (`<name>`, (draw, athlete)), as the other
athlete parameters are (`bayes.PriorConfig.noise_by_source`)."""


@dataclass(frozen=True)
class WorldModelConfig:
    """Settings of the world model (the sampler's own settings live in `bayes.SamplerConfig`)."""

    max_days: int | None = 365
    """Fit on at most this many most recent days per athlete (bounds fit time)."""
    min_hrv_days: int = 28
    """Athletes with fewer HRV days are not used in the fit."""
    keep_draws: int = 200
    """Posterior draws kept in the saved model (thinned evenly)."""
    personalize_proposals: int = 2000
    """Population draws weighed by `personalize`."""
    personalize_draws: int = 400
    """Posterior draws returned by `personalize`."""


@dataclass
class Prediction:
    """Predictive samples of one athlete for `horizon` planned days.

    `samples[target]` (n_samples, horizon): the morning after each planned day (hrv in ln ms,
    rhr in bpm, recovery in %); `latents[name]` (n_samples, horizon): normalised states on
    those mornings; `dates`: the planned days.
    """

    dates: np.ndarray
    samples: dict[str, np.ndarray]
    latents: dict[str, np.ndarray] = field(default_factory=dict)

    def quantiles(self, qs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
        """One row per (day, variable); HRV also in ms (`hrv_ms`)."""
        rows = []
        variables = dict(self.samples)
        variables["hrv_ms"] = np.exp(self.samples["hrv"])
        variables.update(self.latents)
        for name, s in variables.items():
            q = np.quantile(s, qs, axis=0)
            for j, day in enumerate(self.dates):
                rows.append({"date": pd.Timestamp(day), "variable": name,
                             **{f"q{round(100 * x):02d}": float(q[i, j])
                                for i, x in enumerate(qs)}})
        return pd.DataFrame(rows)


class WorldModel:
    """The learned probabilistic world model of athletes' physiology (DESIGN §5).

    In the scikit-learn manner: `__init__` stores settings only; `fit` sets the fitted
    attributes (ending in `_`) and returns self; using it before `fit` or `load` raises.
    """

    def __init__(self, config: WorldModelConfig = WorldModelConfig(), sampler=None, priors=None):
        self.config = config
        self.sampler = sampler
        self.priors = priors

    # -- fitted state ------------------------------------------------------------------------
    population_: Population
    athletes_: dict[str, dict[str, np.ndarray]]
    """user_id → {parameter: (draws,)} from the NUTS posterior."""
    diagnostics_: dict
    split_: dict
    """How the fit was held out from the evaluation (seed, test users), when known."""
    fit_info_: dict
    """How the posterior was sampled: sampler, nutpie backend, sampler config, timings (s)."""
    idata_: object
    drift_: dict[str, SlowDrift]
    """Only for a model whose likelihood had one AR(1): per target, the slow noise component
    chosen after its fit (`drift.SlowDrift`, set by `fit_drift`, saved in model.json), which
    `_drift_as_slow_noise` makes the slow component of the draws."""
    residual_: TrainedResidual | None
    """The neural residual (`residual.TrainedResidual`, trained by `hybrid.fit_residual`) or
    None; `WorldModelForecaster` applies it to the targets its gate enabled."""

    calibration_: IntervalCalibration | None
    """The recalibration of a personalised athlete's predictive intervals
    (`calibration.py`, learned by `calibration.fit_calibration`) or None."""

    def interval_calibration(self, history: pd.DataFrame) -> tuple | None:
        """(calibration, measured days) for an athlete `athlete_params` personalises on
        `history`; None for an athlete in the fit or a model without a calibration."""
        table = getattr(self, "calibration_", None)
        uid = str(history["user_id"].iloc[0]) if len(history) else ""
        if table is None or uid in getattr(self, "athletes_", {}):
            return None
        return table, measured_days(history)

    def _check_fitted(self) -> None:
        if not hasattr(self, "population_"):
            raise RuntimeError("WorldModel is not fitted: call fit() or WorldModel.load() first")

    def fit(self, frame: pd.DataFrame) -> WorldModel:
        """Fit the hierarchical model to a canonical daily frame (all athletes' rows)."""
        from physiology_model.model import bayes

        arrays = prepare_arrays(frame, max_days=self.config.max_days,
                                min_hrv_days=self.config.min_hrv_days)
        model = bayes.build_model(arrays, self.priors or bayes.PriorConfig())
        idata = bayes.sample(model, self.sampler or bayes.SamplerConfig())
        self._set_from_idata(idata, arrays)
        return self

    def _set_from_idata(self, idata, arrays) -> None:
        """Keep `config.keep_draws` of the fitted posterior of the athletes of `arrays` (the
        `AthleteArrays` the posterior was sampled on)."""
        from physiology_model.model import bayes
        diag = bayes.diagnose(idata)
        self.diagnostics_ = diag.to_dict()
        self.fit_info_ = {
            "sampler": str(idata.attrs.get("sampler", "")),
            "nutpie_backend": str(idata.attrs.get("nutpie_backend", "")),
            "sampler_config": json.loads(idata.attrs.get("sampler_config", "{}")),
            "timings": json.loads(idata.attrs.get("timings", "{}")),
            "n_athletes": arrays.n_athletes,
        }
        athlete = bayes.posterior_athlete_params(idata)  # name → (draws, athletes)
        pop = bayes.population_draws(idata)
        n = pop["scale"].shape[0]
        keep = np.unique(np.linspace(0, n - 1, min(n, self.config.keep_draws)).astype(int))
        index = {name: i for i, name in enumerate(pop["param_names"])}
        # the noise's population parameters per source (draws, sources): (fast) AR(1)
        # coefficients, and the slow component's share and coefficient where the posterior has
        # them; each athlete gets its source's
        phi = {name: np.asarray(pop[key][keep][:, :, i], dtype=float)
               for key, names in NOISE_POPULATION_KEYS.items() if key in pop
               for i, name in enumerate(names)}
        self.athletes_ = {}
        for a, uid in enumerate(arrays.user_ids):
            draws = {name: np.asarray(athlete[name][keep, a], dtype=float) for name in PARAM_NAMES}
            source = int(arrays.source_index[a])
            draws.update({name: values[:, source].copy() for name, values in phi.items()})
            self.athletes_[str(uid)] = draws
        self.population_ = Population(
            sources=tuple(pop["sources"]),
            loc={name: np.asarray(pop["loc"][keep, :, index[name]], dtype=float)
                 for name in PARAM_NAMES},
            scale={name: np.asarray(pop["scale"][keep, index[name]], dtype=float)
                   for name in PARAM_NAMES},
            phi=phi)
        self.idata_ = idata
        self.drift_ = {}  # chosen for, and a residual trained on, another posterior no longer fit
        self.residual_ = None
        self.calibration_ = None

    # -- API ---------------------------------------------------------------------------------
    def athlete_params(self, history: pd.DataFrame, rng: np.random.Generator
                       ) -> dict[str, np.ndarray]:
        """Posterior draws for the athlete of `history`: the fitted posterior for an athlete in
        the fit, otherwise `personalize(history)`."""
        self._check_fitted()
        uid = str(history["user_id"].iloc[0]) if len(history) else ""
        if uid in self.athletes_:
            return self.athletes_[uid]
        return self.personalize(history, rng).params

    def personalize(self, history: pd.DataFrame | AthleteSeries,
                    rng: np.random.Generator | None = None, *,
                    n_proposals: int | None = None, n_draws: int | None = None,
                    rounds: int = PERSONALIZE_ROUNDS) -> Personalization:
        """Posterior of a new athlete from ≥ 7 days of its rows (HRV or RHR observed), with
        `n_proposals` proposals per round and `n_draws` kept draws (default: the config's) in
        up to `rounds` adaptive rounds (`personalize_series`). `history` is the athlete's
        daily-table rows, or its `AthleteSeries` when the caller already has the arrays (the
        planners, every morning: building a frame costs more than the update itself)."""
        self._check_fitted()
        series = history if isinstance(history, AthleteSeries) else series_from_frame(history)
        n_obs = int(np.sum(~np.isnan(series.hrv) | ~np.isnan(series.rhr)))
        if n_obs < 7:
            raise DataError("(history)", f"personalisation needs at least 7 days with HRV or "
                                         f"RHR, got {n_obs}")
        n_proposals = n_proposals or self.config.personalize_proposals
        check_personalize_memory(n_proposals, len(series.hrv))
        result = personalize_series(self.population_, series, rng or np.random.default_rng(0),
                                    n_proposals,
                                    n_draws or self.config.personalize_draws, rounds)
        if result.ess < ROUGH_ESS:
            warnings.warn(f"personalisation weights are degenerate (ESS {result.ess:.1f} of "
                          f"{result.n_proposals}); the posterior is rough",
                          RoughPosteriorWarning, stacklevel=2)
        return result

    def fit_drift(self, frame: pd.DataFrame, *, condition_days: int = 14, seed: int = 0,
                  max_draws: int = 100, grid: dict = DRIFT_GRID) -> dict[str, dict]:
        """Choose each target's slow noise drift (`drift.select_drift`) on the athletes of
        `frame` (the fit's rows: the training athletes only). Each athlete is personalised on
        its first `condition_days` calendar days, as an athlete the fit never saw would be, and
        the next-day forecasts of its later days are scored (at most `max_draws` of its
        posterior draws, for speed). An athlete with too few days to personalise on is
        skipped. Sets `drift_` and returns, per target, the setting with its CRPS, the single
        AR(1)'s CRPS and the athletes used.
        """
        self._check_fitted()
        if condition_days < WARM_START_DAYS:
            raise ValueError(f"condition_days must be ≥ {WARM_START_DAYS}, got {condition_days}")
        cases: dict[str, list[DriftCase]] = {target: [] for target in TARGETS}
        for user, rows in frame.groupby(frame["user_id"].astype(str), sort=True):
            start = rows["date"].min()
            head = rows[rows["date"] < start + pd.Timedelta(days=condition_days)]
            rng = np.random.default_rng([seed, zlib.crc32(user.encode())])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # rough weights are part of the setting
                    params = self.personalize(head, rng).params
            except DataError:
                continue
            keep = rng.choice(len(params["mu_hrv"]), size=min(max_draws, len(params["mu_hrv"])),
                              replace=False)
            params = {name: values[keep] for name, values in params.items()}
            series = series_from_frame(rows)
            means = observation_means(params, latent_states(params, series.load,
                                                            series.hi_load),
                                      weekdays(series.dates))
            for target, y in observed_targets(series).items():
                cases[target].append(DriftCase(y[None, :] - means[target],
                                               params[NOISE_SIGMA[target]], params[NOISE_PHI[target]],
                                               condition_days))
        if not cases[TARGETS[0]]:
            raise ValueError(f"no athlete has enough days to choose the noise drift on "
                             f"(personalisation needs 7 in the first {condition_days})")
        summary, drift = {}, {}
        for target, target_cases in cases.items():
            best, scores = select_drift(target_cases, grid)
            drift[target] = best
            summary[target] = {"setting": best.to_dict(), **scores,
                               "athletes": len(target_cases)}
        self.drift_ = drift
        return summary

    def sample_athletes(self, n: int, rng: np.random.Generator, source: str | None = None
                        ) -> dict[str, np.ndarray]:
        """Parameters of n new synthetic athletes drawn from the population posterior, with
        the noise's population parameters (`params.NOISE_PARAMS`; the slow ones at
        `NOISE_DEFAULTS` for a posterior without them)."""
        self._check_fitted()
        raw, _, _ = self.population_.draw_unconstrained(n, rng, source)
        return constrained(raw)

    def predict(self, history: pd.DataFrame, planned_loads: pd.DataFrame,
                n_samples: int = 500, rng: np.random.Generator | None = None,
                use_residual: bool = True, params: dict[str, np.ndarray] | None = None
                ) -> Prediction:
        """Predict the mornings after each planned day.

        `history`: one athlete's canonical rows up to today (today's row may carry this
        morning's physiology and no load yet); `planned_loads`: one row per planned day starting
        today, with `load_trimp` and optionally `z4_min`, `z5_min`, `strength_min` (missing =
        0). Returns the predictive samples for the morning after each planned day. When the
        model carries a neural residual whose gate is on for a target (and `use_residual`), that
        target's forecast is the hybrid one (`hybrid.forecast_with_residual`), as in
        `periodize model evaluate`; the other targets are the Banister forecast, bit for bit.
        `params`: the athlete's posterior draws when the caller already has them
        (`athlete_params(history, rng)`, e.g. once for a plan rolled forward day by day);
        None draws them here. `predict_batch` with a batch of one.
        """
        (out,) = self.predict_batch([history], [planned_loads], n_samples,
                                    [rng or np.random.default_rng(0)], use_residual, [params])
        return out

    def predict_batch(self, histories: Sequence[pd.DataFrame],
                      planned_loads: Sequence[pd.DataFrame], n_samples: int = 500,
                      rngs: Sequence[np.random.Generator] | None = None,
                      use_residual: bool = True,
                      params: Sequence[dict[str, np.ndarray] | None] | None = None
                      ) -> list[Prediction]:
        """`predict` for several athletes, each from its own stream `rngs[i]` and draws
        `params[i]`: each athlete's prediction is the one `predict` gives it alone, bit for bit.
        The Banister forecasts of athletes with the same calendar length, origin and horizon
        run as one, their draws stacked (`forecast.forecast_gaussians` on per-draw series)."""
        self._check_fitted()
        n = len(histories)
        rngs = list(rngs) if rngs is not None else [np.random.default_rng(0) for _ in range(n)]
        given = list(params) if params is not None else [None] * n
        draws, frames, starts, series = [], [], [], []
        for history, plan, rng, p in zip(histories, planned_loads, rngs, given):
            if "load_trimp" not in plan.columns or plan["load_trimp"].isna().any():
                raise ValueError("planned_loads needs a load_trimp for every planned day")
            draws.append(self.athlete_params(history, rng) if p is None else p)
            frame, start = plan_frame(history, plan)
            frames.append(frame)
            starts.append(start)
            series.append(series_from_frame(frame))
        horizons = [len(plan) for plan in planned_loads]
        residual = getattr(self, "residual_", None) if use_residual else None
        samples: list[Any] = [None] * n
        if residual is not None and any(residual.enabled.values()):
            from physiology_model.model.hybrid import forecast_with_residual

            for i in range(n):
                samples[i] = forecast_with_residual(draws[i], residual, frames[i],
                                                    np.array([starts[i] + 1]), horizons[i],
                                                    n_samples, rngs[i], self.drift_)
        else:
            groups: dict[tuple[int, int, int], list[int]] = {}
            for i in range(n):
                key = (len(series[i].load), starts[i], horizons[i])
                groups.setdefault(key, []).append(i)
            for (_, start, horizon), members in groups.items():
                p, stacked, bounds = stack_athletes([draws[i] for i in members],
                                                  [series[i] for i in members])
                gaussians = forecast_gaussians(p, stacked, np.array([start + 1]), horizon,
                                               self.drift_)
                for i, (lo, hi) in zip(members, bounds):
                    out = sample_gaussians({t: (m[:, lo:hi], sd[:, lo:hi])
                                            for t, (m, sd) in gaussians.items()},
                                           n_samples, rngs[i])
                    out["recovery"] = logit_to_recovery(out["recovery"])
                    samples[i] = out
        predictions = []
        for i in range(n):
            calibration = self.interval_calibration(histories[i])
            if calibration is not None:
                samples[i] = calibration[0].apply(samples[i], calibration[1])
            full, start, horizon = series[i], starts[i], horizons[i]
            lat = latent_states(draws[i], full.load, full.hi_load)
            draw = rngs[i].integers(0, lat.shape[0], size=n_samples)
            days = start + 1 + np.arange(horizon)
            latents = {name: lat[draw][:, days, k] for k, name in enumerate(LATENTS)}
            predictions.append(Prediction(dates=full.dates[start:start + horizon],
                                          samples={k: v[0] for k, v in samples[i].items()},
                                          latents=latents))
        return predictions

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the model to a directory: `posterior.nc` (InferenceData of the kept draws),
        `model.json` (config, sources, diagnostics, library versions) and, when the model has a
        neural residual, `residual/` (`TrainedResidual.save`)."""
        import arviz as az
        import xarray as xr

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        users = sorted(self.athletes_)
        draws = self.population_.n_draws
        data = {}

        def per_athlete(name: str) -> tuple:
            return (("draw", "athlete"), np.stack([self.athletes_[u][name] for u in users], axis=1)
                    if users else np.zeros((draws, 0)))

        for name in PARAM_NAMES:
            data[name] = per_athlete(name)
            data[f"{name}_loc"] = (("draw", "source"), self.population_.loc[name])
            data[f"{name}_scale"] = (("draw",), self.population_.scale[name])
        for name in NOISE_PARAMS:
            if name in self.population_.phi:
                data[name] = per_athlete(name)
                data[f"{name}_loc"] = (("draw", "source"), self.population_.phi[name])
        posterior = xr.Dataset(data, coords={"draw": np.arange(draws), "athlete": users,
                                             "source": list(self.population_.sources)})
        idata = az.InferenceData(posterior=posterior.expand_dims(chain=[0]))

        atomic_write(directory / "posterior.nc", lambda tmp: idata.to_netcdf(tmp))
        residual = getattr(self, "residual_", None)
        if residual is not None:
            residual.save(directory / "residual")
        calibration = getattr(self, "calibration_", None)
        if calibration is not None:
            calibration.save(directory)
        else:  # a calibration left by an earlier model in this directory is not this one's
            (directory / CALIBRATION_FILE).unlink(missing_ok=True)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "config": vars(self.config), "sources": list(self.population_.sources),
                "athletes": users, "diagnostics": jsonable(self.diagnostics_),
                "split": jsonable(getattr(self, "split_", {})),
                "fit": jsonable(getattr(self, "fit_info_", {})),
                "residual": "residual" if residual is not None else None,
                "drift": {t: d.to_dict() for t, d in getattr(self, "drift_", {}).items()},
                "versions": package_versions(_VERSIONED)}
        atomic_write(directory / "model.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))

    @classmethod
    def load(cls, directory: str | Path) -> WorldModel:
        """Load a model written by `save`; a model of another format version fails clearly, and
        a damaged or tampered file is one `DataError` naming the file and the field
        (`physiology_model.model.model_files`)."""
        directory = Path(directory)
        meta_path = directory / "model.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(directory, "not a saved world model (no model.json)") from None
        except json.JSONDecodeError as exc:
            raise DataError(meta_path, f"not valid JSON ({exc.msg})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(meta_path, f"unreadable ({exc})") from None
        if not isinstance(meta, dict):
            raise DataError(meta_path, f"expected a JSON object, found {type(meta).__name__}")
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise DataError(meta_path, f"saved as {meta.get('format')} version "
                                       f"{meta.get('format_version')}; this code reads {FORMAT} "
                                       f"version {FORMAT_VERSION}: refit with `periodize model fit`")

        check_model_meta(meta, meta_path, config_field_names(WorldModelConfig))
        post = read_posterior(directory / "posterior.nc", meta["sources"])
        model = cls(WorldModelConfig(**meta["config"]))
        users = post["athletes"]
        model.athletes_ = {u: {name: values[:, i].copy() for name, values in post["values"].items()}
                           for i, u in enumerate(users)}
        model.population_ = Population(sources=tuple(meta["sources"]), loc=post["loc"],
                                       scale=post["scale"], phi=post["phi"])
        model.diagnostics_ = meta.get("diagnostics", {})
        model.split_ = meta.get("split", {})
        model.fit_info_ = meta.get("fit", {})
        try:
            model.drift_ = {str(t): SlowDrift.from_dict(d)
                            for t, d in (meta.get("drift") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(meta_path, f"field 'drift': unreadable drift settings ({exc})"
                            ) from None
        model._drift_as_slow_noise()
        model.calibration_ = load_calibration(directory)
        model.residual_ = None
        if meta.get("residual"):
            from physiology_model.model.residual import TrainedResidual

            model.residual_ = TrainedResidual.load(directory / "residual", device="cpu")
        return model


    def _drift_as_slow_noise(self) -> None:
        """A model whose likelihood had one AR(1) carries the slow noise component chosen after
        its fit (`drift_`) into its draws: each target's slow share and coefficient, and the
        fast coefficient that goes with them (`drift.SlowDrift.components`), in
        `population_.phi` and every athlete's draws. So the simulator's athletes, the planner's
        rollouts, the personalisation and the forecasts all get the same two-component noise.
        A posterior with its own slow component keeps it."""
        phi = self.population_.phi
        own = any(np.any(np.asarray(phi[n]) > 0) for n in SLOW_SHARE_PARAMS if n in phi)
        if own or not self.drift_:
            return
        for draws in (phi, *self.athletes_.values()):  # per (draw, source) and per draw
            for target in NOISE_PHI:  # a target without a setting gets w = 0
                setting = self.drift_.get(target, NO_DRIFT)
                components = setting.components(draws[NOISE_PHI[target]])
                draws[NOISE_PHI[target]] = components.phi_fast
                draws[NOISE_SLOW_SHARE[target]] = components.share
                draws[NOISE_PHI_SLOW[target]] = components.phi_slow


class WorldModelForecaster:
    """The `WorldModel` as a `forecast.Forecaster`, for the forecast evaluation protocol.

    `fit` fits the model unless it was given fitted (a model loaded from disk, fitted by
    `periodize model fit` on the protocol's training rows); `condition` returns the fitted
    posterior of an athlete in the fit, and personalises any other athlete on the rows given.
    With `use_residual` (default) the model's neural residual, if it has one, corrects the
    forecasts of the targets its gate enabled (`hybrid.forecast_with_residual`); `name` lets the
    base model alone be scored beside it (e.g. `use_residual=False, name="world_model_base"`).
    """

    name = "world_model"

    def __init__(self, model: WorldModel, seed: int = 0, use_residual: bool = True,
                 name: str = "world_model", use_calibration: bool = True):
        self.model = model
        self.seed = seed
        self.use_residual = use_residual
        self.name = name
        self.use_calibration = use_calibration

    def fit(self, train: pd.DataFrame) -> WorldModelForecaster:
        if not hasattr(self.model, "population_"):
            self.model.fit(train)
        return self

    def condition(self, athlete: pd.DataFrame) -> _ConditionedWorldModel:
        user = str(athlete["user_id"].iloc[0]).encode()
        rng = np.random.default_rng([self.seed, zlib.crc32(user)])
        residual = getattr(self.model, "residual_", None) if self.use_residual else None
        calibration = (self.model.interval_calibration(athlete) if self.use_calibration
                       else None)
        return _ConditionedWorldModel(self.model.athlete_params(athlete, rng), residual,
                                      getattr(self.model, "drift_", {}), calibration)


@dataclass(frozen=True)
class _ConditionedWorldModel:
    params: dict[str, np.ndarray]
    residual: TrainedResidual | None = None
    """A `residual.TrainedResidual` applied on top of the base forecast, or None."""
    drift: Mapping[str, SlowDrift] = field(default_factory=dict)
    calibration: tuple | None = None
    """(`calibration.IntervalCalibration`, measured days personalised on), or None."""

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int, n_samples: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.residual is None:
            samples = forecast_samples(self.params, series_from_frame(frame), origins, horizon,
                                       n_samples, rng, self.drift)
        else:
            from physiology_model.model.hybrid import forecast_with_residual

            samples = forecast_with_residual(self.params, self.residual, frame, origins,
                                             horizon, n_samples, rng, self.drift)
        if self.calibration is not None:
            table, n_days = self.calibration
            samples = table.apply(samples, n_days)
        return samples
