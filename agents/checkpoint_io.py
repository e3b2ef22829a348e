"""Reading agent checkpoints as data, never as code (docs/untrusted_input.md).

A run directory may come from anywhere (a colleague, a download, a tampered copy), so every
loader of `agents` goes through these helpers:

- `read_settings(path)`: a JSON object, or `DataError(path, ...)`;
- `check_hidden_sizes`, `check_positive`: the settings a network is rebuilt from, bounded so that
  a tampered file cannot ask for a network that does not fit in memory;
- `read_weights(path)`: a torch file read with `torch.load(..., weights_only=True)` (tensors and
  plain containers only: torch's restricted unpickler refuses any other object, so nothing in the
  file can run), after a size check;
- `load_module_state(module, state, path, what)`: `load_state_dict(strict=True)`, a missing key or
  a wrong shape becoming one `CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from physiology_model.errors import DataError


class CheckpointError(DataError, ValueError):
    """A checkpoint that cannot be used as it is: a `DataError` (`"<path>: <problem>"`, printed
    by the CLI without a traceback) that is also a `ValueError`, as the loaders raised before."""


MAX_WEIGHTS_BYTES = 1 << 30
"""A checkpoint's weights file larger than this (1 GiB) is refused before it is read: the
project's networks are a few MB."""
MAX_LAYER_WIDTH = 8192
MAX_LAYERS = 16
MAX_FEATURES = 4096


def read_settings(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`; a missing, unreadable or non-object file is a `DataError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "is missing: not a saved checkpoint")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise CheckpointError(path, f"expected a JSON object, found {type(value).__name__}")
    return value


def required_field(settings: Mapping[str, Any], name: str, kind: type | tuple[type, ...],
          path: str | Path) -> Any:
    """`settings[name]`, which must be present and of `kind` (bool is not an int here)."""
    if name not in settings:
        raise CheckpointError(path, f"field {name!r} is missing")
    value = settings[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise CheckpointError(path, f"field {name!r} must be {names}, found {type(value).__name__} "
                              f"{_short(value)}")
    return value


def check_hidden_sizes(value: Any, path: str | Path, name: str = "hidden_sizes"
                       ) -> tuple[int, ...]:
    """Hidden layer widths: 1 to `MAX_LAYERS` integers in [1, `MAX_LAYER_WIDTH`]."""
    if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_LAYERS
            or not all(isinstance(w, int) and not isinstance(w, bool)
                       and 1 <= w <= MAX_LAYER_WIDTH for w in value)):
        raise CheckpointError(path, f"field {name!r} must be 1 to {MAX_LAYERS} layer widths "
                                    f"between 1 and {MAX_LAYER_WIDTH}, found {_short(value)}")
    return tuple(int(w) for w in value)


def check_count(value: Any, path: str | Path, name: str, expected: int | None = None,
                limit: int = MAX_FEATURES) -> int:
    """A positive integer ≤ `limit` (equal to `expected` when given)."""
    if (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit
            or (expected is not None and value != expected)):
        want = f"{expected}" if expected is not None else f"an integer between 1 and {limit}"
        raise CheckpointError(path, f"field {name!r} must be {want}, found {_short(value)}")
    return int(value)


def check_positive(value: Any, path: str | Path, name: str) -> float:
    """A finite number > 0."""
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not 0 < float(value) < float("inf")):
        raise CheckpointError(path, f"field {name!r} must be a number > 0, found {_short(value)}")
    return float(value)


def read_weights(path: str | Path, device: torch.device | str = "cpu") -> Any:
    """A torch file of tensors (a `state_dict` or a dict of them), read with
    `weights_only=True`; anything torch's restricted unpickler refuses (an object that would
    run code when built), a truncated file or one over `MAX_WEIGHTS_BYTES` is a `DataError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "is missing: not a saved checkpoint")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(path, f"{size / 2**20:.0f} MB of weights, more than the "
                              f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MB a checkpoint of this project "
                              f"can hold: refused")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        raise CheckpointError(path, f"holds something other than tensors, not loaded (torch's "
                              f"weights-only reader: {first[:200]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, TypeError, IndexError) as exc:
        raise CheckpointError(path, f"not a readable torch weights file "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None


def tensor_dict(value: Any, path: str | Path, what: str = "the weights") -> dict[str, Any]:
    """`value` as a dict whose keys are strings and whose values are tensors."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        raise CheckpointError(path, f"{what} must be a dict of named tensors, found "
                              f"{type(value).__name__}")
    return value


def load_module_state(module: torch.nn.Module, state: Any, path: str | Path,
                      what: str) -> None:
    """`module.load_state_dict(state, strict=True)`; missing or extra keys, wrong shapes and
    non-finite values are one `DataError` naming the file."""
    state = tensor_dict(state, path, what)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(path, f"{what}: {bad[0]!r} holds NaN or infinite values")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) if len(lines) > 1 else (lines[0] if lines else "")
        raise CheckpointError(path, f"{what} do not fit the network its settings describe "
                              f"({detail[:300]})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
