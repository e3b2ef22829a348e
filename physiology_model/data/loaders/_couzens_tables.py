"""Which CSV files are Couzens tables, read from their headers alone: shared by the Couzens
loader and the TrainingPeaks loader (a TrainingPeaks export next to a Couzens table is his)."""

from __future__ import annotations

from pathlib import Path

from physiology_model.data.loaders._io import header_of

HR_ZONE_COLUMNS: tuple[str, ...] = tuple(f"HRZone{i}Minutes" for i in range(1, 8))

DAILY_SIGNATURE = frozenset({"CTL", "TSB", "RMSSD", "RHR_lying", "SLEEP", "MOOD", "MOTIVATION"})
PERFORMANCE_SIGNATURE = frozenset({"CTL", "TSB", "TSS", "Run EF", "RMSSD", *HR_ZONE_COLUMNS})

DATE_COLUMN_NAMES = frozenset({"", "date", "Date"})
"""Accepted names of the first (date) column: unnamed as shipped, or named after a re-save."""

MODEL, OPTIMIZATION, PERFORMANCE = "model", "optimization", "performance"


def table_role(path: Path) -> str | None:
    """`model`, `optimization` or `performance` for a Couzens table, else None (header only)."""
    if path.suffix.lower() != ".csv":
        return None
    header = header_of(path)
    # the tables were written by pandas with the date index in a first, unnamed column
    if not header or header[0] not in DATE_COLUMN_NAMES:
        return None
    columns = set(header)
    if PERFORMANCE_SIGNATURE <= columns:
        return PERFORMANCE
    if DAILY_SIGNATURE <= columns:
        return OPTIMIZATION if "TSS" in columns else MODEL
    return None


def is_couzens_folder(folder: Path) -> bool:
    """Whether `folder` holds a Couzens table (so a TrainingPeaks export there is his)."""
    try:
        candidates = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return False
    return any(table_role(p) is not None for p in candidates)
