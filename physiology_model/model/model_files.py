"""Checks on a saved world model's files before anything is built from them.

A model directory is data (`model.json`, `posterior.nc`, `residual/`), but it may be damaged or
tampered with. `WorldModel.load` reads it through these functions, which turn every problem (a
missing key, a wrong type, an array of the wrong shape or one too large to hold, values outside a
parameter's domain) into one `DataError` naming the file and the field, never a traceback and
never a silent misreading (docs/untrusted_input.md).

`posterior.nc` is opened lazily (xarray, h5netcdf) and its dimensions are checked before any
array is read, so a file that declares huge arrays is refused without allocating them.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from physiology_model.dynamics.observation import coupling_problem
from physiology_model.dynamics.params import (
    AR_PARAMS,
    ATHLETE_PARAMS,
    COUPLING_PARAMS,
    PARAM_NAMES,
    PHI_SLOW_PARAMS,
    SLOW_SHARE_PARAMS,
    WEEKDAY_NAMES,
    WEEKDAY_PARAMS,
)
from physiology_model.errors import DataError

MAX_DRAWS = 20_000
MAX_ATHLETES = 100_000
MAX_SOURCES = 64
MAX_CELLS = 20_000_000
"""Largest draws × athletes of one parameter (160 MB of float64)."""
MAX_POSTERIOR_BYTES = 2 << 30
MAX_WEEKDAY_OFFSET = {"hrv": 0.5, "rhr": 10.0, "recovery": 2.0}
"""Largest weekday offset a posterior may hold, per target (ln ms, bpm, recovery logit): five
to seven times the largest measured (WHOOP's: 0.07 ln ms, 1.5 bpm, 0.34 logit;
`model.weekday`); beyond it a file is refused."""


def check_model_meta(meta: Any, path: Path, config_fields: tuple[str, ...]) -> dict[str, Any]:
    """The fields of `model.json` that `WorldModel.load` uses, type-checked. `config_fields`:
    the names `WorldModelConfig` accepts (each config value must be an integer ≥ 1, or None for
    `max_days`)."""
    if not isinstance(meta, dict):
        raise DataError(path, f"expected a JSON object, found {type(meta).__name__}")
    for key in ("config", "sources"):
        if key not in meta:
            raise DataError(path, f"field {key!r} is missing")
    config = meta["config"]
    if not isinstance(config, dict):
        raise DataError(path, f"field 'config' must be an object, found {type(config).__name__}")
    unknown = sorted(set(config) - set(config_fields))
    if unknown:
        raise DataError(path, f"field 'config': unknown setting {unknown[0]!r} (known: "
                              f"{', '.join(config_fields)})")
    for key, value in config.items():
        if value is None and key == "max_days":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**7:
            raise DataError(path, f"field 'config.{key}' must be a whole number ≥ 1, found "
                                  f"{_short(value)}")
    sources = meta["sources"]
    if (not isinstance(sources, list) or not 1 <= len(sources) <= MAX_SOURCES
            or not all(isinstance(s, str) and s for s in sources)
            or len(set(sources)) != len(sources)):
        raise DataError(path, f"field 'sources' must be a list of 1 to {MAX_SOURCES} distinct "
                              f"names, found {_short(sources)}")
    for key in ("diagnostics", "split", "fit", "drift"):
        value = meta.get(key)
        if value is not None and not isinstance(value, dict):
            raise DataError(path, f"field {key!r} must be an object, found "
                                  f"{type(value).__name__}")
    split = meta.get("split") or {}
    seed = split.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DataError(path, f"field 'split.seed' must be a whole number ≥ 0, found "
                              f"{_short(seed)}")
    test_users = split.get("test_users", [])
    if not isinstance(test_users, list) or not all(isinstance(u, str) for u in test_users):
        raise DataError(path, "field 'split.test_users' must be a list of athlete ids")
    residual = meta.get("residual")
    if residual is not None and residual != "residual":
        raise DataError(path, f"field 'residual' must be \"residual\" or null, found "
                              f"{_short(residual)}")
    return meta


def config_field_names(config_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(config_type))


def read_posterior(path: Path, sources: list[str]) -> dict[str, Any]:
    """The kept draws of `posterior.nc`: `athletes` (ids), `values[name]` (draw, athlete) for
    each athlete parameter and each noise parameter, `loc[name]` (draw, source), `scale[name]`
    (draw,), `phi[name]` (draw, source) for the noise's population parameters (`AR_PARAMS`,
    and the slow component's `SLOW_SHARE_PARAMS` + `PHI_SLOW_PARAMS` where the file has them:
    all six or none, none being one AR(1); the signals' `COUPLING_PARAMS`: all three or none,
    none being independent noises, every triple a valid correlation matrix; the
    `WEEKDAY_PARAMS`: all 21 or none, each target's seven summing to 0 within
    `MAX_WEEKDAY_OFFSET`), all float64 and finite, after
    checking every variable's presence, dimensions, size and domain."""
    import xarray as xr

    if not path.is_file():
        raise DataError(path, "is missing: a saved world model has posterior.nc beside "
                              "model.json")
    size = path.stat().st_size
    if size > MAX_POSTERIOR_BYTES:
        raise DataError(path, f"{size / 2**20:.0f} MB, more than the {MAX_POSTERIOR_BYTES >> 20} "
                              f"MB a posterior of this project can hold: refused")
    try:
        ds = xr.open_dataset(path, group="posterior", engine="h5netcdf", cache=False)
    except Exception as exc:  # noqa: BLE001 (h5py, h5netcdf and xarray raise many types)
        raise DataError(path, f"not a readable posterior (netCDF/HDF5 group 'posterior': "
                              f"{type(exc).__name__}: {str(exc)[:160]})") from None
    with ds:
        return _checked_posterior(ds, path, sources)


def _checked_posterior(ds: Any, path: Path, sources: list[str]) -> dict[str, Any]:
    sizes = dict(ds.sizes)
    if sizes.get("draw", 0) * max(sizes.get("athlete", 1), 1) > MAX_CELLS:
        raise DataError(path, f"{sizes['draw']} draws × {sizes.get('athlete', 1)} athletes is "
                              f"more than the {MAX_CELLS:,} values per parameter this project "
                              f"reads")
    for dim in ("chain", "draw", "athlete", "source"):
        if dim not in sizes:
            raise DataError(path, f"dimension {dim!r} is missing")
    limits = {"chain": 1000, "draw": MAX_DRAWS, "athlete": MAX_ATHLETES, "source": MAX_SOURCES}
    for dim, limit in limits.items():
        if not (1 if dim != "athlete" else 0) <= sizes[dim] <= limit:
            raise DataError(path, f"dimension {dim!r} has {sizes[dim]} entries (expected "
                                  f"{'0' if dim == 'athlete' else '1'} to {limit})")
    file_sources = [str(s) for s in _coord(ds, "source", path)]
    if file_sources != list(sources):
        raise DataError(path, f"coordinate 'source' {file_sources} differs from model.json's "
                              f"'sources' {list(sources)}")
    athletes = [str(u) for u in _coord(ds, "athlete", path)]
    if len(set(athletes)) != len(athletes):
        raise DataError(path, "coordinate 'athlete' names an athlete twice")
    # variable -> (dimensions, where it goes, parameter)
    expected: dict[str, tuple[tuple[str, ...], str, str]] = {}
    for param in PARAM_NAMES:
        expected[param] = (("chain", "draw", "athlete"), "values", param)
        expected[f"{param}_loc"] = (("chain", "draw", "source"), "loc", param)
        expected[f"{param}_scale"] = (("chain", "draw"), "scale", param)
    present = _all_or_none(ds, path, SLOW_SHARE_PARAMS + PHI_SLOW_PARAMS,
                           "a slow noise component")
    coupled = _all_or_none(ds, path, COUPLING_PARAMS, "the signals' coupling")
    weekly = _all_or_none(ds, path, WEEKDAY_NAMES, "weekday offsets")
    for param in (*AR_PARAMS, *present, *coupled, *weekly):
        expected[param] = (("chain", "draw", "athlete"), "values", param)
        expected[f"{param}_loc"] = (("chain", "draw", "source"), "phi", param)
    out: dict[str, Any] = {"athletes": athletes, "values": {}, "loc": {}, "scale": {},
                           "phi": {}}
    for name, (dims, group, param) in expected.items():
        if name not in ds.data_vars:
            raise DataError(path, f"variable {name!r} is missing")
        var = ds[name]
        if tuple(var.dims) != dims:
            raise DataError(path, f"variable {name!r} has dimensions {tuple(var.dims)}, "
                                  f"expected {dims}")
        if var.dtype.kind not in "fiu":
            raise DataError(path, f"variable {name!r} holds {var.dtype} values, not numbers")
        values = np.asarray(var.isel(chain=0).values, dtype=float)
        if not np.isfinite(values).all():
            raise DataError(path, f"variable {name!r} holds NaN or infinite values")
        if group == "scale" and (values < 0).any():
            raise DataError(path, f"variable {name!r} holds negative spreads")
        if param in SLOW_SHARE_PARAMS:
            if ((values < 0) | (values >= 1)).any():
                raise DataError(path, f"variable {name!r} holds variance shares outside [0, 1)")
        elif param in AR_PARAMS + PHI_SLOW_PARAMS and ((values <= -1) | (values >= 1)).any():
            raise DataError(path, f"variable {name!r} holds AR(1) coefficients outside (-1, 1)")
        if (group == "values" and param in ATHLETE_PARAMS
                and ATHLETE_PARAMS[param].transform == "exp"
                and (values <= 0).any()):
            raise DataError(path, f"variable {name!r} must be positive "
                                  f"({ATHLETE_PARAMS[param].unit})")
        out[group][param] = values
    if coupled:
        for group in ("values", "phi"):
            problem = coupling_problem(*(out[group][param] for param in COUPLING_PARAMS))
            if problem:
                names = COUPLING_PARAMS if group == "values" else [f"{p}_loc" for p in
                                                                    COUPLING_PARAMS]
                raise DataError(path, f"variables {list(names)} hold {problem}")
    if weekly:
        for group in ("values", "phi"):
            for target, names in WEEKDAY_PARAMS.items():
                table = np.stack([out[group][n] for n in names], axis=-1)
                label = names[0] + ("" if group == "values" else "_loc")
                if np.abs(table).max() > MAX_WEEKDAY_OFFSET[target]:
                    raise DataError(path, f"variables {label} … hold weekday offsets larger "
                                          f"than {MAX_WEEKDAY_OFFSET[target]}")
                if np.abs(table.sum(axis=-1)).max() > 1e-6:
                    raise DataError(path, f"variables {label} … hold weekday offsets that do "
                                          f"not sum to 0 over the week")
    return out


def _all_or_none(ds: Any, path: Path, group: tuple[str, ...], what: str) -> list[str]:
    """The parameters of an optional `group` whose population variables (`<name>_loc`) the
    posterior holds: all of them or none, else one `DataError` naming the missing ones."""
    present = [param for param in group if f"{param}_loc" in ds.data_vars]
    if present and len(present) < len(group):
        raise DataError(path, f"variables {sorted(f'{p}_loc' for p in set(group) - set(present))}"
                              f" are missing (a posterior with {what} has all of "
                              f"{[f'{p}_loc' for p in group]})")
    return present


def _coord(ds: Any, name: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(ds[name].values)
    except Exception as exc:  # noqa: BLE001
        raise DataError(path, f"coordinate {name!r} unreadable ({exc})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
