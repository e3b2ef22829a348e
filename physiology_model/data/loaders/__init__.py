"""Every wearable export format → one canonical `DailyTable`.

A *loader* reads one export format. It says which files it recognises (`claims`, from the file
name and header only) and turns the recognised files of one folder into daily rows
(`load`). `load_exports` walks the paths it is given, hands each folder's files to the first
loader that claims them, validates each loader's output (`table.validate_frame`) and derives the
load columns (`load.derive_load_columns`). Anything not recognised is reported as an `ignored`
note; a path with nothing readable at all is a `DataError`.

Loaders are tried in `LOADERS` order: specific formats first, the canonical CSV last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import pandas as pd

from physiology_model.data.load import (
    StrainCalibration,
    derive_load_columns,
    fit_strain_calibration,
)
from physiology_model.data.loaders._people import check_gaps
from physiology_model.data.table import DailyTable, NoteLog, athlete_rows, validate_frame
from physiology_model.errors import DataError


class Loader(Protocol):
    """One export format."""

    source: str
    """Short name of the device/dataset, written to the `source` column."""

    def claims(self, path: Path) -> bool:
        """Whether this file belongs to this format (look at the name and header only)."""

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        """Daily rows (`user_id`, `date`, canonical columns) from one folder's claimed files.

        `user_hint` is the folder's name, the user id for single-person exports. Raise
        `DataError` for anything that cannot be read; record repairs in `log`.
        """


def _registry() -> list[Loader]:
    # Imported here so that each loader module can import this package's helpers.
    from physiology_model.data.loaders import canonical

    loaders: list[Loader] = []
    for module_name in (
        "whoop",
        "whoop_api",
        "lifesnaps",
        "pmdata",
        "oura",
        "garmin_connect",
        "garmin",
        "couzens",
        "goldencheetah",
        "trainingpeaks",
        "welltory",
        "intervals_icu",
        "section11",
        "strava",
        "apple_health",
        "fit",
    ):
        try:
            module = __import__(f"physiology_model.data.loaders.{module_name}", fromlist=["LOADER"])
        except ModuleNotFoundError as exc:
            if exc.name != f"physiology_model.data.loaders.{module_name}":
                raise
            continue
        loaders.append(module.LOADER)
    loaders.append(canonical.LOADER)
    return loaders


SKIP_NAMES = {"manifest.csv", "readme.md", "license", "license.txt", ".ds_store"}


def _folders(path: Path) -> Iterable[tuple[Path, list[Path]]]:
    """(folder, files) for a file or every folder under a directory, sorted, hidden skipped."""
    if path.is_file():
        yield path.parent, [path]
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        chosen = sorted(
            Path(root) / f for f in files
            if not f.startswith(".") and f.lower() not in SKIP_NAMES
        )
        if chosen:
            yield Path(root), chosen


def _why_unrecognised(path: Path) -> str:
    """Why no loader claimed a file, in words for the user."""
    from physiology_model.data.loaders._io import header_of, looks_like_html, utf16_encoding

    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head.strip():
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return (f"a zip archive inside a folder: give the zip itself as the path "
                f"(e.g. `periodize data summary {path}`)")
    if b"\x00" in head and utf16_encoding(head) is None:
        return "binary file, not text: no recognised export format"
    if looks_like_html(head.decode("utf-8", errors="replace")):
        return ("an HTML page (a login or error page saved under this name?), not an export: "
                "download the export again")
    columns = header_of(path)
    shown = ", ".join(columns[:6]) + (", ..." if len(columns) > 6 else "")
    return (f"no recognised export format (header: {shown}); known: WHOOP, WHOOP API, "
            f"Fitbit/LifeSnaps, PMData, Oura, Garmin, Couzens, GoldenCheetah, TrainingPeaks, "
            f"Welltory, intervals.icu, Section 11 JSON, Garmin Connect CSV, Strava, Apple "
            f"Health, FIT, or the canonical daily CSV")


def _why_no_rows(loader: Loader, files: list[Path]) -> str:
    """Why files a loader claimed gave no daily rows: the loader's own words
    (`Loader.why_no_rows`, optional) or a generic line naming the format."""
    explain = getattr(loader, "why_no_rows", None)
    why = explain(files) if explain is not None else None
    return why or f"recognised as {loader.source} export file(s), but they hold no daily rows"


def _channel_rules(frame: pd.DataFrame, log: NoteLog, owner: dict[str, str]) -> pd.DataFrame:
    """Stuck readings set to missing (`_stuck`), then the SDNN stand-in for SDNN-only athletes
    and the HRV artefact filter (`_hrv`)."""
    from physiology_model.data.loaders._hrv import filter_hrv_artefacts, sdnn_stand_in
    from physiology_model.data.loaders._stuck import blank_stuck_runs

    frame = sdnn_stand_in(blank_stuck_runs(frame, log, owner), log, owner)
    return validate_frame(filter_hrv_artefacts(frame, log, owner), "(combined)", log)


def _named(path: str, where: dict[str, str]) -> str:
    """`path` with an unpacked zip's temporary folder replaced by the zip's own path."""
    for tmp, original in where.items():
        if str(path).startswith(tmp):
            return original + str(path)[len(tmp):]
    return str(path)


KEY_ROLES = ("cycles",)
"""Files without which an export silently loses its physiology (WHOOP: the cycles file holds
recovery, HRV and resting HR)."""


def _refuse_unread_key_files(groups: dict[int, list[Path]], ignored: list[tuple[Path, str]],
                             loaders: Sequence[Loader]) -> None:
    """A file of this folder that no loader could read, whose name says it is the key file of
    an export that was read here (`Loader.names_file`), is an error naming it: reading the rest
    would give a table without that file's data and no word about why."""
    for f, why in ignored:
        for index in groups:
            names_file = getattr(loaders[index], "names_file", None)
            role = names_file(f) if names_file is not None else None
            if role in KEY_ROLES:
                raise DataError(f, f"{why}. It looks like the {loaders[index].source} export's "
                                   f"{role} file, which holds its recovery, HRV and resting "
                                   f"HR: fix or replace it (the export's other files were "
                                   f"found)")


DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".xml")
"""Names of files that hold an export's data: one of these that cannot be read is a damaged
export file, not an unrelated one (a photo, a PDF)."""
DAMAGE = ("the file is empty", "binary file", "an HTML page", "cannot be read")
"""How `_why_unrecognised` starts for a file that is damaged rather than of another format."""
ACTIVITY_ONLY_SOURCES = frozenset({"strava", "fit", "trainingpeaks"})
"""Exports that never hold HRV or resting heart rate: their tables lack them by nature."""


def _damaged(path: Path, why: str) -> bool:
    return path.suffix.lower() in DATA_SUFFIXES and why.startswith(DAMAGE)


def _refuse_or_name_damaged(here: list[tuple[Path, str]], read_here: list[tuple[str, pd.DataFrame]],
                            log: NoteLog) -> None:
    """The files of one folder that no loader read, after the folder's exports were read.

    A damaged data file (`_damaged`: empty, binary, an HTML page, unreadable) next to an export
    that was read may be that export's key file, whatever the format and whatever its name.
    When the rows read from the folder lack HRV or resting heart rate altogether (and the
    export is not one that never has them, `ACTIVITY_ONLY_SOURCES`), it is an error naming the
    file: the missing readings may be in it, and a plan would fill them with population
    defaults. When both are there, the table is usable and the file is an `ignored` note that
    says the table was built without it (`data build` and `data summary` print it as a
    warning; plans list it). Other unread files are `ignored` notes."""
    damaged = [(f, why) for f, why in here if _damaged(f, why)] if read_here else []
    if damaged:
        sources = sorted({source for source, _ in read_here})

        def has(*columns: str) -> bool:
            return any(column in frame.columns and frame[column].notna().any()
                       for _, frame in read_here for column in columns)

        lacking = [name for name, present in (("HRV", has("hrv_rmssd_ms", "hrv_sdnn_ms")),
                                              ("resting heart rate", has("rhr_bpm")))
                   if not present]
        if lacking and not set(sources) <= ACTIVITY_ONLY_SOURCES:
            f, why = damaged[0]
            others = (f" (and {', '.join(g.name for g, _ in damaged[1:])})"
                      if len(damaged) > 1 else "")
            raise DataError(f, f"{why}{others}. The {' and '.join(sources)} export read from "
                               f"this folder has no {' and no '.join(lacking)} without it, so "
                               f"this may be the file that holds them: fix or replace it (or "
                               f"move it out of the folder if it is not part of the export)")
    for f, why in here:
        if (f, why) in damaged:
            why = (f"{why}; not read, so the table from this folder was built without this file "
                   f"(if it is part of the export, what it held is missing)")
        log.add(f, "ignored", why)


def load_exports(paths: Sequence[str | Path], *, loaders: Sequence[Loader] | None = None) -> DailyTable:
    """Read every recognised export under `paths` into one validated `DailyTable`.

    Raises `DataError` naming the file and the problem for unreadable input, for a path that
    does not exist, and for a path under which no file is recognised.
    """
    from physiology_model.data.loaders._zip import is_zip, unpacked

    loaders = list(loaders) if loaders is not None else _registry()

    def to_unpack(path: Path) -> bool:  # a zip no loader reads as it is (Apple Health's does)
        return is_zip(path) and not any(loader.claims(path) for loader in loaders)

    if any(to_unpack(Path(p)) for p in paths):
        # an export as delivered (a zip): read its unpacked copy, naming the zip throughout
        with contextlib.ExitStack() as stack:
            where: dict[str, str] = {}
            unzipped = []
            for p in paths:
                if to_unpack(Path(p)):
                    folder = stack.enter_context(unpacked(Path(p)))
                    where[str(folder)] = str(p)
                    unzipped.append(folder)
                else:
                    unzipped.append(p)
            try:
                table = load_exports(unzipped, loaders=loaders)
            except DataError as exc:
                raise DataError(_named(exc.path, where), exc.problem) from None
            notes = tuple(dataclasses.replace(n, path=_named(n.path, where))
                          for n in table.notes)
            origins = tuple((u, _named(w, where)) for u, w in table.origins)
            return DailyTable(table.frame, notes, origins)
    log = NoteLog()
    frames: list[pd.DataFrame] = []
    owner: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(path, "no such file or directory")
        read_any = False
        ignored: list[tuple[Path, str]] = []
        without_rows: list[tuple[list[Path], str]] = []
        for folder, files in _folders(path):
            groups: dict[int, list[Path]] = {}
            here: list[tuple[Path, str]] = []
            for f in files:
                index = next((i for i, ld in enumerate(loaders) if ld.claims(f)), None)
                if index is None:
                    here.append((f, _why_unrecognised(f)))
                else:
                    groups.setdefault(index, []).append(f)
            ignored.extend(here)
            _refuse_unread_key_files(groups, here, loaders)
            read_here: list[tuple[str, pd.DataFrame]] = []
            for index, claimed in sorted(groups.items()):
                loader = loaders[index]
                where = claimed[0] if len(claimed) == 1 else folder
                frame = loader.load(claimed, folder.name, log)
                if frame is None or len(frame) == 0:
                    log.add(where, "info", f"{loader.source}: no daily rows")
                    without_rows.append((claimed, _why_no_rows(loader, claimed)))
                    continue
                frame = frame.copy()
                if "source" not in frame.columns:
                    frame["source"] = loader.source
                frame = validate_frame(frame, where, log)
                frame = validate_frame(derive_load_columns(frame, log, str(where)), where, log)
                for _, rows in athlete_rows(frame):  # two people's histories one after the other
                    check_gaps(frame.iloc[rows], where)
                for uid in frame["user_id"].unique():
                    if uid in owner and owner[uid] != str(where):
                        raise DataError(where, f"user {uid!r} was already read from {owner[uid]}; "
                                               f"give each person's export its own folder")
                    owner[uid] = str(where)
                frames.append(frame)
                read_here.append((loader.source, frame))
                read_any = True
            _refuse_or_name_damaged(here, read_here, log)
        if not read_any:
            if len(ignored) == 1 and not without_rows:
                raise DataError(ignored[0][0], ignored[0][1])
            reasons = [(", ".join(f.name for f in claimed), why)
                       for claimed, why in without_rows]
            reasons += [(f.name, why) for f, why in ignored]
            listed = "; ".join(f"{name}: {why}" for name, why in reasons[:5])
            more = f"; and {len(reasons) - 5} more" if len(reasons) > 5 else ""
            if not reasons:
                raise DataError(path, "no files here (hidden files and README/LICENSE/MANIFEST "
                                      "files are not read)")
            what = ("no daily rows from the files found here" if not ignored
                    else "no recognised export file found here")
            raise DataError(path, f"{what} ({listed}{more})")
    frame = pd.concat(frames, ignore_index=True) if frames else None
    if frame is None:
        raise DataError(", ".join(map(str, paths)) or "(no paths)", "nothing to read")
    frame = validate_frame(frame, "(combined)", log)
    frame = _channel_rules(frame, log, owner)
    return DailyTable(frame, tuple(log.notes), tuple(sorted(owner.items())))


def calibrate_strain(paths: Sequence[str | Path]) -> StrainCalibration:
    """Read the exports under `paths` and fit the strain calibration on them
    (`periodize data calibrate`)."""
    table = load_exports(paths)
    calibration = fit_strain_calibration(table.frame, where=", ".join(map(str, paths)))
    return replace(calibration, data_paths=tuple(str(p) for p in paths))
