"""A damaged or tampered world-model directory is one clear error naming the file and the field,
never a traceback (docs/untrusted_input.md). Each case tampers with a copy of models/shipped."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from physiology_model.errors import DataError
from physiology_model.model.world_model import WorldModel

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "shipped"


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(MODEL_DIR, dst)
    return dst


def _edit_json(relative: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def tamper(model: Path) -> None:
        path = model / relative
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))
    return tamper


@functools.cache
def _shipped_posterior():
    """models/shipped/posterior.nc, read once for the cases that edit it (the copy each case
    tampers with is byte for byte this file). The edits build new datasets, never change it."""
    import xarray as xr

    with xr.open_dataset(MODEL_DIR / "posterior.nc", group="posterior",
                         engine="h5netcdf") as ds:
        return ds.load()


def _edit_posterior(change: Callable) -> Callable[[Path], None]:
    def tamper(model: Path) -> None:
        path = model / "posterior.nc"
        ds = change(_shipped_posterior())
        path.unlink()
        ds.to_netcdf(path, group="posterior", engine="h5netcdf")
    return tamper


def _huge_posterior(model: Path) -> None:
    """A posterior that declares 20 000 draws × 50 000 athletes (8 GB per parameter) but stores
    no data (HDF5 leaves unwritten chunks unallocated): refused before anything is read."""
    import h5netcdf

    path = model / "posterior.nc"
    path.unlink()
    with h5netcdf.File(path, "w") as f:
        g = f.create_group("posterior")
        g.dimensions = {"chain": 1, "draw": 20_000, "athlete": 50_000, "source": 5}
        g.create_variable("tau_fat_days", ("chain", "draw", "athlete"), float,
                          chunks=(1, 1000, 1000))
    assert path.stat().st_size < 1_000_000


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


def _set_config(key, value):
    return lambda meta: meta["config"].__setitem__(key, value)


def _replace_var(name, make):
    def change(ds):
        return ds.assign({name: make(ds)})
    return change


# case -> (tamper, words the one error line must contain)
CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "json_not_object": (lambda m: (m / "model.json").write_text("[1, 2]"),
                        ("model.json", "JSON object")),
    "json_truncated": (lambda m: (m / "model.json").write_text('{"format": "adap'),
                       ("model.json", "not valid JSON")),
    "json_not_utf8": (lambda m: (m / "model.json").write_bytes(b'{"a": "\xff\xfe"}'),
                      ("model.json", "unreadable")),
    "missing_config": (_edit_json("model.json", lambda d: d.pop("config")),
                       ("model.json", "'config'", "missing")),
    "config_wrong_type": (_edit_json("model.json", _set("config", "fast")),
                          ("model.json", "'config'", "object")),
    "config_unknown_key": (_edit_json("model.json", _set_config("rm -rf", 1)),
                           ("model.json", "'config'", "rm -rf")),
    "config_value_string": (_edit_json("model.json", _set_config("keep_draws", "200")),
                            ("model.json", "config.keep_draws")),
    "sources_not_list": (_edit_json("model.json", _set("sources", "whoop")),
                         ("model.json", "'sources'")),
    "sources_mismatch": (_edit_json("model.json", _set("sources", ["a", "b", "c", "d", "e"])),
                         ("posterior.nc", "'source'")),
    "drift_wrong": (_edit_json("model.json", _set("drift", {"hrv": {"fraction": 3}})),
                    ("model.json", "'drift'")),
    "drift_list": (_edit_json("model.json", _set("drift", {"hrv": [1, 2]})),
                   ("model.json", "'drift'")),
    "split_seed_string": (_edit_json("model.json", _set("split", {"seed": "zero"})),
                          ("model.json", "split.seed")),
    "residual_path": (_edit_json("model.json", _set("residual", "../../etc")),
                      ("model.json", "'residual'")),
    "posterior_missing": (lambda m: (m / "posterior.nc").unlink(),
                          ("posterior.nc", "missing")),
    "posterior_text": (lambda m: (m / "posterior.nc").write_text("not a netCDF file"),
                       ("posterior.nc", "not a readable posterior")),
    "posterior_truncated": (lambda m: (m / "posterior.nc").write_bytes(
        (MODEL_DIR / "posterior.nc").read_bytes()[:4096]), ("posterior.nc",)),
    "posterior_huge": (_huge_posterior, ("posterior.nc", "athletes")),
    "variable_missing": (_edit_posterior(lambda ds: ds.drop_vars("mu_hrv_loc")),
                         ("posterior.nc", "'mu_hrv_loc'", "missing")),
    "variable_wrong_dims": (_edit_posterior(_replace_var(
        "a_fit", lambda ds: ds["a_fit"].isel(athlete=0))),
        ("posterior.nc", "'a_fit'", "dimensions")),
    "variable_nan": (_edit_posterior(_replace_var(
        "sigma_hrv", lambda ds: ds["sigma_hrv"] * np.nan)), ("posterior.nc", "'sigma_hrv'", "NaN")),
    "variable_negative_tau": (_edit_posterior(_replace_var(
        "tau_fat_days", lambda ds: -ds["tau_fat_days"])),
        ("posterior.nc", "'tau_fat_days'", "positive")),
    "variable_strings": (_edit_posterior(_replace_var(
        "phi_hrv", lambda ds: ds["phi_hrv"].astype(str))), ("posterior.nc", "'phi_hrv'")),
    "phi_outside": (_edit_posterior(_replace_var("phi_rec", lambda ds: ds["phi_rec"] + 5)),
                    ("posterior.nc", "'phi_rec'")),
    "residual_config_garbage": (_edit_json("residual/residual_config.json",
                                           _set("config", [1, 2])),
                                ("residual_config.json", "config")),
    "residual_config_huge_net": (_edit_json(
        "residual/residual_config.json",
        lambda d: d["config"].__setitem__("hidden_sizes", [10**6, 10**6])),
        ("residual_config.json", "larger")),
    "residual_weights_pickle": (lambda m: (m / "residual" / "residual_weights.pt").write_bytes(
        b"\x80\x02cbuiltins\nopen\nq\x00X\x04\x00\x00\x00pwndq\x01X\x01\x00\x00\x00wq\x02"
        b"\x86q\x03Rq\x04."), ("residual_weights.pt",)),
    "residual_scaler_nan": (_edit_json("residual/residual_scaler.json",
                                       lambda d: d["scale"].__setitem__(0, None)),
                            ("residual_scaler.json",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_tampered_model_is_one_error_naming_file_and_field(name, tmp_path) -> None:
    tamper, words = CASES[name]
    model = _copy(tmp_path)
    tamper(model)
    with pytest.raises(DataError) as info:
        WorldModel.load(model)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_the_pickled_residual_weights_do_not_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = _copy(tmp_path)
    CASES["residual_weights_pickle"][0](model)
    with pytest.raises(DataError):
        WorldModel.load(model)
    assert not (tmp_path / "pwnd").exists()


def test_the_intact_copy_loads_and_matches_the_shipped_model(tmp_path) -> None:
    shipped = WorldModel.load(MODEL_DIR)
    copy = WorldModel.load(_copy(tmp_path))
    assert sorted(copy.athletes_) == sorted(shipped.athletes_)
    u = min(shipped.athletes_)
    for name, values in shipped.athletes_[u].items():
        np.testing.assert_array_equal(copy.athletes_[u][name], values)


@pytest.mark.parametrize("name", ["posterior_huge", "config_unknown_key", "variable_strings"])
def test_the_cli_prints_one_line_for_a_tampered_model(name, tmp_path, capsys) -> None:
    model = _copy(tmp_path)
    CASES[name][0](model)
    data = MODEL_DIR.parent.parent / "data" / "real" / "whoop" / "u01"
    rc = main(["plan", "--model", str(model), "--data", str(data), "--days", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(model) in err
