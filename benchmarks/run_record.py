"""What a benchmark's JSON says about the machine it ran on, in one place for every benchmark.

The machines are shared and noisy (README: compare against a baseline of the same run), so each
record carries the CPU count, the platform, the Python version and the load averages around
the measurement. Imported by the scripts beside it (`from run_record import ...`: a script's own
folder is first on `sys.path`).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_record(**extra: Any) -> dict[str, Any]:
    """CPU count, platform and Python version, then `extra` (e.g. torch's version)."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **extra}


def write_result(path: str | Path, benchmark: str, config: dict[str, Any],
                 fields: dict[str, Any], **dumps: Any) -> None:
    """Write `{"benchmark", "config", "machine": machine_record(), **fields}` as indented JSON
    to `path` (its folder made if missing; `dumps`: more `json.dumps` options) and say where."""
    record = {"benchmark": benchmark, "config": config, "machine": machine_record(), **fields}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=1, **dumps) + "\n", encoding="utf-8")
    print(f"wrote {path}")
