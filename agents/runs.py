"""Run records: the `run.json` every trained run directory carries (settings, seeds, versions),
written atomically as plain JSON (DESIGN §8, §10: a run directory is data, read back without
unpickling anything)."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

RUN_FORMAT = "adaptive-periodization.TrainingRun"


def jsonable(value: Any) -> Any:
    """`value` as JSON values: dataclasses as dicts, tuples as lists, numpy scalars and arrays
    as numbers and lists, anything else as its str."""
    if is_dataclass(value):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    tmp.replace(path)


def write_run_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Write a finished run's `run.json` (format and library versions added; dataclasses and
    numpy values made JSON; atomic), for learners trained outside `train` (agents.distill)."""
    write_json(Path(run_dir) / "run.json",
                {"format": RUN_FORMAT, "status": "finished", **record, "versions": run_versions()})


def run_versions() -> dict[str, str]:
    import gymnasium
    import sb3_contrib
    import stable_baselines3

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "gymnasium": gymnasium.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__}
