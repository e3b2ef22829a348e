"""The canonical daily table itself, as CSV or parquet (what `periodize data build` writes).

A CSV needs a `date` column and a majority of canonical columns (see `table.ALL_COLUMNS`);
`user_id` is optional and defaults to the folder name. Columns that are not canonical are an
error, so that a misspelt column is never silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from physiology_model.data.loaders._io import header_of, read_csv, to_local_date, to_numbers
from physiology_model.data.table import ALL_COLUMNS, CATEGORICAL_COLUMNS, NUMERIC_COLUMNS, NoteLog
from physiology_model.errors import DataError


class CanonicalLoader:
    source = "canonical"

    def claims(self, path: Path) -> bool:
        if path.suffix.lower() == ".parquet":
            return True
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            return False
        header = header_of(path)
        # Most columns canonical: a file in another format that merely has a `date` column is not
        # claimed, while a canonical file with a misspelt column is, and gets a clear error.
        canonical = sum(c in ALL_COLUMNS for c in header)
        return "date" in header and canonical * 2 > len(header)

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        frames = []
        for path in files:
            if path.suffix.lower() == ".parquet":
                try:
                    frame = pd.read_parquet(path)
                except Exception as exc:  # pyarrow raises several unrelated types
                    raise DataError(path, f"not a readable parquet file ({exc})") from None
                for name in CATEGORICAL_COLUMNS:  # (read_csv's cells are text or None already)
                    if name in frame.columns:
                        frame[name] = frame[name].where(frame[name].notna(), None)
            else:
                frame = read_csv(path, log)
                unknown = [c for c in frame.columns if c not in ALL_COLUMNS]
                if unknown:
                    raise DataError(path, f"columns {unknown} are not canonical daily-table "
                                          f"columns (see physiology_model.data.table)")
                frame["date"] = to_local_date(frame, "date", path, log)
                numeric = [name for name in NUMERIC_COLUMNS if name in frame.columns]
                for name, values in to_numbers(frame, numeric, path).items():
                    frame[name] = values
            if "user_id" not in frame.columns:
                frame.insert(0, "user_id", user_hint)
            if "source" not in frame.columns or frame["source"].isna().all():
                frame["source"] = self.source
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


LOADER = CanonicalLoader()
