"""What a benchmark's JSON says about the machine it ran on, in one place for every benchmark.

The machines are shared and noisy (README: compare against a baseline of the same run), so each
record carries the CPU count, the platform, the Python version and the load averages around
the measurement. Imported by the scripts beside it (`from run_record import ...`: a script's own
folder is first on `sys.path`).
"""

from __future__ import annotations

import os
import platform
from typing import Any


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_record(**extra: Any) -> dict[str, Any]:
    """CPU count, platform and Python version, then `extra` (e.g. torch's version)."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **extra}
