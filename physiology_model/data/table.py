"""The canonical daily table (DESIGN §3): one row per (user_id, date), units in the column names.

`date` is the local calendar day of waking. Physiology in a row was measured in the sleep that
ended that morning, before that day's training; load in a row is the training done during that
day. Missing is NaN, never 0.

Every loader produces a frame with `user_id`, `date` and any subset of the value columns below;
`validate_frame` then enforces types, physiological ranges and unique sorted keys, and records
every repair it makes as a `Note` (nothing is dropped silently).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.errors import DataError

ACTIONS: tuple[str, ...] = (
    "rest",
    "active_recovery",
    "z2_aerobic",
    "tempo_threshold",
    "hiit",
    "strength",
)
"""The six training actions (seed §2.2), in action-index order."""

N_ACTIONS = len(ACTIONS)

SESSIONS: tuple[str, ...] = ACTIONS + ("unknown",)
"""Values of the `session` column: an action name, or `unknown` when the source cannot tell."""


@dataclass(frozen=True)
class Column:
    """One value column of the daily table."""

    unit: str
    """Physical unit, or a description of the scale."""
    lo: float = -np.inf
    """Lowest physiologically possible value (inclusive)."""
    hi: float = np.inf
    """Highest physiologically possible value (inclusive)."""
    description: str = ""
    typical_median: tuple[float, float] | None = None
    """Range that the median of one file's values must fall in; outside it the column is in
    another unit (HRV in seconds, sleep in hours, a 0-1 ratio for a percentage)."""
    unit_hint: str = ""
    """What a median outside `typical_median` usually means, for the error message."""


# Ranges are the limits of what a living, measuring adult can show, not normal ranges: a value
# outside them is a sensor or unit error. Sources: nocturnal RMSSD in adults spans roughly 5-250 ms
# (Nunan et al. 2010, Pacing Clin Electrophysiol 33:1407; Shaffer & Ginsberg 2017); resting HR
# below 25 or above 120 bpm is not a resting value of a healthy person.
NUMERIC_COLUMNS: dict[str, Column] = {
    "hrv_rmssd_ms": Column("ms", 3.0, 300.0, "nightly (or morning) RMSSD", (8.0, 250.0),
                           "HRV in seconds? expected milliseconds"),
    # SDNN is another HRV statistic (overall variability, RMSSD only the beat-to-beat part):
    # nightly SDNN runs about 1.2-1.6x RMSSD in the same recording. It is kept apart so that no
    # RMSSD series silently mixes the two; see loaders/_hrv.py for how an SDNN-only athlete enters.
    "hrv_sdnn_ms": Column("ms", 3.0, 400.0, "nightly (or morning) SDNN, where the source gives it",
                          (8.0, 300.0), "HRV in seconds? expected milliseconds"),
    "rhr_bpm": Column("bpm", 25.0, 120.0, "resting heart rate"),
    "recovery_pct": Column("%", 0.0, 100.0, "device recovery/readiness score, 0-100", (1.5, 100.0),
                           "a 0-1 ratio? expected percent"),
    "sleep_min": Column("min", 0.0, 1200.0, "time asleep in the main sleep(s) of the night",
                        (60.0, 900.0), "sleep in hours? expected minutes"),
    "sleep_efficiency_pct": Column("%", 0.0, 100.0, "asleep / in bed", (1.5, 100.0),
                                   "a 0-1 ratio? expected percent"),
    "rem_pct": Column("%", 0.0, 100.0, "REM share of time asleep"),
    "deep_pct": Column("%", 0.0, 100.0, "deep (SWS) share of time asleep"),
    "resp_rate_rpm": Column("breaths/min", 4.0, 40.0, "sleeping respiratory rate"),
    "skin_temp_c": Column("°C", 25.0, 42.0, "absolute skin temperature during sleep"),
    "skin_temp_dev_c": Column("°C", -5.0, 5.0, "skin temperature deviation from personal baseline"),
    "spo2_pct": Column("%", 70.0, 100.0, "sleeping blood oxygen saturation", (80.0, 100.0),
                       "a 0-1 ratio? expected percent"),
    # An Ironman day (9-17 h, mostly zones 2-3) reaches 2,000-3,000 TRIMP; Couzens' logs it.
    "load_trimp": Column("TRIMP", 0.0, 4000.0, "Edwards TRIMP-equivalent training load (DESIGN §4)"),
    "strain": Column("WHOOP strain 0-21", 0.0, 21.0, "WHOOP day strain"),
    "z1_min": Column("min", 0.0, 1440.0, "minutes in HR zone 1"),
    "z2_min": Column("min", 0.0, 1440.0, "minutes in HR zone 2"),
    "z3_min": Column("min", 0.0, 1440.0, "minutes in HR zone 3"),
    "z4_min": Column("min", 0.0, 1440.0, "minutes in HR zone 4"),
    "z5_min": Column("min", 0.0, 1440.0, "minutes in HR zone 5"),
    "strength_min": Column("min", 0.0, 1440.0, "minutes of resistance training"),
    "injury": Column("0/1", 0.0, 1.0, "1 when the athlete reported an injury or illness that day"),
    "readiness_self": Column("0-10", 0.0, 10.0, "self-reported readiness, rescaled to 0-10"),
    "age": Column("years", 10.0, 100.0, "age (mid-point of a band where only a band is known)"),
}

CATEGORICAL_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "session": SESSIONS,
    "sex": ("female", "male"),
    "source": None,  # free text: the device/dataset, e.g. "whoop", "lifesnaps"
    "load_basis": None,  # how load_trimp was derived, e.g. "hr_zones", "strain_calibrated", "srpe"
}

KEY_COLUMNS: tuple[str, ...] = ("user_id", "date")
ALL_COLUMNS: tuple[str, ...] = KEY_COLUMNS + tuple(NUMERIC_COLUMNS) + tuple(CATEGORICAL_COLUMNS)

# If more than this share of a column's values in one file fall outside the physiological range,
# the column is almost surely in the wrong unit (HRV in seconds, a 0-1 ratio for a percentage):
# refuse the file rather than blank most of it.
WRONG_UNIT_SHARE = 0.5


@dataclass(frozen=True)
class Note:
    """One thing the loaders did to the data that a user should know about."""

    path: str
    """The file (or directory) the note is about."""
    kind: str
    """`repair` (a value was changed or blanked), `ignored` (a file was not read), `warning`
    (read, but possibly wrong: e.g. two files merged as one person's), or `info`."""
    message: str
    count: int = 0
    """How many values or rows the note covers (0 when not countable)."""

    def __str__(self) -> str:
        n = f" ({self.count})" if self.count else ""
        return f"{self.path}: {self.kind}: {self.message}{n}"


@dataclass
class NoteLog:
    """Collects notes while loading; passed explicitly, never global."""

    notes: list[Note] = field(default_factory=list)

    def add(self, path: str | Path, kind: str, message: str, count: int = 0) -> None:
        self.notes.append(Note(str(path), kind, message, int(count)))


def empty_frame() -> pd.DataFrame:
    """A daily table with every column and no rows."""
    return _empty_template().copy()


@lru_cache(maxsize=1)
def _empty_template() -> pd.DataFrame:
    """`empty_frame`, built once: `validate_frame` only reads it (building it took a sixth of
    a validation)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    for c in CATEGORICAL_COLUMNS:
        frame[c] = pd.Series(dtype="object")
    frame.insert(0, "date", pd.Series(dtype="datetime64[ns]"))
    frame.insert(0, "user_id", pd.Series(dtype="object"))
    return frame[list(ALL_COLUMNS)]


_TEXT = pd.api.types.pandas_dtype(str)
"""pandas' text dtype, which `astype(str)` gives."""
_NANOSECONDS = np.dtype("datetime64[ns]")


@lru_cache(maxsize=1)
def _template_dtypes() -> dict[str, object]:
    """Each column's dtype in `_empty_template`."""
    return dict(_empty_template().dtypes)


def _as_template(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column `name` of `frame` with the dtype the concatenation onto `_empty_template` gives
    it: the column itself when it has the template's dtype already, the same conversion for
    text (object) and for dates in another unit (nanoseconds), else that concatenation, of
    this column alone."""
    column = frame[name]
    target = _template_dtypes()[name]
    if column.dtype == target:
        return column
    if column.dtype == _TEXT:
        return column.astype(object)
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "M" and target.kind == "M":
        return column.astype(target)
    return pd.concat([_empty_template()[[name]], frame[[name]]], ignore_index=True)[name]


def validate_frame(frame: pd.DataFrame, path: str | Path, log: NoteLog) -> pd.DataFrame:
    """Check and normalise one loader's output into canonical columns, types and order.

    - unknown columns are an error (a loader bug, not a user problem);
    - `date` becomes a tz-naive midnight `datetime64[ns]`; rows without a date are an error;
    - numeric columns become float64; values outside the physiological range become NaN and are
      counted in a `repair` note, unless most of the column is outside it, which is a `DataError`
      naming the likely unit problem;
    - categorical values outside their allowed set are an error;
    - (user_id, date) must be unique: duplicates are an error here (loaders resolve duplicates
      they know how to, and say so);
    - rows are sorted by user_id, date.

    Returns a new frame; the input is not modified. Every column is checked and sorted as a
    plain array and the frame is built once at the end: a pandas operation per column and
    check cost most of a validation.
    """
    path = str(path)
    unknown = set(frame.columns) - set(ALL_COLUMNS)
    if unknown:
        raise ValueError(f"loader for {path} produced unknown columns {sorted(unknown)}")
    for key in KEY_COLUMNS:
        if key not in frame.columns:
            raise ValueError(f"loader for {path} produced no {key!r} column")
    n = len(frame)
    users = frame["user_id"]
    if users.dtype != _TEXT:  # text is already what the conversion below makes of it
        users = _as_template(frame, "user_id")
    if users.isna().any():
        raise DataError(path, "rows without a user id")
    users = users.astype(str)
    dates = _as_template(frame, "date")
    if dates.dtype != _NANOSECONDS:  # (to_datetime leaves such a column as it is)
        dates = pd.to_datetime(dates, errors="coerce")
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_localize(None)
    days = dates.to_numpy()
    if np.isnat(days).any():
        raise DataError(path, f"{int(np.isnat(days).sum())} rows have no readable date")
    if days.dtype == _NANOSECONDS:  # midnight, on the array (floors as pandas does)
        days = days.astype("datetime64[D]").astype(_NANOSECONDS)
    else:  # pandas' conversion refuses a date outside the datetime64[ns] range
        days = dates.dt.normalize().astype(_NANOSECONDS).to_numpy()

    columns: dict[str, np.ndarray] = {}
    for name, col in NUMERIC_COLUMNS.items():
        if name not in frame.columns:
            columns[name] = np.full(n, np.nan)
            continue
        column = _as_template(frame, name)
        if column.dtype != np.float64:  # a float column has no text to convert or refuse
            numbers = pd.to_numeric(column, errors="coerce").astype("float64")
            bad_text = column.notna() & numbers.isna()
            if bad_text.any():
                example = column[bad_text].iloc[0]
                raise DataError(path, f"column {name}: {int(bad_text.sum())} values are not "
                                      f"numbers (e.g. {example!r})")
            column = numbers
        values = column.to_numpy(dtype=np.float64, copy=True)
        finite = ~np.isnan(values)
        n_finite = int(finite.sum())
        if col.typical_median is not None and n_finite >= 3:
            median = float(np.median(values[finite]))
            lo, hi = col.typical_median
            if not lo <= median <= hi:
                raise DataError(path, f"column {name}: median {median:g} {col.unit} is not "
                                      f"plausible ({col.unit_hint})")
        outside = finite & ((values < col.lo) | (values > col.hi))
        n_out = int(outside.sum())
        if n_out:
            share = n_out / n_finite
            median = float(np.median(values[finite]))
            if share > WRONG_UNIT_SHARE and n_finite >= 3:
                raise DataError(
                    path,
                    f"column {name}: {n_out} of {n_finite} values outside the "
                    f"physiological range {col.lo:g}-{col.hi:g} {col.unit} (median {median:g}); "
                    f"the file is probably in another unit",
                )
            lo_ex = values[outside].min()
            hi_ex = values[outside].max()
            log.add(path, "repair",
                    f"{name}: values outside {col.lo:g}-{col.hi:g} {col.unit} set to missing "
                    f"(seen {lo_ex:g}..{hi_ex:g})", n_out)
            values[outside] = np.nan
        columns[name] = values

    for name, allowed in CATEGORICAL_COLUMNS.items():
        if name in frame.columns:
            values = _as_template(frame, name).to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
        else:
            values = np.full(n, None, dtype=object)
        if allowed is not None:
            bad = [v for v in values if v is not None and v not in allowed]
            if bad:
                raise ValueError(f"loader for {path} produced {name} values "
                                 f"{sorted(set(bad))}, allowed {allowed}")
        columns[name] = values

    # A load blanked above (or never known) has no basis.
    columns["load_basis"][np.isnan(columns["load_trimp"])] = None

    user_ids = users.to_numpy(dtype=object)
    _, user_codes = np.unique(user_ids, return_inverse=True)
    day_codes = days.view(np.int64)
    order = np.lexsort((day_codes, user_codes))  # stable: ties keep their order
    same_key = ((user_codes[order][1:] == user_codes[order][:-1])
                & (day_codes[order][1:] == day_codes[order][:-1]))
    dup_sorted = np.zeros(n, dtype=bool)
    dup_sorted[1:] |= same_key
    dup_sorted[:-1] |= same_key
    dup = np.empty(n, dtype=bool)
    dup[order] = dup_sorted
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise DataError(path, f"{int(dup.sum())} rows share a (user, date) key, "
                              f"e.g. {user_ids[first]} on {pd.Timestamp(days[first]):%Y-%m-%d}")

    data: dict[str, object] = {"user_id": users.array.take(order), "date": days[order]}
    for name in NUMERIC_COLUMNS:
        data[name] = columns[name][order]
    for name in CATEGORICAL_COLUMNS:
        # a Series keeps the object dtype (a bare object array of text would become `str`)
        data[name] = pd.Series(columns[name][order], dtype=object, copy=False)
    return pd.DataFrame(data)


def athlete_rows(frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(user id, positions of its rows in date order, ties in frame order) for each user of a
    validated frame, in the order of their first row (`groupby(sort=False)`'s order): the
    per-athlete rules index plain arrays with them instead of building a sub-frame each."""
    codes, users = pd.factorize(frame["user_id"])
    days = frame["date"].to_numpy().view(np.int64)
    order = np.lexsort((days, codes))  # stable
    order = order[codes[order] >= 0]  # no missing user ids in a validated frame; as groupby
    bounds = np.cumsum(np.bincount(codes[order], minlength=len(users)))[:-1]
    return list(zip(users, np.split(order, bounds)))


@dataclass(frozen=True)
class DailyTable:
    """A validated daily table plus the notes made while building it.

    `frame` has exactly the columns `ALL_COLUMNS`, sorted by (user_id, date), unique keys.
    """

    frame: pd.DataFrame
    notes: tuple[Note, ...] = ()
    origins: tuple[tuple[str, str], ...] = ()
    """(user_id, the file or folder its rows were read from), when the loaders know it."""

    @property
    def users(self) -> list[str]:
        return sorted(self.frame["user_id"].unique())

    def notes_for(self, user_id: str) -> list[Note]:
        """The notes about this athlete's files, and those about no athlete's in particular
        (not under any athlete's origin: ignored files, the combined table); every note when
        the origins are unknown."""
        def under(note: Note, origin: str) -> bool:
            path = Path(note.path)
            return path == Path(origin) or Path(origin) in path.parents

        mine = [o for u, o in self.origins if u == user_id]
        others = [o for u, o in self.origins if u != user_id]
        return [n for n in self.notes if any(under(n, o) for o in mine)
                or not any(under(n, o) for o in others)]

    def user(self, user_id: str) -> pd.DataFrame:
        """One athlete's rows, sorted by date."""
        return self.frame[self.frame["user_id"] == user_id].reset_index(drop=True)

    def to_parquet(self, path: str | Path) -> None:
        """Write the table atomically: either the whole file appears, or none."""
        atomic_write(Path(path), lambda tmp: self.frame.to_parquet(tmp, index=False))

    @classmethod
    def from_parquet(cls, path: str | Path) -> DailyTable:
        path = Path(path)
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataError(path, f"not a readable parquet daily table ({exc})") from None
        log = NoteLog()
        frame = validate_frame(frame, path, log)
        return cls(frame, tuple(log.notes))


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` and move the result onto `path`; on failure no file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
