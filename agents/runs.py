"""Run records: the `run.json` every trained run directory carries (settings, seeds, versions),
written atomically as plain JSON (DESIGN §8, §10: a run directory is data, read back without
unpickling anything)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from physiology_model.jsonio import jsonable, package_versions

RUN_FORMAT = "adaptive-periodization.TrainingRun"


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
    """The versions a run's `run.json` records."""
    return package_versions(("numpy", "torch", "gymnasium", "stable-baselines3", "sb3-contrib"))


def stale_settings(run_dir: Path, wanted: dict[str, Any]) -> list[str] | None:
    """How a run directory's record differs from the settings `wanted` (JSON values, as the
    record keeps them): None when it holds no `run.json`; else the keys of `wanted` whose
    recorded values differ, with "unfinished" first when the run did not finish (or its
    record cannot be read). An empty list: a finished run of these settings, reusable."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return ["unfinished"]
    if not isinstance(record, dict):
        return ["unfinished"]
    stale = sorted(k for k, v in wanted.items() if record.get(k) != v)
    return stale if record.get("status") == "finished" else ["unfinished", *stale]
