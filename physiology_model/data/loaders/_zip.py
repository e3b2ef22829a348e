"""An export delivered as a zip (WHOOP sends `my_whoop_data_<date>.zip`), read without trusting
it: members are copied out in chunks into a private temporary folder, with limits on their
number and their real (not declared) sizes, and no member may land outside that folder.

`unpacked(path)` is a context manager giving the folder to read (named after the zip, so that a
single-person export keeps its name as the user hint); `load_exports` reads it like any folder
and writes the zip's path in every note and error instead of the temporary one.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from physiology_model.errors import DataError

MAX_MEMBERS = 5000
MAX_TOTAL_BYTES = 4 << 30
"""Most bytes a zip may unpack to (4 GiB), counted as they are written."""
MAX_RATIO = 200
"""A member that unpacks to more than this many times its compressed size (and over 1 MiB) is
refused: a zip bomb, not an export (CSV compresses about 5-20x)."""


def is_zip(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".zip"


@contextlib.contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """The zip's members in a temporary folder `<tmp>/<zip stem>` (removed afterwards)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(path, f"not a readable zip file ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="periodize-zip-") as tmp:
        root = Path(tmp) / (path.stem or "export")
        root.mkdir()
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise DataError(path, f"{len(infos)} members; an export has far fewer than "
                                  f"{MAX_MEMBERS}: refused")
        total = 0
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir() or name.parts[:1] == ("__MACOSX",) or name.name.startswith("."):
                continue
            if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & (
                    stat.S_IFLNK) == stat.S_IFLNK:
                raise DataError(path, f"member {info.filename!r} points outside the archive "
                                      f"(absolute path, '..' or a link): refused")
            target = root.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with archive.open(info) as src, target.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        total += len(chunk)
                        if written > (1 << 20) and written > MAX_RATIO * max(
                                info.compress_size, 1):
                            raise DataError(path, f"member {info.filename!r} unpacks to more "
                                                  f"than {MAX_RATIO}x its packed size: "
                                                  f"refused (a zip bomb?)")
                        if total > MAX_TOTAL_BYTES:
                            raise DataError(path, f"unpacks to more than "
                                                  f"{MAX_TOTAL_BYTES >> 30} GiB: refused")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                    NotImplementedError, RuntimeError) as exc:
                raise DataError(path, f"member {info.filename!r} cannot be unpacked "
                                      f"({exc})") from None
        yield root
        shutil.rmtree(root, ignore_errors=True)
