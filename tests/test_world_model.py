"""WorldModel numerics that need no MCMC: forecasting, personalisation, sampling, save/load.

The population here is a known one built in the test, so the truth is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from physiology_model.dynamics.observation import latent_states
from physiology_model.dynamics.params import (
    ATHLETE_PARAMS,
    NOISE_DEFAULTS,
    NOISE_PARAMS,
    PARAM_NAMES,
    PHI_SLOW_PARAMS,
    SLOW_SHARE_PARAMS,
)
from physiology_model.dynamics.step import simulate_observations
from physiology_model.errors import DataError
from physiology_model.model.drift import SlowDrift
from physiology_model.model.forecast import forecast_samples, series_from_frame
from physiology_model.model.personalize import Population, constrained, personalize_series
from physiology_model.model.world_model import FORMAT_VERSION, WorldModel, WorldModelConfig

SOURCES = ("whoop", "lifesnaps")


def _population(n_draws: int = 50, seed: int = 0) -> Population:
    rng = np.random.default_rng(seed)
    loc, scale = {}, {}
    for name, spec in ATHLETE_PARAMS.items():
        base = spec.loc_mean + 0.02 * rng.standard_normal(n_draws)
        loc[name] = np.stack([base, base + (0.1 if spec.by_source else 0.0)], axis=1)
        scale[name] = np.full(n_draws, spec.scale_sd * 0.7)
    phi = {"phi_hrv": np.full((n_draws, 2), 0.4), "phi_rhr": np.full((n_draws, 2), 0.5),
           "phi_rec": np.full((n_draws, 2), 0.3)}
    return Population(SOURCES, loc, scale, phi)


def _athlete_frame(p: dict[str, np.ndarray], n_days: int, seed: int, user: str = "u1",
                   missing: float = 0.15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    week = np.array([0.0, 1.5, 0.8, 2.2, 0.0, 1.2, 3.0])
    load = np.tile(week, n_days // 7 + 1)[:n_days] * rng.uniform(0.7, 1.3, n_days)
    hi = (load > 2.0) * 0.5
    obs = simulate_observations(p, load, hi, rng)
    frame = pd.DataFrame({
        "user_id": user, "date": pd.date_range("2024-01-01", periods=n_days),
        "hrv_rmssd_ms": np.exp(obs["hrv"][0]), "rhr_bpm": obs["rhr"][0],
        "recovery_pct": obs["recovery"][0], "load_trimp": load * 100.0,
        "z4_min": hi * 60.0, "z5_min": 0.0, "strength_min": 0.0, "source": "whoop"})
    drop = rng.random(n_days) < missing
    frame.loc[drop, ["hrv_rmssd_ms", "rhr_bpm", "recovery_pct"]] = np.nan
    return frame


def _truth(seed: int = 1) -> dict[str, np.ndarray]:
    raw, _, _ = _population().draw_unconstrained(1, np.random.default_rng(seed), "whoop")
    return constrained(raw)


def _model(pop: Population, athletes: dict | None = None) -> WorldModel:
    model = WorldModel(WorldModelConfig(personalize_proposals=3000, personalize_draws=400))
    model.population_ = pop
    model.athletes_ = athletes or {}
    model.drift_ = {}
    model.diagnostics_ = {"ok": True}
    return model


def test_sampled_athletes_have_tau_fit_above_tau_fat_and_finite_values():
    params = _model(_population()).sample_athletes(500, np.random.default_rng(0), "whoop")
    assert set(params) == set(PARAM_NAMES) | set(NOISE_PARAMS)
    assert all(np.all(np.isfinite(v)) and v.shape == (500,) for v in params.values())
    assert np.all(params["tau_gap_days"] > 0) and np.all(params["sigma_hrv"] > 0)


def test_forecast_uses_no_observation_at_or_after_the_origin():
    p = _truth()
    frame = _athlete_frame(p, 60, seed=2)
    series = series_from_frame(frame)
    origins = np.array([20, 30])
    a = forecast_samples(p, series, origins, 7, 50, np.random.default_rng(3))
    changed = frame.copy()
    changed.loc[30:, ["hrv_rmssd_ms", "rhr_bpm", "recovery_pct"]] *= 1.5
    changed.loc[36:, "load_trimp"] = 900.0  # loads on/after d0+h-1 = 36 for the later origin
    b = forecast_samples(p, series_from_frame(changed), origins, 7, 50, np.random.default_rng(3))
    for target in a:
        assert a[target].shape == (2, 50, 7)
        np.testing.assert_array_equal(a[target], b[target])


def test_forecast_conditions_on_the_last_residual():
    p = {k: v.copy() for k, v in _truth().items()}
    p["phi_hrv"][:] = 0.9
    frame = _athlete_frame(p, 40, seed=4, missing=0.0)
    high, low = frame.copy(), frame.copy()
    high.loc[29, "hrv_rmssd_ms"] *= 2.0
    low.loc[29, "hrv_rmssd_ms"] /= 2.0
    rng = np.random.default_rng(0)
    up = forecast_samples(p, series_from_frame(high), np.array([30]), 3, 400, rng)["hrv"]
    down = forecast_samples(p, series_from_frame(low), np.array([30]), 3, 400, rng)["hrv"]
    gap = np.median(up[0], axis=0) - np.median(down[0], axis=0)
    assert np.all(gap > 0) and gap[0] > gap[2]  # the memory fades with the horizon


def test_personalize_recovers_the_athlete_and_sharpens_with_days():
    """Checked: what a stationary weekly load pattern identifies (the HRV level, the next-day
    fatigue gains, the noise SDs); the levels of RHR and recovery trade off against the
    fitness gains there (fitness is nearly constant), so they are not checked one by one."""
    truth = _truth(seed=5)
    model = _model(_population())
    widths, covered = [], 0
    checked = ("mu_hrv", "a_fat", "b_fat", "sigma_hrv", "sigma_rhr")
    for n_days in (14, 120):
        frame = _athlete_frame(truth, n_days, seed=6)
        post = model.personalize(frame, np.random.default_rng(7))
        assert post.ess > 20
        assert set(post.params) == set(PARAM_NAMES) | set(NOISE_PARAMS)
        widths.append([np.subtract(*np.quantile(post.params[n], [0.97, 0.03])) for n in checked])
        if n_days == 120:
            for n in checked:
                lo, hi = np.quantile(post.params[n], [0.03, 0.97])
                covered += lo <= truth[n][0] <= hi
    assert covered >= 4
    assert np.all(np.array(widths[1]) < np.array(widths[0]))


def test_adapted_proposals_keep_a_long_history_posterior_from_collapsing():
    """A year of data pins the noise SDs far inside the population's spread: population
    proposals leave few useful weights, the adapted rounds many more, around the truth."""
    truth = _truth(seed=5)
    model = _model(_population())
    series = series_from_frame(_athlete_frame(truth, 365, seed=6))
    plain = personalize_series(model.population_, series, np.random.default_rng(1), 2000, 400,
                               rounds=1)
    adapted = personalize_series(model.population_, series, np.random.default_rng(1), 2000,
                                 400, rounds=3)
    assert plain.ess < 20 and adapted.ess > 5 * plain.ess
    for name in ("sigma_hrv", "sigma_rhr"):
        lo, hi = np.quantile(adapted.params[name], [0.03, 0.97])
        assert lo <= truth[name][0] <= hi
    with pytest.raises(ValueError, match="rounds"):
        personalize_series(model.population_, series, np.random.default_rng(1), rounds=0)


def test_personalize_needs_seven_days():
    frame = _athlete_frame(_truth(), 6, seed=8, missing=0.0)
    with pytest.raises(DataError, match="at least 7 days"):
        _model(_population()).personalize(frame)


def test_predict_more_load_means_lower_hrv_tomorrow_and_ordered_quantiles():
    truth = _truth(seed=9)
    truth["a_fat"][:] = 0.15
    history = _athlete_frame(truth, 60, seed=10)
    model = _model(_population(), {"u1": {k: np.repeat(v, 200) for k, v in truth.items()}})
    easy = pd.DataFrame({"load_trimp": [0.0] * 3})
    hard = pd.DataFrame({"load_trimp": [400.0] * 3, "z4_min": [40.0] * 3})
    p_easy = model.predict(history, easy, 2000, np.random.default_rng(0))
    p_hard = model.predict(history, hard, 2000, np.random.default_rng(0))
    assert p_hard.samples["hrv"].shape == (2000, 3)
    assert np.median(p_hard.samples["hrv"][:, 0]) < np.median(p_easy.samples["hrv"][:, 0])
    assert np.median(p_hard.latents["fatigue"][:, 0]) > np.median(p_easy.latents["fatigue"][:, 0])
    q = p_hard.quantiles()
    assert (q["q05"] <= q["q50"]).all() and (q["q50"] <= q["q95"]).all()
    assert set(q["variable"]) >= {"hrv", "hrv_ms", "rhr", "recovery", "fitness", "fatigue"}
    assert q.loc[q["variable"] == "recovery", ["q05", "q95"]].stack().between(0, 100).all()


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    truth = _truth(seed=11)
    history = _athlete_frame(truth, 40, seed=12)
    model = _model(_population(n_draws=20),
                   {"u1": {k: np.repeat(v, 20) for k, v in truth.items()}})
    plan = pd.DataFrame({"load_trimp": [100.0, 0.0, 250.0]})
    no_drift = model.predict(history, plan, 300, np.random.default_rng(1))
    model.drift_ = {"hrv": SlowDrift(0.4, 0.98, 0.2), "rhr": SlowDrift(0.3, 0.95, None)}
    model.save(tmp_path / "m")
    back = WorldModel.load(tmp_path / "m")
    assert back.drift_ == model.drift_
    # loading makes a one-AR(1) model's drift the slow component of its draws
    np.testing.assert_allclose(back.population_.phi["slow_hrv"], 0.4)
    np.testing.assert_allclose(back.population_.phi["phi_slow_rhr"], 0.95)
    np.testing.assert_allclose(back.population_.phi["phi_hrv"], 0.2)
    np.testing.assert_allclose(back.population_.phi["slow_rec"], 0.0)
    np.testing.assert_allclose(back.athletes_["u1"]["slow_hrv"], 0.4)
    model._drift_as_slow_noise()
    a = model.predict(history, plan, 300, np.random.default_rng(1))
    b = back.predict(history, plan, 300, np.random.default_rng(1))
    for target in a.samples:
        np.testing.assert_allclose(a.samples[target], b.samples[target])
    # the drift changes the targets it is set for, and only those
    assert not np.allclose(a.samples["hrv"], no_drift.samples["hrv"])
    np.testing.assert_allclose(a.samples["recovery"], no_drift.samples["recovery"])
    new = history.assign(user_id="someone_new")
    pa = model.personalize(new, np.random.default_rng(2)).params
    pb = back.personalize(new, np.random.default_rng(2)).params
    np.testing.assert_allclose(pa["mu_hrv"], pb["mu_hrv"])


def test_loading_another_format_version_fails_clearly(tmp_path):
    model = _model(_population(n_draws=5), {})
    model.save(tmp_path / "m")
    meta = (tmp_path / "m" / "model.json")
    text = meta.read_text()
    assert f'"format_version": {FORMAT_VERSION}' in text
    meta.write_text(text.replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99'))
    with pytest.raises(DataError, match="version 99.*refit"):
        WorldModel.load(tmp_path / "m")


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        WorldModel().sample_athletes(3, np.random.default_rng(0))


def test_pooled_parameters_stay_at_their_population_value():
    """A pooled parameter has scale 0: sampled athletes and personalised posteriors take its
    population value per draw, and the conjugate update stays finite."""
    pop = _population()
    pooled = [n for n, spec in ATHLETE_PARAMS.items() if spec.pooled]
    assert pooled  # the shipped priors pool the time constants and some gains
    for name in pooled:
        pop.scale[name][:] = 0.0
    model = _model(pop)
    athletes = model.sample_athletes(300, np.random.default_rng(0), "whoop")
    for name in pooled:
        values = athletes[name]
        expected = ATHLETE_PARAMS[name]
        population = pop.loc[name][:, 0]
        as_unconstrained = np.log(values) if expected.transform == "exp" else values
        assert np.all(np.isin(np.round(as_unconstrained, 9), np.round(population, 9))), name
    frame = _athlete_frame(_truth(seed=3), 40, seed=4)
    post = model.personalize(frame, np.random.default_rng(5)).params
    for name in PARAM_NAMES:
        assert np.all(np.isfinite(post[name])), name
    for name in pooled:
        population = pop.loc[name][:, 0]
        value = np.log(post[name]) if ATHLETE_PARAMS[name].transform == "exp" else post[name]
        assert np.all(np.isin(np.round(value, 9), np.round(population, 9))), name


def test_latents_are_normalised_so_a_constant_load_gives_itself():
    """`params.state_normaliser`: at a constant daily load w (and u) every latent equals w (u)
    whatever the time constants, and after one day of load a short-τ fatigue holds (1 − e)·w of
    it (the gains are 'per 100 TRIMP/day of sustained load')."""
    p = _truth(seed=2)
    for tau_fat, tau_gap in ((0.3, 4.0), (5.0, 40.0)):
        q = dict(p, tau_fat_days=np.array([tau_fat]), tau_gap_days=np.array([tau_gap]))
        steady = latent_states(q, np.full(60, 1.7), np.full(60, 0.25))[0]
        np.testing.assert_allclose(steady, np.tile([1.7, 1.7, 0.25], (60, 1)), rtol=1e-12)
        pulse = np.zeros(30)
        pulse[20] = 1.0
        fatigue = latent_states(q, pulse, np.zeros(30))[0, :, 1]
        e = np.exp(-1.0 / tau_fat)
        assert fatigue[20] == pytest.approx(0.0, abs=1e-12)  # the morning before the session
        assert fatigue[21] == pytest.approx(1.0 - e) and fatigue[22] == pytest.approx((1 - e) * e)


def test_fit_drift_finds_a_wandering_hrv_baseline_and_keeps_rhr_single():
    """Athletes whose ln HRV baseline wanders slowly (an AR(1) with φ 0.99 carrying half the
    noise variance) beside an RHR with the model's own AR(1) noise: the chosen setting gives
    HRV a slow component that beats the single AR(1) clearly, and RHR gains little."""
    rng = np.random.default_rng(21)
    model = _model(_population())
    frames = []
    for i in range(8):
        truth = _truth(seed=30 + i)
        frame = _athlete_frame(truth, 160, seed=40 + i, user=f"w{i}")
        slow = np.zeros(160)
        sd = 0.7 * float(truth["sigma_hrv"][0])
        slow[0] = rng.normal(0, sd)
        for t in range(1, 160):
            slow[t] = 0.99 * slow[t - 1] + rng.normal(0, sd * np.sqrt(1 - 0.99 ** 2))
        frame["hrv_rmssd_ms"] *= np.exp(slow)
        frames.append(frame)
    # A part of DRIFT_GRID (19 settings of its 61; scoring them is nearly all the time) that
    # holds the full grid's choices for HRV (0.3, 0.99, 0.4) and RHR (0.15, 0.997, None):
    # their summaries are the full grid's to the last digit, here and for two other draws of
    # these athletes (only recovery, not checked, settles on a neighbour). The search over
    # the whole grid is test_drift.py's.
    grid = {"fraction": (0.0, 0.15, 0.3, 0.6), "phi_slow": (0.97, 0.99, 0.997),
            "phi_fast": (None, 0.4)}
    summary = model.fit_drift(pd.concat(frames, ignore_index=True), seed=0, grid=grid)
    assert set(summary) == {"hrv", "rhr", "recovery"} == set(model.drift_)
    assert model.drift_["hrv"].fraction >= 0.3
    assert summary["hrv"]["crps"] < 0.95 * summary["hrv"]["crps_ar1"]
    assert summary["rhr"]["crps"] > 0.97 * summary["rhr"]["crps_ar1"]
    assert summary["hrv"]["athletes"] == 8


def test_fit_drift_needs_athletes_it_can_personalise():
    frame = _athlete_frame(_truth(), 30, seed=3).iloc[::3]  # 10 rows spread over 30 days
    with pytest.raises(ValueError, match="enough days"):
        _model(_population()).fit_drift(frame)


def test_personalisation_stops_adapting_once_the_ess_reaches_the_kept_draws(monkeypatch):
    """Two weeks of data leave the proposals a large ESS soon: the rounds stop early. A year
    does not: every round is run."""
    import physiology_model.model.personalize as wm

    calls = []
    original = wm._draw_proposals

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(wm, "_draw_proposals", counting)
    population = _population()
    truth = _truth(seed=5)
    short = personalize_series(population, series_from_frame(_athlete_frame(truth, 14, seed=6)),
                               np.random.default_rng(1), 2000, 100, rounds=3)
    assert short.ess >= 100 and len(calls) < 3
    calls.clear()
    year = personalize_series(population, series_from_frame(_athlete_frame(truth, 365, seed=6)),
                              np.random.default_rng(1), 2000, 400, rounds=3)
    assert year.ess < 400 and len(calls) == 3


def _slow_population(n_draws: int = 20) -> Population:
    pop = _population(n_draws=n_draws)
    rng = np.random.default_rng(3)
    phi = dict(pop.phi)
    for name in SLOW_SHARE_PARAMS:
        phi[name] = rng.uniform(0.2, 0.6, (n_draws, 2))
    for name in PHI_SLOW_PARAMS:
        phi[name] = rng.uniform(0.8, 0.99, (n_draws, 2))
    return Population(pop.sources, pop.loc, pop.scale, phi)


def test_the_slow_noise_parameters_travel_with_samples_personalisation_and_files(tmp_path):
    """A posterior with the slow noise component (issue 24) carries its share and coefficient
    into `sample_athletes`, `personalize` and the saved model; one without them (a model saved
    before) reads as one AR(1) (`NOISE_DEFAULTS`)."""
    model = _model(_slow_population())
    draws = model.sample_athletes(200, np.random.default_rng(0), "whoop")
    for name in SLOW_SHARE_PARAMS + PHI_SLOW_PARAMS:
        # a whoop athlete's noise comes from the whoop column of the (draw, source) draws
        assert set(np.unique(draws[name])) <= set(model.population_.phi[name][:, 0])
    history = _athlete_frame(_truth(seed=11), 30, seed=12).assign(user_id="new")
    post = model.personalize(history, np.random.default_rng(1)).params
    assert set(post) == set(PARAM_NAMES) | set(NOISE_PARAMS)
    assert set(np.unique(post["slow_hrv"])) <= set(model.population_.phi["slow_hrv"].ravel())
    model.save(tmp_path / "slow")
    back = WorldModel.load(tmp_path / "slow")
    assert set(back.population_.phi) == set(model.population_.phi)  # no coupling: none saved
    for name in model.population_.phi:
        np.testing.assert_array_equal(back.population_.phi[name], model.population_.phi[name])
    old = _model(_population(n_draws=20))
    old.save(tmp_path / "old")
    loaded = WorldModel.load(tmp_path / "old")
    assert set(loaded.population_.phi) == {"phi_hrv", "phi_rhr", "phi_rec"}
    sampled = loaded.sample_athletes(10, np.random.default_rng(0))
    for name, value in NOISE_DEFAULTS.items():
        np.testing.assert_array_equal(sampled[name], np.full(10, value))


def test_a_posterior_with_part_of_the_slow_noise_is_refused(tmp_path):
    import xarray as xr

    model = _model(_slow_population())
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "posterior.nc"
    ds = xr.open_dataset(path, group="posterior", engine="h5netcdf").load()
    ds.close()
    ds.drop_vars("phi_slow_rec").to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="phi_slow_rec"):
        WorldModel.load(tmp_path / "m")
