"""The weekday offsets (physiology_model.model.weekday): estimated after the fit, carried in the
draws, read by the forecasts, the personalisation, the simulator and the planner, saved, and
refused when a file holds impossible values."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from test_mpc import _start
from test_world_model import _athlete_frame, _model, _population, _truth

from physiology_model.dynamics.observation import TARGETS, observation_means, recovery_to_logit
from physiology_model.dynamics.params import WEEKDAY_NAMES, WEEKDAY_PARAMS
from physiology_model.dynamics.step import AthleteParams, simulate
from physiology_model.errors import DataError
from physiology_model.features.batch import weekdays
from physiology_model.model.forecast import forecast_gaussians, series_from_frame
from physiology_model.model.personalize import personalize_series
from physiology_model.model.weekday import POOLED, apply_weekday, estimate_weekday
from physiology_model.model.world_model import WorldModel
from simulator.rollout import evaluate_sequences

TRUE = {"hrv": (0.05, 0.03, 0.0, -0.01, -0.02, -0.07, 0.02),
        "rhr": (-0.9, -0.6, -0.2, 0.0, 0.4, 1.1, 0.2),
        "recovery": (0.35, 0.2, 0.0, -0.1, -0.3, -0.2, 0.05)}
NONE = {target: (0.0,) * 7 for target in TRUE}
N_DRAWS = 5


def _with_offsets(p: dict[str, np.ndarray], offsets=TRUE) -> dict[str, np.ndarray]:
    out = dict(p)
    for target, names in WEEKDAY_PARAMS.items():
        for day, name in enumerate(names):
            out[name] = np.full(np.shape(p["mu_hrv"]), offsets[target][day])
    return out


def _weekly_cohort(n: int = 8, days: int = 210) -> tuple[dict, pd.DataFrame]:
    """Athletes of the known population with the `TRUE` weekly rhythm in their readings, their
    true parameters without it as their posteriors, and their rows (2024-01-01: a Monday)."""
    athletes, frames = {}, []
    for i in range(n):
        truth = _truth(seed=700 + i)
        athletes[f"w{i}"] = {k: np.repeat(v, N_DRAWS) for k, v in truth.items()}
        frame = _athlete_frame(truth, days, seed=800 + i, user=f"w{i}", missing=0.0)
        day = weekdays(frame["date"].to_numpy(dtype="datetime64[D]"))
        frame["hrv_rmssd_ms"] *= np.exp(np.asarray(TRUE["hrv"])[day])
        frame["rhr_bpm"] += np.asarray(TRUE["rhr"])[day]
        logit = recovery_to_logit(frame["recovery_pct"]) + np.asarray(TRUE["recovery"])[day]
        frame["recovery_pct"] = 100.0 / (1.0 + np.exp(-logit))
        frames.append(frame)
    return athletes, pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def estimated():
    athletes, frame = _weekly_cohort()
    model = _model(_population(n_draws=N_DRAWS), athletes)
    return model, frame, estimate_weekday(model, frame)


def test_weekdays_of_dates():
    dates = np.array(["2024-01-01", "2024-01-06", "2024-01-07", "1970-01-01"],
                     dtype="datetime64[D]")
    np.testing.assert_array_equal(weekdays(dates), [0, 5, 6, 3])


def test_the_estimate_recovers_the_true_offsets(estimated):
    """8 athletes × 30 weeks: each offset within sampling error of the truth, and every
    target's seven sum to 0."""
    _, _, effect = estimated
    tolerance = {"hrv": 0.03, "rhr": 0.6, "recovery": 0.2}
    for target in TARGETS:
        got = np.asarray(effect.values["whoop"][target])
        assert effect.own["whoop"][target]
        np.testing.assert_allclose(got, TRUE[target], atol=tolerance[target])
        assert abs(got.sum()) < 1e-12
        assert max(effect.pooled_se[target]) < tolerance[target]
    assert effect.values["lifesnaps"] == effect.values[POOLED]  # no athlete of that source
    assert not any(effect.own["lifesnaps"].values())


def test_no_rhythm_gives_offsets_near_zero():
    athletes, frames = {}, []
    for i in range(6):
        truth = _truth(seed=900 + i)
        athletes[f"n{i}"] = truth
        frames.append(_athlete_frame(truth, 210, seed=950 + i, user=f"n{i}", missing=0.0))
    effect = estimate_weekday(_model(_population(n_draws=5), athletes),
                              pd.concat(frames, ignore_index=True))
    assert max(abs(v) for v in effect.values["whoop"]["hrv"]) < 0.03


def test_the_offsets_reach_the_draws_new_athletes_and_the_saved_model(estimated, tmp_path):
    model, frame, effect = estimated
    apply_weekday(model, effect)
    name = WEEKDAY_PARAMS["rhr"][5]
    np.testing.assert_allclose(model.athletes_["w0"][name], effect.values["whoop"]["rhr"][5])
    drawn = model.sample_athletes(20, np.random.default_rng(0), "whoop")
    np.testing.assert_allclose(drawn[name], effect.values["whoop"]["rhr"][5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        person = model.personalize(frame[frame["user_id"] == "w1"].head(42)
                                   .assign(user_id="new"), np.random.default_rng(1)).params
    np.testing.assert_allclose(person[name], effect.values["whoop"]["rhr"][5])
    model.save(tmp_path / "m")
    back = WorldModel.load(tmp_path / "m")
    for n in WEEKDAY_NAMES:
        np.testing.assert_allclose(back.population_.phi[n], model.population_.phi[n])
        np.testing.assert_allclose(back.athletes_["w3"][n], model.athletes_["w3"][n])


def test_a_model_file_with_bad_offsets_is_refused(estimated, tmp_path):
    import xarray as xr

    model, _, effect = estimated
    apply_weekday(model, effect)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "posterior.nc"
    ds = xr.load_dataset(path, group="posterior", engine="h5netcdf")
    ds["dow_rhr_5_loc"][:] = ds["dow_rhr_5_loc"] + 1.0  # the week no longer sums to 0
    ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="posterior.nc.*dow_rhr_0_loc.*sum to 0"):
        WorldModel.load(tmp_path / "m")
    ds["dow_rhr_5_loc"][:] = 50.0
    ds["dow_rhr_6_loc"][:] = -50.0 - sum(ds[f"dow_rhr_{d}_loc"] for d in range(5))
    ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="posterior.nc.*larger than 10"):
        WorldModel.load(tmp_path / "m")
    ds = ds.drop_vars("dow_hrv_3_loc")
    ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="dow_hrv_3_loc.*missing"):
        WorldModel.load(tmp_path / "m")


def _deseasonalised(series, offsets=TRUE):
    day = weekdays(series.dates)
    return dataclasses.replace(
        series, hrv=series.hrv - np.asarray(offsets["hrv"])[day],
        rhr=series.rhr - np.asarray(offsets["rhr"])[day],
        recovery_logit=series.recovery_logit - np.asarray(offsets["recovery"])[day])


def test_a_forecast_with_offsets_is_the_offset_free_forecast_of_the_deseasonalised_series():
    p = {k: np.repeat(v, 4) for k, v in _truth(seed=3).items()}
    series = series_from_frame(_athlete_frame(p, 60, seed=4))
    origins = np.array([20, 33])
    with_offsets = forecast_gaussians(_with_offsets(p), series, origins, 9)
    plain = forecast_gaussians(p, _deseasonalised(series), origins, 9)
    target_day = weekdays(series.dates)[origins[:, None] + np.arange(9)]  # (O, H)
    for target in TARGETS:
        expected = plain[target][0] + np.asarray(TRUE[target])[target_day][:, None, :]
        np.testing.assert_allclose(with_offsets[target][0], expected, atol=1e-12)
        np.testing.assert_allclose(with_offsets[target][1], plain[target][1], atol=1e-12)


@pytest.mark.parametrize("source", ["whoop", "a device the model never saw"])
def test_personalising_with_offsets_is_personalising_the_deseasonalised_series(source):
    """The offsets are a known term of every proposal's mean: the weights, the evidence and
    the draws equal those of the offset-free population on the series without its rhythm
    (also when the proposals mix the sources of an unknown device)."""
    pop = _population(n_draws=20)
    shape = pop.phi["phi_hrv"].shape  # (draws, sources)
    pop_offsets = dataclasses.replace(pop, phi={**pop.phi, **{
        name: np.full(shape, TRUE[target][day])
        for target, names in WEEKDAY_PARAMS.items() for day, name in enumerate(names)}})
    series = dataclasses.replace(
        series_from_frame(_athlete_frame(_truth(seed=5), 40, seed=6)), source=source)
    a = personalize_series(pop_offsets, series, np.random.default_rng(1), 800, 100)
    b = personalize_series(pop, _deseasonalised(series), np.random.default_rng(1), 800, 100)
    assert a.log_evidence == pytest.approx(b.log_evidence, abs=1e-9)
    for name in ("mu_hrv", "mu_rhr", "mu_rec", "tau_fat_days", "a_fat", "b_fit"):
        np.testing.assert_allclose(a.params[name], b.params[name], atol=1e-9)


def test_the_simulator_adds_the_offsets_of_each_day_to_the_same_noise():
    p = {k: np.repeat(v, 3) for k, v in _truth(seed=7).items()}
    load, hi = np.full(30, 1.0), np.zeros(30)
    day = (np.arange(30) + 2) % 7
    a = simulate(AthleteParams.from_mapping(_with_offsets(p)), (load, hi),
                 np.random.default_rng(0), day)
    b = simulate(AthleteParams.from_mapping(p), (load, hi), np.random.default_rng(0), day)
    np.testing.assert_allclose(a["hrv"] - b["hrv"], np.broadcast_to(
        np.asarray(TRUE["hrv"])[day], (3, 30)), atol=1e-12)
    np.testing.assert_allclose(a["rhr"] - b["rhr"], np.broadcast_to(
        np.asarray(TRUE["rhr"])[day], (3, 30)), atol=1e-12)
    means = observation_means(p, np.zeros((3, 30, 3)), day)  # no offsets in p: unchanged
    np.testing.assert_array_equal(means["hrv"], observation_means(p, np.zeros((3, 30, 3)))["hrv"])


def test_the_planned_mornings_get_the_offsets_of_their_weekdays(model):
    start = _start(model, n=2, s=3)
    start = dataclasses.replace(start, residual=np.zeros((2, 3, 2)),
                                physiology=_with_offsets(start.physiology))
    plans = np.random.default_rng(3).integers(0, 6, (2, 4, 9))
    noise = np.zeros((2, 3, 9, 4))
    plain = evaluate_sequences(start, plans, noise, return_paths=True)
    today = np.array([4, 6])  # Friday, Sunday
    dated = evaluate_sequences(dataclasses.replace(start, weekday=today), plans, noise,
                               return_paths=True)
    mornings = (today[:, None] + 1 + np.arange(9)) % 7  # (N, H)
    shift = np.asarray(TRUE["hrv"])[mornings][:, None, None, :]
    np.testing.assert_allclose(dated.paths["ln_hrv"], plain.paths["ln_hrv"] + shift,
                               atol=1e-12)


def test_the_belief_reads_each_morning_against_the_offset_of_its_weekday(model, monkeypatch):
    """The MPC's belief takes the weekday offsets off every morning it reads: with offsets in
    its draws, each morning's residual is the offset-free one minus that morning's offset
    (the weekday from the observation's calendar features, counted on from the first
    morning), and the history it personalises on carries the readings' weekdays."""
    import agents.mpc as mpc_module
    from agents.baselines import RandomPolicy
    from agents.mpc import AthleteBelief, MPCConfig
    from simulator.cohort import generate_cohort
    from simulator.env import EnvConfig, Simulation

    cohort = generate_cohort(model, 3, seed=5)
    sampled = model.sample_athletes
    residuals = {}
    for weekly in (False, True):
        observed = []
        split = mpc_module.split_residual

        def spy(residual, *args, observed=observed, split=split):
            observed.append(residual.copy())
            return split(residual, *args)

        def draws(n, rng, source=None, weekly=weekly):
            return _with_offsets(dict(sampled(n, rng, source)), TRUE if weekly else NONE)

        monkeypatch.setattr(mpc_module, "split_residual", spy)
        monkeypatch.setattr(model, "sample_athletes", draws)
        sim = Simulation(cohort, 3, EnvConfig(episode_days=30))
        obs = sim.reset(seed=3)
        first = sim.weekday.copy()
        belief = AthleteBelief(model, MPCConfig(scenarios=2), np.random.default_rng(0))
        policy = RandomPolicy()
        policy.reset(0)
        for _ in range(6):
            belief.observe(obs)
            action = policy.act(obs, sim.mask)
            belief.record_executed(action)
            obs, _, _ = sim.step(action)
        residuals[weekly] = np.stack(observed)  # (days, N, S, 3)
        monkeypatch.undo()
    day = (first[None, :] + np.arange(6)[:, None]) % 7  # (days, N)
    for k, target in enumerate(TARGETS):
        shift = np.asarray(TRUE[target])[day][:, :, None]
        np.testing.assert_allclose(residuals[True][..., k], residuals[False][..., k] - shift,
                                   atol=1e-9)
    np.testing.assert_array_equal(weekdays(belief._history_series(1).dates)[:6],
                                  (first[1] + np.arange(6)) % 7)


@pytest.mark.parametrize("slow_share", [0.0, 0.4])
def test_whitening_draws_of_two_offset_tables_is_whitening_each_draws_own_series(slow_share):
    """Draws with different weekday tables (the sources an unknown device mixes): each draw's
    whitened series is its own deseasonalised series whitened alone, for the AR(1) and the
    Kalman (slow + fast) noise."""
    from physiology_model.dynamics.params import PHI_SLOW_PARAMS, SLOW_SHARE_PARAMS
    from physiology_model.model.personalize import _whiten, constrained

    rng = np.random.default_rng(2)
    raw, _, _ = _population(n_draws=20).draw_unconstrained(30, rng)
    p = constrained(raw)
    for name in SLOW_SHARE_PARAMS:
        p[name] = np.full(30, slow_share)
    for name in PHI_SLOW_PARAMS:
        p[name] = np.full(30, 0.9)
    second = rng.random(30) < 0.5
    for target, names in WEEKDAY_PARAMS.items():
        for day, name in enumerate(names):
            p[name] = np.where(second, -2.0 * TRUE[target][day], TRUE[target][day])
    y = rng.normal(4.0, 0.2, 40)
    y[[5, 6, 20]] = np.nan
    x = rng.normal(size=(30, 3, 40))
    weekday = (np.arange(40) + 3) % 7
    y_t, x_t, log_c = _whiten(y, x, p, "hrv", weekday)
    for m in (0, int(np.argmax(second)), 29):
        own = {k: np.asarray(v)[m:m + 1] for k, v in p.items()}
        offsets = np.asarray([own[n][0] for n in WEEKDAY_PARAMS["hrv"]])[weekday]
        alone = _whiten(y - offsets, x[m:m + 1], own, "hrv")
        np.testing.assert_allclose(y_t[m], alone[0][0], atol=1e-12)
        np.testing.assert_allclose(x_t[m], alone[1][0], atol=1e-12)
        np.testing.assert_allclose(log_c[m], alone[2][0], atol=1e-12)
