"""The one error type users see for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Input data that cannot be read as it is. `str()` is `"<path>: <problem>"`.

    The CLI prints it and exits non-zero, with no traceback.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
