"""The signals' same-morning coupling (physiology_model.model.coupling): estimated after the
fit, carried in the draws, simulated, saved, and refused when a file holds impossible values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_world_model import _athlete_frame, _model, _population, _truth

from physiology_model.dynamics.params import COUPLING_PARAMS
from physiology_model.errors import DataError
from physiology_model.model.coupling import (
    POOLED,
    apply_coupling,
    estimate_coupling,
    shrink_to_valid,
)
from physiology_model.model.world_model import WorldModel

TRUE_RHO = (-0.6, 0.7, -0.45)


N_DRAWS = 5


def _coupled_cohort(n: int = 8, days: int = 200) -> tuple[dict, pd.DataFrame]:
    """Athletes of the known population whose noises are coupled by `TRUE_RHO`, their true
    parameters as their posteriors (`N_DRAWS` equal draws), and their rows."""
    athletes, frames = {}, []
    for i in range(n):
        truth = _truth(seed=300 + i)
        truth.update({name: np.full(1, r) for name, r in zip(COUPLING_PARAMS, TRUE_RHO)})
        athletes[f"c{i}"] = {k: np.repeat(v, N_DRAWS) for k, v in truth.items()}
        frames.append(_athlete_frame(truth, days, seed=400 + i, user=f"c{i}"))
    return athletes, pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def estimated():
    athletes, frame = _coupled_cohort()
    model = _model(_population(n_draws=N_DRAWS), athletes)
    return model, frame, estimate_coupling(model, frame)


def test_the_estimate_recovers_the_true_correlations(estimated):
    """With the true parameters as the posterior, the one-step errors are the innovations:
    their pooled correlation is the truth up to sampling error (8 athletes × ~170 mornings)."""
    _, _, coupling = estimated
    assert coupling.own["whoop"] == (True, True, True)
    for got, want in zip(coupling.values["whoop"], TRUE_RHO):
        assert got == pytest.approx(want, abs=0.08)
    assert min(coupling.pairs["whoop"]) > 1000
    # a source of the model with no athlete here gets the pooled values
    assert coupling.values["lifesnaps"] == coupling.values[POOLED]
    assert coupling.own["lifesnaps"] == (False, False, False)


def test_independent_signals_give_correlations_near_zero():
    athletes, frames = {}, []
    for i in range(6):
        truth = _truth(seed=500 + i)
        athletes[f"i{i}"] = truth
        frames.append(_athlete_frame(truth, 200, seed=600 + i, user=f"i{i}"))
    coupling = estimate_coupling(_model(_population(n_draws=5), athletes),
                                 pd.concat(frames, ignore_index=True))
    assert max(abs(v) for v in coupling.values["whoop"]) < 0.1


def test_the_coupling_reaches_the_draws_new_athletes_and_the_saved_model(estimated, tmp_path):
    model, frame, coupling = estimated
    apply_coupling(model, coupling)
    for k, name in enumerate(COUPLING_PARAMS):
        np.testing.assert_allclose(model.athletes_["c0"][name], coupling.values["whoop"][k])
        np.testing.assert_allclose(model.population_.phi[name][:, 0],
                                   coupling.values["whoop"][k])
    # synthetic athletes of a source and new athletes personalised carry their source's
    drawn = model.sample_athletes(50, np.random.default_rng(0), "whoop")
    np.testing.assert_allclose(drawn["rho_hrv_rhr"], coupling.values["whoop"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rough posterior carries the coupling all the same
        person = model.personalize(frame[frame["user_id"] == "c1"].assign(user_id="new"),
                                   np.random.default_rng(1)).params
    np.testing.assert_allclose(person["rho_hrv_rec"], coupling.values["whoop"][1])
    model.save(tmp_path / "m")
    back = WorldModel.load(tmp_path / "m")
    for name in COUPLING_PARAMS:
        np.testing.assert_allclose(back.population_.phi[name], model.population_.phi[name])
        np.testing.assert_allclose(back.athletes_["c3"][name], model.athletes_["c3"][name])


def test_a_model_file_with_impossible_correlations_is_refused(estimated, tmp_path):
    import xarray as xr

    model, _, coupling = estimated
    apply_coupling(model, coupling)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "posterior.nc"
    ds = xr.load_dataset(path, group="posterior", engine="h5netcdf")
    # each value in (-1, 1), but no three signals can correlate so
    ds["rho_hrv_rhr_loc"][:] = -0.9
    ds["rho_hrv_rec_loc"][:] = 0.9
    ds["rho_rhr_rec_loc"][:] = 0.9
    ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="posterior.nc.*not positive definite"):
        WorldModel.load(tmp_path / "m")
    ds = ds.drop_vars("rho_rhr_rec_loc")
    ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    with pytest.raises(DataError, match="rho_rhr_rec_loc.*missing"):
        WorldModel.load(tmp_path / "m")


def test_shrinking_makes_a_valid_correlation_matrix():
    values, lam = shrink_to_valid((-0.9, 0.9, 0.9))
    matrix = np.array([[1, values[0], values[1]], [values[0], 1, values[2]],
                       [values[1], values[2], 1]])
    assert lam > 0 and np.linalg.eigvalsh(matrix).min() >= 0.05
    assert shrink_to_valid(TRUE_RHO) == (TRUE_RHO, 0.0)


def test_a_cohort_file_with_impossible_correlations_is_refused(tmp_path):
    from simulator.cohort import Cohort, generate_cohort

    model = _model(_population(n_draws=5), {})
    cohort = generate_cohort(model, 4, seed=0)
    physiology = dict(cohort.physiology, rho_hrv_rhr=np.full(4, 1.5))
    with pytest.raises(ValueError, match="rho_hrv_rhr.*outside"):
        Cohort(physiology, cohort.performance, cohort.hazard, cohort.context, cohort.meta)


def test_the_planners_noise_paths_couple_hrv_and_recovery():
    """The planner's scenarios (`rollout.PreparedRollout._noise_paths`) carry ln HRV and
    recovery noise whose innovations correlate as the simulator's do (tests/test_mpc.py holds
    them equal number for number); without a coupling the paths are the independent ones."""
    from physiology_model.dynamics.step import AthleteParams
    from simulator.rollout import PreparedRollout, draw_innovations

    m = 4000
    truth = {k: np.repeat(v, m) for k, v in _truth(seed=1).items()}
    innovations = draw_innovations(m, 1, 3, np.random.default_rng(0))[:, 0]
    start = np.zeros((m, 2))
    paths = {}
    for rho in (0.0, TRUE_RHO[1]):
        params = AthleteParams.from_mapping(dict(truth, rho_hrv_rec=np.full(m, rho)))
        paths[rho] = PreparedRollout._noise_paths(params, start, None, innovations)
    z = paths[TRUE_RHO[1]][:, 0] / np.stack([truth["sigma_hrv"], truth["sigma_rec"]], axis=1)
    assert np.corrcoef(z[:, 0], z[:, 1])[0, 1] == pytest.approx(TRUE_RHO[1], abs=0.04)
    np.testing.assert_array_equal(paths[TRUE_RHO[1]][..., 0], paths[0.0][..., 0])
    independent = paths[0.0][:, 0] / np.stack([truth["sigma_hrv"], truth["sigma_rec"]], axis=1)
    assert abs(np.corrcoef(independent[:, 0], independent[:, 1])[0, 1]) < 0.05


def test_the_factor_is_a_square_root_whose_recovery_row_is_the_pairs_own():
    from physiology_model.dynamics.observation import correlation_factor

    r = np.array([[-0.8, 0.85, -0.7], [-0.6, 0.7, -0.45], [0.0, 0.0, 0.0]])
    factor = correlation_factor(r[:, 0], r[:, 1], r[:, 2])
    for m, (a, b, c) in zip(factor, r):
        np.testing.assert_allclose(m @ m.T, [[1, a, b], [a, 1, c], [b, c, 1]], atol=1e-12)
        np.testing.assert_allclose(m[2], [b, 0.0, np.sqrt(1 - b ** 2)], atol=1e-15)
    np.testing.assert_array_equal(factor[2], np.eye(3))
