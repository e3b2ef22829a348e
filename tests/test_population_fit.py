"""`periodize model fit --population-athletes K`: the population by NUTS on K athletes, the rest
personalised against it (physiology_model/model/population_fit.py).

One fit with the sampler's cheapest settings (a few seconds of NUTS on 3 athletes × 80 days):
it checks the plumbing and the files, not the posterior's quality (benchmarks/large_cohort_fit.py
measures parameter recovery against the truth)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.dynamics.params import PARAM_NAMES, WEEKDAY_NAMES
from physiology_model.model import bayes
from physiology_model.model.arrays import prepare_arrays
from physiology_model.model.population_fit import (
    arrays_frame,
    athlete_series,
    choose_population_athletes,
    personalize_task,
)
from physiology_model.model.world_model import WorldModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ATHLETES, K = 8, 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple:
    config = bayes.SimulationConfig(n_athletes=N_ATHLETES, n_days=80, missing_share=0.1)
    arrays, truth = bayes.simulate_cohort(config, np.random.default_rng(3))
    directory = tmp_path_factory.mktemp("cohort")
    arrays_frame(arrays).to_parquet(directory / "cohort.parquet")
    kept = prepare_arrays(pd.read_parquet(directory / "cohort.parquet"))  # the fit's athletes
    return directory, kept, truth


def _fit_args(data, out, *extra) -> list[str]:
    return ["model", "fit", "--data", str(data), "--out", str(out), "--all", "--draws", "20",
            "--tune", "20", "--chains", "1", "--no-residual", *extra]


@pytest.fixture(scope="module")
def fitted(cohort, tmp_path_factory):
    directory = cohort[0]
    out = tmp_path_factory.mktemp("model") / "pop"
    with pytest.warns(UserWarning):  # 20 draws fail the convergence checks, as they should
        rc = main(_fit_args(directory, out, "--population-athletes", str(K), "--seed", "5"))
    assert rc in (0, 3)  # 3: convergence checks failed (20 draws)
    return out


def test_k_athletes_by_nuts_the_rest_personalised_in_a_model_that_loads(fitted, cohort):
    _, arrays, _ = cohort
    model = WorldModel.load(fitted)
    meta = json.loads((fitted / "model.json").read_text())
    info = meta["fit"]["population_fit"]
    assert sorted(model.athletes_) == sorted(arrays.user_ids)
    assert arrays.n_athletes >= K + 3
    assert len(info["nuts_athletes"]) == K
    assert info["personalised_athletes"] == arrays.n_athletes - K
    assert meta["fit"]["n_athletes"] == arrays.n_athletes
    assert tuple(info["nuts_athletes"]) == choose_population_athletes(
        arrays.user_ids, arrays.athlete_sources, K, 5)
    n_draws = model.population_.n_draws
    personalised = sorted(set(model.athletes_) - set(info["nuts_athletes"]))
    for uid in model.athletes_:
        for name in PARAM_NAMES:
            assert model.athletes_[uid][name].shape == (n_draws,)
            assert np.isfinite(model.athletes_[uid][name]).all()
    # each personalised athlete has its own posterior (not the population's)
    means = [model.athletes_[u]["mu_hrv"].mean() for u in personalised]
    assert len(set(np.round(means, 6))) == len(personalised)
    # a personalised athlete is one of the model's athletes: its draws are used as they are
    uid = personalised[0]
    history = arrays_frame(arrays)
    history = history[history["user_id"] == uid]
    params = model.athlete_params(history, np.random.default_rng(0))
    np.testing.assert_array_equal(params["mu_hrv"], model.athletes_[uid]["mu_hrv"])
    planned = pd.DataFrame({"load_trimp": [100.0, 0.0, 150.0]})
    prediction = model.predict(history, planned, n_samples=50)
    assert np.isfinite(prediction.samples["hrv"]).all()
    # the drift choice and the calibration used the K NUTS athletes
    assert all(d["athletes"] == K for d in meta["fit"]["drift"].values())
    assert model.calibration_ is not None and model.calibration_.info["athletes"] == K


def test_model_calibrate_reproduces_the_fits_calibration(fitted, cohort, tmp_path):
    """`periodize model calibrate` learns the recalibration on the rows `model fit` learned it
    on (here --all and the K NUTS athletes), so it rewrites the fit's file byte for byte."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fitted, copy)
    (copy / "calibration.json").unlink()
    assert main(["model", "calibrate", "--model", str(copy), "--data", str(cohort[0])]) == 0
    assert (copy / "calibration.json").read_bytes() == (fitted / "calibration.json").read_bytes()


@pytest.mark.parametrize("command,part,names", [
    ("couple", "coupling", ("rho_hrv_rhr", "rho_hrv_rec", "rho_rhr_rec")),
    ("weekday", "weekday", WEEKDAY_NAMES)])
def test_the_post_fit_commands_reproduce_the_fits_estimates(fitted, cohort, tmp_path, command,
                                                            part, names):
    """`model fit` estimates the signals' coupling and the weekday offsets into the draws;
    `periodize model couple` / `model weekday` estimate them on the same rows, so an existing
    model gets the same values."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fitted, copy)
    assert main(["model", command, "--model", str(copy), "--data", str(cohort[0])]) == 0
    fit, again = (json.loads((d / "model.json").read_text())["fit"][part]
                  for d in (fitted, copy))
    assert again == fit
    assert set(fit if part == "coupling" else fit["values"]) >= {"simulated", "(all sources)"}
    before, after = WorldModel.load(fitted), WorldModel.load(copy)
    for name in names:
        np.testing.assert_array_equal(after.population_.phi[name], before.population_.phi[name])
        for athlete, draws in before.athletes_.items():
            np.testing.assert_array_equal(after.athletes_[athlete][name], draws[name])


def test_the_choice_of_k_athletes_is_reproducible_and_stratified_by_source():
    ids = [f"a{i:03d}" for i in range(40)]
    sources = ["whoop"] * 30 + ["garmin"] * 8 + ["oura"] * 2
    first = choose_population_athletes(ids, sources, 10, seed=1)
    assert first == choose_population_athletes(ids, sources, 10, seed=1)
    # the order the athletes come in does not matter, the seed does
    order = np.random.default_rng(0).permutation(40)
    assert first == choose_population_athletes([ids[i] for i in order],
                                               [sources[i] for i in order], 10, seed=1)
    assert first != choose_population_athletes(ids, sources, 10, seed=2)
    source_of = dict(zip(ids, sources))
    counts = pd.Series([source_of[u] for u in first]).value_counts().to_dict()
    assert counts == {"whoop": 7, "garmin": 2, "oura": 1}  # 1 each + 7 shared 29 : 7 : 1
    assert len(choose_population_athletes(ids, sources, 40, seed=1)) == 40


def test_personalisation_does_not_depend_on_how_athletes_are_sharded(fitted, cohort):
    _, arrays, _ = cohort
    population = WorldModel.load(fitted).population_
    series = [(arrays.user_ids[a], athlete_series(arrays, a)) for a in (0, 1)]
    task = {"population": population, "seed": 5, "n_draws": 40, "n_proposals": 300}
    together = personalize_task({**task, "series": series})
    apart = [personalize_task({**task, "series": [s]})[0] for s in series]
    for (uid_a, draws_a, ess_a), (uid_b, draws_b, ess_b) in zip(together, apart):
        assert uid_a == uid_b and ess_a == ess_b
        for name in PARAM_NAMES:
            np.testing.assert_array_equal(draws_a[name], draws_b[name])


@pytest.mark.parametrize("k,says", [("0", "at least 1"), ("-2", "at least 1"),
                                    ("99", "between 1 and ")])
def test_a_bad_k_is_one_clear_error(k, says, cohort, tmp_path, capsys):
    rc = main(_fit_args(cohort[0], tmp_path / "m", "--population-athletes", k))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "--population-athletes" in err and says in err
    assert not (tmp_path / "m" / "model.json").exists()


def test_fewer_athletes_than_sources_is_refused():
    with pytest.raises(ValueError, match="one per data source"):
        choose_population_athletes(["a", "b", "c"], ["whoop", "oura", "garmin"], 2, seed=0)


def test_workers_without_the_flag_are_refused(cohort, tmp_path, capsys):
    rc = main(_fit_args(cohort[0], tmp_path / "m", "--workers", "2"))
    assert rc == 2 and "go with --population-athletes" in capsys.readouterr().err


def test_the_synthetic_export_reads_back_as_the_simulated_arrays():
    arrays, _ = bayes.simulate_cohort(bayes.SimulationConfig(n_athletes=3, n_days=60,
                                                             missing_share=0.05),
                                      np.random.default_rng(0))
    back = prepare_arrays(arrays_frame(arrays), min_hrv_days=1, require_kept=False)
    assert back.user_ids == arrays.user_ids
    np.testing.assert_allclose(back.hrv, arrays.hrv, equal_nan=True)
    np.testing.assert_allclose(back.load, arrays.load)
    np.testing.assert_allclose(back.recovery, arrays.recovery, equal_nan=True)
