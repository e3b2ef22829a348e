"""The installed package carries what it needs: the shipped world model (data-files)."""

from __future__ import annotations

import pathlib
import tomllib

from physiology_model.model.world_model import SHIPPED, resolve_model_dir, shipped_model_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_file_of_the_shipped_model_is_installed_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = {f for files in config["tool"]["setuptools"]["data-files"].values() for f in files}
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "models" / "shipped").rglob("*")
               if p.is_file()}
    assert listed == shipped


def test_the_name_shipped_resolves_to_the_shipped_model():
    assert (shipped_model_dir() / "model.json").is_file()
    assert resolve_model_dir(SHIPPED) == shipped_model_dir()
    assert resolve_model_dir("some/dir") == pathlib.Path("some/dir")
