"""`analysis.parallel`'s local pool: its workers do not outlive a parent that is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PARENT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    def task(folder):
        # a task of minutes: the worker is busy, not waiting for work, when its parent dies
        Path(folder, f"{os.getpid()}.pid").touch()
        time.sleep(300)

    if __name__ == "__main__":
        sys.path.insert(0, sys.argv[2])
        from analysis.parallel import run_tasks
        run_tasks(task, [sys.argv[1]] * 2, workers=2, progress=False)
""")


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(ROOT)])
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
        assert len(pids) == 2, "the pool's two workers did not start their tasks"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "workers outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
