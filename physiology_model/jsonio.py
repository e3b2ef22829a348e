"""JSON for everything the project writes: one conversion of nested results to JSON values,
and one record of the library versions a file was made with."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np


def jsonable(value: Any, *, strict: bool = False) -> Any:
    """`value` as JSON values: dataclasses as dicts (keys as str), tuples as lists, numpy
    scalars and arrays as numbers and lists, anything else unknown as its str. `strict`:
    non-finite floats become None (strict JSON has no NaN or infinity)."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value), strict=strict)
    if isinstance(value, dict):
        return {str(k): jsonable(v, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, strict=strict) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), strict=strict)
    if isinstance(value, np.generic):
        return jsonable(value.item(), strict=strict)
    if isinstance(value, float):
        return None if strict and not math.isfinite(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """The Python version and the installed version of each of `packages` ("not installed")."""
    out = {"python": platform.python_version()}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out
