"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """The networks under test are tiny: intra-op threads only add contention (on a loaded
    2-core machine two threads made a gradient step ~10× slower than one). Modules that train
    ask for it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
