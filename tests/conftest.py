"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "real"


@pytest.fixture(scope="module")
def one_torch_thread():
    """The networks under test are tiny: intra-op threads only add contention (on a loaded
    2-core machine two threads made a gradient step ~10× slower than one). Modules that train
    ask for it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    """The shipped world model, loaded once per test module: a module may change it (the
    planner's belief model, patched methods), so no two modules share one."""
    from physiology_model.model.world_model import WorldModel

    return WorldModel.load(Path(__file__).resolve().parents[1] / "models" / "shipped")


@pytest.fixture
def one_error(capsys):
    """`one_error()` → the one line a command printed to stderr, asserting that it printed
    exactly one line and no traceback (the project's rule for bad input)."""

    def read() -> str:
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        return lines[0]

    return read


@pytest.fixture(scope="session")
def shipped_table():
    """Every shipped export (`load_exports([data/real])`, the longest read in the suite: about
    30 s on a quiet 2-core machine), read once for the modules that need all of it or a part
    of it (test_shipped_data, test_stuck_readings, test_hazard). Shared: never change it; a
    part taken with a boolean mask is a copy."""
    from physiology_model.data.loaders import load_exports

    return load_exports([SHIPPED])
