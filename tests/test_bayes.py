"""The hierarchical Bayesian Banister model: its likelihood equals the numpy reference, its
parametrisation does not change the posterior, it recovers known parameters, and every fit
carries its diagnostics."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import arviz as az
import numpy as np
import pytest
from scipy import stats

from physiology_model.dynamics import banister, params
from physiology_model.dynamics.observation import TARGETS
from physiology_model.model import bayes

TINY = bayes.SimulationConfig(n_athletes=4, n_days=100)


@pytest.fixture(scope="module")
def tiny() -> tuple:
    return bayes.simulate_cohort(TINY, np.random.default_rng(20260101))


# ---------------------------------------------------------------------------------------------
# Pieces (fast)


def test_gather_observations_links_each_observation_to_the_previous_one(tiny):
    arrays, _ = tiny
    for target in TARGETS:
        obs = bayes.gather_observations(arrays, target)
        values = bayes.observed_values(arrays, target)
        assert len(obs.value) == np.isfinite(values).sum()
        athlete, day = np.divmod(obs.flat, arrays.n_days)
        assert np.array_equal(athlete, obs.athlete)
        assert np.array_equal(values[athlete, day], obs.value)
        first = obs.gap == 0
        assert first.sum() == arrays.n_athletes  # one first observation per athlete
        prev_day = day[obs.previous]
        assert np.array_equal(obs.gap[~first], (day - prev_day)[~first])
        assert (obs.gap[~first] >= 1).all() and (athlete[obs.previous] == athlete)[~first].all()
    # ~20 % of days missing, in runs: some gaps are longer than one day.
    obs = bayes.gather_observations(arrays, "hrv")
    assert 0.1 < 1 - len(obs.value) / arrays.valid.sum() < 0.3 and obs.gap.max() >= 3


def test_recovery_is_on_the_logit_scale_of_clipped_percent():
    from physiology_model.model.arrays import stack_series

    n = 4
    series = [{"user_id": "x", "source": "s", "dates": np.datetime64("2024-01-01")
               + np.arange(n).astype("timedelta64[D]"), "load": np.ones(n),
               "load_known": np.ones(n, bool), "hi_load": np.zeros(n),
               "hi_load_known": np.ones(n, bool), "hrv": np.full(n, 4.0),
               "rhr": np.full(n, 50.0), "recovery": np.array([0.0, 50.0, 100.0, np.nan])}]
    values = bayes.observed_values(stack_series(series), "recovery")
    lo, hi = params.RECOVERY_CLIP_PCT
    assert values[0, 0] == pytest.approx(np.log(lo / (100 - lo)))
    assert values[0, 1] == pytest.approx(0.0)
    assert values[0, 2] == pytest.approx(np.log(hi / (100 - hi)))
    assert np.isnan(values[0, 3])


def test_prior_config_overrides_and_round_trips():
    priors = bayes.PriorConfig().override("tau_fat_days", loc_sd=0.2)
    assert priors.params["tau_fat_days"].loc_sd == 0.2
    assert bayes.PriorConfig().params["tau_fat_days"].loc_sd == params.ATHLETE_PARAMS[
        "tau_fat_days"].loc_sd
    assert bayes.PriorConfig.from_dict(json.loads(json.dumps(priors.to_dict()))) == priors
    with pytest.raises(KeyError):
        priors.override("tau_nonsense")
    with pytest.raises(ValueError):
        bayes.SamplerConfig(sampler="gibbs")


def test_level_and_gain_scales_have_a_rayleigh_prior(tiny):
    """`scale_prior="rayleigh"` multiplies the HalfNormal density of the between-athlete SD s
    of each level and each varying load gain by s (zero density at s = 0), and nothing else
    (the noise SDs' scales keep the HalfNormal); a saved config without the field is read as
    the HalfNormal of the models fitted before it."""
    arrays, _ = tiny
    rayleigh = bayes.build_model(arrays, bayes.PriorConfig())
    halfnormal = bayes.build_model(arrays, bayes.PriorConfig(scale_prior="halfnormal"))
    point = rayleigh.initial_point()
    rng = np.random.default_rng(3)
    point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in point.items()}
    varying = [n for n in params.PARAM_NAMES if not params.ATHLETE_PARAMS[n].pooled]
    log_scale = point[f"{bayes.VARYING_SCALE}_log__"]
    avoided = [varying.index(n) for n in ("mu_hrv", "mu_rhr", "mu_rec", "a_fit", "a_fat",
                                          "b_fit", "b_fat")]
    assert sorted(avoided) == sorted(varying.index(n) for n in varying
                                     if not n.startswith("sigma_"))
    difference = rayleigh.compile_logp()(point) - halfnormal.compile_logp()(point)
    assert difference == pytest.approx(log_scale[avoided].sum(), abs=1e-9)
    record = bayes.PriorConfig().to_dict()
    del record["scale_prior"]
    assert bayes.PriorConfig.from_dict(record).scale_prior == "halfnormal"
    with pytest.raises(ValueError):
        bayes.PriorConfig(scale_prior="uniform")


def test_model_structure(tiny):
    arrays, _ = tiny
    model = bayes.build_model(arrays, bayes.PriorConfig(slow_noise=True))
    assert list(model.coords["athlete"]) == list(arrays.user_ids)
    assert list(model.coords["param"]) == list(params.PARAM_NAMES)
    assert len(model.coords["day"]) == arrays.n_days
    for name in params.PARAM_NAMES:
        assert model.named_vars_to_dims[name] == ("athlete",)
    free = {v.name for v in model.free_RVs}
    assert free == {"loc_shared", "loc_by_source", "scale_varying", "athlete_raw",
                    *params.AR_PARAMS, *params.SLOW_SHARE_PARAMS,
                    *(f"log_tau_slow_{t}" for t in ("hrv", "rhr", "rec"))}
    for name in params.PHI_SLOW_PARAMS:  # τ_s ≥ tau_slow_min_days: φ_s above the fast range
        assert model.named_vars[name] in model.deterministics
    varying = [n for n in params.PARAM_NAMES if not params.ATHLETE_PARAMS[n].pooled]
    assert list(model.coords["param_varying"]) == varying
    assert {v.name for v in model.potentials} >= {f"{t}_obs" for t in TARGETS}
    for target in TARGETS:
        assert model.named_vars_to_dims[f"{bayes.LOGLIK_PREFIX}{target}"] == ("athlete",)
    one_ar1 = bayes.build_model(arrays, bayes.PriorConfig(slow_noise=False))
    assert {v.name for v in one_ar1.free_RVs} == {"loc_shared", "loc_by_source",
                                                  "scale_varying", "athlete_raw",
                                                  *params.AR_PARAMS}
    logp = model.compile_logp()(model.initial_point())
    assert np.isfinite(logp)


def _noncentred_point(model, arrays, theta: dict, loc: np.ndarray, scale: np.ndarray) -> dict:
    """The value variables of the all-non-centred model that put the athletes at `theta`
    (a pooled parameter must equal its `loc` for every athlete)."""
    point = model.initial_point()
    specs = params.ATHLETE_PARAMS
    names = list(params.PARAM_NAMES)
    shared = [n for n in names if not specs[n].by_source]
    by_source = [n for n in names if specs[n].by_source]
    vary = [names.index(n) for n in names if not specs[n].pooled]
    point["loc_shared"] = np.array([loc[names.index(n)] for n in shared])
    point["loc_by_source"] = np.tile([loc[names.index(n)] for n in by_source],
                                     (len(arrays.sources), 1))
    point["scale_varying_log__"] = np.log(scale[vary])
    raw = np.stack([params.to_unconstrained(n, theta[n]) for n in names], axis=1)
    point["athlete_raw"] = ((raw - loc) / np.where(scale > 0, scale, 1.0))[:, vary]
    for k, name in enumerate(params.AR_PARAMS):
        phi = np.asarray(theta["phi"])[..., k]  # (3,) one for all, or (sources, 3)
        # one φ per source (PriorConfig.noise_by_source)
        point[f"{name}_logodds__"] = np.broadcast_to(
            np.log(phi / (1 - phi)), np.shape(point[f"{name}_logodds__"])).copy()
    priors = bayes.PriorConfig()
    for k, (share_name, slow_name) in enumerate(zip(params.SLOW_SHARE_PARAMS,
                                                    params.PHI_SLOW_PARAMS)):
        if f"{share_name}_logodds__" not in point:
            continue
        share, phi_slow = theta["slow_share"][k], theta["phi_slow"][k]
        point[f"{share_name}_logodds__"] = np.log(share / (1 - share))
        point[f"log_tau_slow_{slow_name[9:]}"] = np.log(-1.0 / np.log(phi_slow)
                                                       - priors.tau_slow_min_days)
    return point


def _numpy_loglik(arrays, theta: dict) -> float:
    """The AR(1) gap likelihood of the module docstring, computed with numpy and scipy from
    `banister.morning_states` (the reference the pytensor graph must equal)."""
    tau_fat = theta["tau_fat_days"]
    tau_fit = params.tau_fit_days(tau_fat, theta["tau_gap_days"])
    decays = banister.decay_factors(tau_fit, tau_fat, params.TAU_FAST_DAYS)
    initial = banister.steady_morning_state(arrays.mean_load, arrays.mean_hi_load, decays)
    states = banister.morning_states(arrays.load, arrays.hi_load, decays, initial)
    g, h, f = (params.state_normaliser(decays[:, None, c]) * states[..., c]
               for c in (banister.FITNESS, banister.FATIGUE, banister.FAST_FATIGUE))

    def col(name):
        return theta[name][:, None]

    hrv_load = col("a_fit") * g - col("a_fat") * h - col("a_fast") * f
    rhr_load = -col("b_fit") * g + col("b_fat") * h + col("b_fast") * f
    means = {"hrv": col("mu_hrv") + hrv_load, "rhr": col("mu_rhr") + rhr_load,
             "recovery": col("mu_rec") + col("g_hrv") * hrv_load - col("g_rhr") * rhr_load}
    sigmas = {"hrv": "sigma_hrv", "rhr": "sigma_rhr", "recovery": "sigma_rec"}
    total = 0.0
    for k, target in enumerate(TARGETS):
        y = bayes.observed_values(arrays, target)
        share, phi_slow = theta["slow_share"][k], theta["phi_slow"][k]
        for a in range(arrays.n_athletes):
            phi = np.asarray(theta["phi"])[..., k]
            phi = phi[arrays.source_index[a]] if phi.ndim else phi
            days = np.flatnonzero(np.isfinite(y[a]))
            r = y[a, days] - means[target][a, days]
            sigma = theta[sigmas[target]][a]
            # The whole series at once: the covariance of a sum of two stationary AR(1)s.
            lag = np.abs(days[:, None] - days[None, :])
            cov = sigma ** 2 * (share * phi_slow ** lag + (1 - share) * phi ** lag)
            total += stats.multivariate_normal.logpdf(r, np.zeros(len(r)), cov)
    return float(total)


@pytest.mark.parametrize("slow", [False, True], ids=["one_ar1", "slow_and_fast"])
def test_likelihood_equals_the_numpy_reference(tiny, slow):
    """The Kalman filter's likelihood equals the multivariate normal of every athlete's whole
    observed series (fails if a gap, the slow component or the stationary start is wrong)."""
    arrays, truth = tiny
    truth = dict(truth)
    if slow:
        truth["slow_share"], truth["phi_slow"] = np.array([0.3, 0.6, 0.2]), np.array(
            [0.97, 0.95, 0.99])
    else:
        truth["slow_share"], truth["phi_slow"] = np.zeros(3), np.zeros(3)
    model = bayes.build_model(arrays, bayes.PriorConfig(slow_noise=slow), centre_min_obs=None)
    point = _noncentred_point(model, arrays, truth, truth["loc"], truth["scale"])
    likelihood = [v for v in model.potentials if v.name.endswith("_obs")]
    loglik = model.compile_fn(model.logp(vars=likelihood), inputs=model.value_vars,
                              on_unused_input="ignore")(point)
    assert float(loglik) == pytest.approx(_numpy_loglik(arrays, truth), rel=1e-8)


def test_each_source_has_its_own_noise_coefficient(tiny):
    """With `noise_by_source` (the default) φ is one per source and each athlete's residuals
    follow its source's: the likelihood equals the reference with per-athlete φ, and differs
    from the one-φ model's at the same point."""
    arrays, truth = tiny
    two = replace(arrays, sources=("fitbit", "whoop"),
                  source_index=np.arange(arrays.n_athletes) % 2)
    truth = {**truth, "slow_share": np.zeros(3), "phi_slow": np.zeros(3),
             "phi": np.array([[0.3, 0.85, 0.2], [0.5, 0.25, 0.4]])}
    model = bayes.build_model(two, bayes.PriorConfig(), centre_min_obs=None)
    assert model.initial_point()["phi_rhr_logodds__"].shape == (2,)
    point = _noncentred_point(model, two, truth, truth["loc"], truth["scale"])
    likelihood = [v for v in model.potentials if v.name.endswith("_obs")]
    loglik = float(model.compile_fn(model.logp(vars=likelihood), inputs=model.value_vars,
                                    on_unused_input="ignore")(point))
    assert loglik == pytest.approx(_numpy_loglik(two, truth), rel=1e-8)
    one_phi = {**truth, "phi": truth["phi"][0]}
    assert abs(loglik - _numpy_loglik(two, one_phi)) > 1.0
    shared = bayes.build_model(two, bayes.PriorConfig(noise_by_source=False), centre_min_obs=None)
    assert shared.initial_point()["phi_rhr_logodds__"].shape == ()


def test_centring_leaves_the_posterior_unchanged(tiny):
    """The centred and non-centred models give the same posterior: at the same athlete
    parameters their log densities differ only by the log-Jacobians of the reparametrisation."""
    arrays, truth = tiny
    truth = {**truth, "slow_share": np.array([0.3, 0.5, 0.2]),
             "phi_slow": np.array([0.97, 0.98, 0.95])}  # a point inside the slow priors
    names = list(params.PARAM_NAMES)
    slow = bayes.PriorConfig(slow_noise=True)
    plain = bayes.build_model(arrays, slow, centre_min_obs=None)
    centred = bayes.build_model(arrays, slow, centre_min_obs=10, centre_min_athletes=1)
    plain_logp, centred_logp = plain.compile_logp(), centred.compile_logp()
    mu_of = centred.compile_fn(
        centred.replace_rvs_by_values([centred[n] for n in names]),
        inputs=centred.value_vars, on_unused_input="ignore")
    observations = {t: bayes.gather_observations(arrays, t) for t in TARGETS}
    centred_mask, _, _ = bayes._centring_plan(arrays, names, observations, 10,
                                              params.ATHLETE_PARAMS)
    pooled = np.array([params.ATHLETE_PARAMS[n].pooled for n in names])
    centred_mask[:, pooled] = False
    level_and_sd = [names.index(n) for n in (*bayes.LEVEL_TARGETS, *bayes.SIGMA_TARGETS)]
    assert centred_mask[:, level_and_sd].all()  # 100 days each: every level and SD is centred
    vary = [p for p in range(len(names)) if not pooled[p]]
    rng = np.random.default_rng(5)
    differences = []
    for _ in range(3):
        theta = {n: v * np.exp(0.05 * rng.standard_normal(v.shape))
                 if n in params.ATHLETE_PARAMS and not params.ATHLETE_PARAMS[n].pooled else v
                 for n, v in truth.items()}
        scale = truth["scale"] * np.exp(0.2 * rng.standard_normal(truth["scale"].shape))
        point = _noncentred_point(plain, arrays, theta, truth["loc"], scale)
        # In the centred model the centred entries are not deviates: solve for them (each
        # parameter is affine in its own raw entry, with the other entries held; levels depend
        # on the gains, hence two passes).
        cpoint = dict(point)
        raw = point["athlete_raw"].copy()
        for _ in range(2):
            for j, p in enumerate(vary):
                name = names[p]
                if not centred_mask[:, p].any():
                    continue
                cpoint["athlete_raw"] = raw
                current = params.to_unconstrained(name, dict(zip(names, mu_of(cpoint)))[name])
                wanted = params.to_unconstrained(name, theta[name])
                shifted = raw.copy()
                shifted[:, j] += 1.0
                cpoint["athlete_raw"] = shifted
                slope = params.to_unconstrained(
                    name, dict(zip(names, mu_of(cpoint)))[name]) - current
                raw[:, j] += np.where(centred_mask[:, p], (wanted - current) / slope, 0.0)
                cpoint["athlete_raw"] = raw
        at = dict(zip(names, mu_of(cpoint)))
        for name in names:
            assert np.allclose(at[name], theta[name], rtol=1e-9, atol=1e-12), name
        # Densities over different variables: they differ by the log-Jacobians, log(scale) of
        # each non-centred deviate and log(step) (a constant) of each centred entry.
        log_scale = np.log(np.where(pooled, 1.0, scale))
        differences.append(centred_logp(cpoint) - plain_logp(point)
                           + (centred_mask * log_scale).sum())
    assert np.ptp(differences) < 1e-6, differences


# ---------------------------------------------------------------------------------------------
# Diagnostics (fast, on hand-made draws)


def _fake_idata(chains: np.ndarray, divergent: int = 0, sampler: str = "nutpie"):
    diverging = np.zeros(chains.shape[:2], dtype=bool)
    diverging.flat[:divergent] = True
    idata = az.from_dict(posterior={"x": chains}, sample_stats={"diverging": diverging})
    idata.attrs["sampler"] = sampler
    return idata


def test_diagnostics_pass_and_fail():
    rng = np.random.default_rng(0)
    good = bayes.diagnose(_fake_idata(rng.standard_normal((4, 1000))))
    assert good.ok and good.max_r_hat < 1.01 and good.min_ess_bulk > 400
    assert "passed" in good.describe()
    shifted = rng.standard_normal((4, 1000)) + np.array([0, 0, 0, 1.0])[:, None]
    bad = bayes.diagnose(_fake_idata(shifted, divergent=3))
    assert not bad.ok and bad.divergences == 3
    assert "FAILED" in bad.describe() and "R-hat" in bad.describe()
    assert "3 divergent" in bad.describe()
    preview = bayes.diagnose(_fake_idata(rng.standard_normal((1, 500)), sampler="advi"))
    assert not preview.ok and "PREVIEW" in preview.describe()


def test_failed_diagnostics_warn_loudly(capsys):
    bad = bayes.diagnose(_fake_idata(np.random.default_rng(1).standard_normal((2, 50))))
    with pytest.warns(UserWarning, match="FAILED"):
        bayes.report_diagnostics(bad)
    assert "FAILED" in capsys.readouterr().out


def test_nutpie_failure_falls_back_to_pymc(monkeypatch):
    import pymc as pm

    def broken(*args, **kwargs):
        raise RuntimeError("simulated nutpie failure")

    monkeypatch.setattr(bayes, "_sample_nutpie", broken)
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
    with pytest.warns(UserWarning, match="falling back to PyMC NUTS"):
        idata = bayes.sample(model, bayes.SamplerConfig(draws=200, tune=200, chains=2))
    assert idata.attrs["sampler"] == "pymc"
    assert "simulated nutpie failure" in idata.attrs["sampler_fallback_reason"]
    stored = json.loads(idata.attrs["diagnostics"])
    assert stored["sampler"] == "pymc" and "max_r_hat" in stored
    assert json.loads(idata.attrs["sampler_config"])["draws"] == 200
    assert "pymc" in json.loads(idata.attrs["versions"])


# ---------------------------------------------------------------------------------------------
# Parameter recovery


def _coverage(idata, truth: dict, hdi_prob: float = 0.94) -> tuple[float, np.ndarray]:
    """Share of (athlete, parameter) truths inside the posterior HDI, and the per-parameter
    absolute errors of the posterior medians (P, A)."""
    draws = bayes.posterior_athlete_params(idata)
    inside, errors = [], []
    for name in params.PARAM_NAMES:
        hdi = az.hdi(draws[name][None], hdi_prob=hdi_prob)  # (A, 2)
        inside.append((hdi[:, 0] <= truth[name]) & (truth[name] <= hdi[:, 1]))
        errors.append(np.abs(np.median(draws[name], axis=0) - truth[name]))
    return float(np.mean(inside)), np.array(errors)


@pytest.fixture(scope="module")
def prior_fit(tiny):
    """Draws from the model's prior, stored as a posterior (seconds, no sampler): exercises the
    readers the WorldModel uses and the model's deterministic relations."""
    import pymc as pm

    arrays, _ = tiny
    with bayes.build_model(arrays):
        prior = pm.sample_prior_predictive(
            draws=40, random_seed=11,
            var_names=["loc", "scale", "z", *params.AR_PARAMS, *params.PARAM_NAMES])
    return az.InferenceData(posterior=prior.prior)


@pytest.mark.slow
def test_preview_is_labelled_and_never_passes(tiny):
    arrays, _ = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayes.sample(bayes.build_model(arrays), bayes.SamplerConfig(
            sampler="advi", draws=200, advi_iterations=3000, seed=3))
    assert fit.attrs["sampler"] == "advi" and fit.attrs["preview"] == 1
    diagnostics = bayes.fit_diagnostics(fit)
    assert not diagnostics.ok and "PREVIEW" in diagnostics.describe()
    assert json.loads(fit.attrs["sampler_config"])["sampler"] == "advi"
    assert bayes.posterior_athlete_params(fit)["mu_hrv"].shape == (200, arrays.n_athletes)


def test_fit_outputs_for_the_world_model(tiny, prior_fit):
    arrays, _ = tiny
    fit = prior_fit
    n_draws = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    athletes = bayes.posterior_athlete_params(fit)
    assert tuple(athletes) == params.PARAM_NAMES
    for name, values in athletes.items():
        assert values.shape == (n_draws, arrays.n_athletes), name
    assert (athletes["tau_fat_days"] > 0).all() and (athletes["sigma_hrv"] > 0).all()
    population = bayes.population_draws(fit)
    assert population["loc"].shape == (n_draws, len(arrays.sources), len(params.PARAM_NAMES))
    assert population["scale"].shape == (n_draws, len(params.PARAM_NAMES))
    assert population["phi"].shape == (n_draws, len(arrays.sources), 3)
    assert (population["phi"] < 1).all()
    assert population["sources"] == arrays.sources
    assert population["param_names"] == params.PARAM_NAMES
    # The athlete parameters are the population draws' transform (non-centred identity).
    z = fit.posterior["z"].values.reshape(n_draws, arrays.n_athletes, -1)
    loc = population["loc"][:, arrays.source_index]
    raw = loc + population["scale"][:, None, :] * z
    for p, name in enumerate(params.PARAM_NAMES):
        assert np.allclose(params.to_constrained(name, raw[..., p]), athletes[name])


@pytest.mark.slow
def test_parameter_recovery_tiny(tiny):
    """4 simulated athletes × 100 days, PyMC NUTS: the truth lies inside the 94 % HDI for at
    least 80 % of the 64 athlete parameters (measured: 98 %, 2 chains × 250 draws)."""
    arrays, truth = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayes.sample(bayes.build_model(arrays), bayes.SamplerConfig(
            sampler="pymc", draws=250, tune=300, chains=2, seed=3))
    rate, _ = _coverage(fit, truth)
    print(f"94% HDI coverage of athlete parameters: {rate:.0%}")
    assert rate >= 0.8
    # The levels are identified by the data: the posterior median is close.
    draws = bayes.posterior_athlete_params(fit)
    assert np.allclose(np.median(draws["mu_hrv"], 0), truth["mu_hrv"], atol=0.1)
    assert np.allclose(np.median(draws["mu_rhr"], 0), truth["mu_rhr"], atol=3.0)
    assert bayes.fit_diagnostics(fit).divergences == 0


@pytest.mark.slow
def test_posterior_error_shrinks_with_more_days():
    """The same 6 athletes observed 60 vs 240 days: the posterior median error of the load
    parameters (τ, gains) shrinks, and coverage stays ≥ 80 %."""
    long, truth = bayes.simulate_cohort(bayes.SimulationConfig(n_athletes=6, n_days=240),
                                        np.random.default_rng(7))
    short = long.head(60)
    errors = {}
    for label, arrays in (("short", short), ("long", long)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = bayes.sample(bayes.build_model(arrays), bayes.SamplerConfig(
                draws=400, tune=400, chains=2, seed=1))
        rate, err = _coverage(idata, truth)
        assert rate >= 0.8, (label, rate)
        errors[label] = err
    # Errors in units of each parameter's prior between-athlete spread (for a log-normal one,
    # scale_sd times its prior median), so that bpm-sized parameters do not outweigh the rest.
    # Measured (seed 7): 0.22 on 60 days, 0.12 on 240; mu_rhr alone does not shrink (0.14 →
    # 0.35 bpm, 0.04 of its spread): with a periodised load its level trades off against b_fit
    # times the ~5-day fitness state.
    names = list(params.PARAM_NAMES)
    checked = ("a_fat", "b_fat", "mu_hrv", "mu_rhr", "sigma_hrv")
    rows = [names.index(n) for n in checked]
    specs = [params.ATHLETE_PARAMS[n] for n in checked]
    unit = np.array([s.scale_sd * (np.exp(s.loc_mean) if s.transform == "exp" else 1.0)
                     for s in specs])[:, None]
    assert (errors["long"][rows] / unit).mean() < (errors["short"][rows] / unit).mean()


def test_per_athlete_log_likelihood_moves_to_its_group_for_leave_athletes_out_loo(tiny):
    """The fit's per-athlete log-likelihoods leave the posterior (and its diagnostics) for the
    `log_likelihood` group, sum over targets per athlete, and feed az.loo one athlete at a
    time; the slow noise's population draws reach `population_draws`."""
    import pymc as pm

    arrays, _ = tiny
    names = [f"{bayes.LOGLIK_PREFIX}{t}" for t in TARGETS]
    # the noise parameters the fit samples (the signals' coupling is estimated after it)
    fitted_noise = [n for group in params.NOISE_POPULATION_KEYS.values() for n in group]
    with bayes.build_model(arrays, bayes.PriorConfig(slow_noise=True)):
        prior = pm.sample_prior_predictive(
            draws=30, random_seed=4,
            var_names=["loc", "scale", *fitted_noise, *params.PARAM_NAMES, *names])
    idata = az.InferenceData(posterior=prior.prior)
    bayes._move_log_likelihood(idata)
    assert not any(n in idata.posterior for n in names)
    assert set(idata.log_likelihood.data_vars) == set(TARGETS)
    grouped = bayes.athlete_log_likelihood(idata)
    total = sum(idata.log_likelihood[t] for t in TARGETS)
    np.testing.assert_allclose(grouped.log_likelihood["athletes"], total)
    assert grouped.log_likelihood["athletes"].sizes["athlete"] == arrays.n_athletes
    assert np.isfinite(total.values).all()
    pop = bayes.population_draws(idata)
    assert pop["slow_share"].shape == pop["phi_slow"].shape == (30, len(arrays.sources), 3)
    assert (pop["phi_slow"] > np.exp(-1.0 / bayes.PriorConfig().tau_slow_min_days)).all()


def test_the_kalman_op_gradient_matches_finite_differences():
    """The JAX filter's gradient (what NUTS follows) against central differences, for every
    input; fails if the Op's vector-Jacobian product is wired to the wrong inputs. A layout
    with an observation after padding is refused (the filter relies on the order)."""
    import pytensor
    import pytensor.tensor as pt

    from physiology_model.model.kalman_op import KalmanLogLik

    rng = np.random.default_rng(3)
    # `bayes.padded_layout`'s: each series' observations first (here 12, 9 and 5), k days
    # apart (missing days in between), then padding
    present = np.arange(12)[:, None] < np.array([12, 9, 5])[None, :]
    gap = np.where(present, rng.choice([1.0, 1.0, 2.0, 4.0], size=(12, 3)), 0.0)
    gap[0] = 0.0
    op = KalmanLogLik(present, gap)
    values = [rng.normal(0, 0.3, (12, 3)) * present, np.array([0.3, 0.2, 0.4]),
              np.full(3, 0.35), np.full(3, 0.4), np.full(3, 0.95), np.zeros(3)]
    inputs = [pt.dmatrix(), pt.dvector(), pt.dvector(), pt.dvector(), pt.dvector(), pt.dvector()]
    total = pt.sum(op(*inputs))
    f = pytensor.function(inputs, [total, *pt.grad(total, inputs[:5])])
    out = f(*values)
    for k in range(5):
        flat = values[k].ravel()
        for j in range(min(flat.size, 4)):
            step = 1e-6
            up = [v.copy() for v in values]
            down = [v.copy() for v in values]
            up[k].ravel()[j] += step
            down[k].ravel()[j] -= step
            numeric = (f(*up)[0] - f(*down)[0]) / (2 * step)
            assert out[1 + k].ravel()[j] == pytest.approx(numeric, rel=1e-4, abs=1e-6)
    holed = present.copy()
    holed[3, 0] = False
    with pytest.raises(ValueError, match="must come first"):
        KalmanLogLik(holed, gap)
