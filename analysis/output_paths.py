"""Checks on a command's `--out` before any work is done, so that a path that cannot be written
is one clear error naming it (not a traceback after minutes of fitting)."""

from __future__ import annotations

import os
from pathlib import Path

from physiology_model.errors import DataError


def check_output_path(path: str | Path, kind: str) -> None:
    """`path` can be written as a `kind` ("file" or "dir"): a file must not be an existing
    directory, a directory must not be an existing file, no existing parent may be a file, and
    the nearest existing folder must be writable. Raises `DataError` naming the path."""
    p = Path(path)
    if str(path).strip() == "":
        raise DataError("--out", "empty path")
    if p.exists():
        if kind == "file" and p.is_dir():
            raise DataError(p, "is a directory; --out takes a file name here")
        if kind == "dir" and not p.is_dir():
            raise DataError(p, "is a file; --out takes a directory here")
    parent = p.parent if not p.exists() or kind == "file" else p
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise DataError(p, f"cannot be created: {ancestor} is a file, not a folder")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise DataError(p, f"cannot be written: no write permission in {ancestor}")
            break
    if p.exists() and kind == "file" and not os.access(p, os.W_OK):
        raise DataError(p, "cannot be written: the file is read-only")
