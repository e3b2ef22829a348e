"""Robust reading of export files, shared by every loader.

Each helper either returns clean data or raises one `DataError` that names the file and the
problem. Documented repairs (each recorded as a `Note`):

- text that is not UTF-8 is decoded as cp1252 (Windows/Excel exports);
- a `;`-delimited file with decimal commas (German/European Excel) is read as such;
- a last line cut short (fewer fields than the header, no final newline) is dropped;
- rows that are exact duplicates of another row are dropped.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

READ_MEMORY_FACTOR = 30
"""Memory a whole-file read (`read_text`: JSON, Markdown, the WHOOP-API CSV) takes per byte of
file; only those reads are refused from the file's size alone (CSV tables are streamed, see
`read_csv`). Measured for the old whole-file CSV read: 28.3 bytes per byte between a 1.9 and an
8 MB WHOOP cycles file; `benchmarks/read_memory.py` measures both paths."""

KEPT_MEMORY_FACTOR = 3.0
"""Memory the loaders need per byte of the string cells `read_csv` keeps (pandas' deep size of
the frame it returns): the frame itself, the typed columns and the temporaries of their
conversion. Measured: a 50 MB canonical CSV of distinct rows keeps 448 MB of cells (Python
strings take about 9 bytes per byte of text) and `data build` peaks at 1,006 MB, about 180 MB
of it the interpreter: 1.9x the kept cells (`benchmarks/read_memory.py`); 3 leaves room for
the loaders that copy more."""

CHUNK_ROWS = 20_000
"""Rows `read_csv` parses before it adds them to the frame and checks the memory left."""


def available_memory_bytes() -> int | None:
    """Memory this process may still use: the smaller of the system's available memory
    (`MemAvailable`) and the room left under a cgroup limit; None when unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(path: Path, size: int) -> None:
    """Refuse (one `DataError`) a file that would need more memory to read than is available,
    rather than be killed by the system halfway."""
    need = size * READ_MEMORY_FACTOR
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError(path, f"{size / 2**20:.0f} MB: reading it would take about "
                              f"{need / 2**30:.1f} GB of memory and {available / 2**30:.1f} GB "
                              f"is available; split the export by date (or free memory) and "
                              f"read the parts")


def utf16_encoding(raw: bytes) -> str | None:
    """`utf-16` (with a byte-order mark), `utf-16-le`/`-be` (without one, recognised by the
    zero high bytes of ASCII text), or None."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    head = raw[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def looks_like_html(text: str) -> bool:
    """An HTML page (a login or error page saved under a .csv name)."""
    head = text.lstrip("\ufeff \t\r\n")[:512].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<?xml")) or (
        head.startswith("<") and "<body" in text[:4096].lower())


def read_text(path: Path, log: NoteLog) -> str:
    """The file's text. Empty files, binary files, HTML pages and files too large for the
    memory left are errors; UTF-16 is decoded (noted) and cp1252 is a noted fallback."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    check_memory(path, size)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    if not raw.strip():
        raise DataError(path, "the file is empty")
    encoding = utf16_encoding(raw)
    if encoding is not None:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DataError(path, f"UTF-16 text with a broken character at byte "
                                  f"{exc.start}") from None
        log.add(path, "repair", f"UTF-16 text (Excel's 'Unicode text'); decoded as {encoding}")
        text = text.lstrip("\ufeff")
    elif b"\x00" in raw[:4096]:
        raise DataError(path, "binary file, not text (expected CSV or JSON)")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            text = raw.decode("cp1252", errors="replace")
            log.add(path, "repair", f"not valid UTF-8 (byte {exc.start}); decoded as cp1252")
    if looks_like_html(text):
        raise DataError(path, "an HTML page (a login or error page saved under this name?), not "
                              "an export: download the export again")
    return text


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


MAX_FIELD_CHARS = 64 * 2**20
"""Longest CSV cell read (64 Mi characters; Python's csv module stops at 128 Ki)."""


def _text_encoding(path: Path, log: NoteLog) -> tuple[str, str]:
    """How to decode `path` without holding it whole: (encoding, decode errors). The rules and
    errors of `read_text` (binary, HTML, UTF-16 decoded and noted, cp1252 a noted fallback),
    found from the first 64 KiB and one streaming pass that validates the text."""
    import codecs

    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
            encoding = utf16_encoding(head)
            if encoding is None and b"\x00" in head[:4096]:
                raise DataError(path, "binary file, not text (expected CSV or JSON)")
            decoder = codecs.getincrementaldecoder(encoding or "utf-8-sig")()
            fh.seek(0)
            offset = 0
            while block := fh.read(2**20):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    if encoding is not None:
                        raise DataError(path, f"UTF-16 text with a broken character at byte "
                                              f"{offset + exc.start}") from None
                    log.add(path, "repair", f"not valid UTF-8 (byte {offset + exc.start}); "
                                            f"decoded as cp1252")
                    encoding = "cp1252"
                    break
                offset += len(block)
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    if encoding is not None and encoding.startswith("utf-16"):
        log.add(path, "repair", f"UTF-16 text (Excel's 'Unicode text'); decoded as {encoding}")
        head = head[: len(head) // 2 * 2]
    encoding = encoding or "utf-8-sig"
    if looks_like_html(head.decode(encoding, errors="replace").lstrip("\ufeff")):
        raise DataError(path, "an HTML page (a login or error page saved under this name?), not "
                              "an export: download the export again")
    return encoding, "replace" if encoding == "cp1252" else "strict"


def _ends_with_newline(path: Path, encoding: str) -> bool:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4))
        tail = fh.read()
    if encoding.startswith("utf-16"):
        return tail.endswith((b"\n\x00", b"\r\x00", b"\x00\n", b"\x00\r"))
    return tail.endswith((b"\n", b"\r"))


def read_csv(path: Path, log: NoteLog, *, min_columns: int = 2,
             usecols: Callable[[list[str]], Iterable[str]] | None = None) -> pd.DataFrame:
    """Read a delimited text file into strings-as-objects columns (no type guessing).

    Values stay strings so that each loader converts them with explicit units; use
    `to_number` for numeric columns. `usecols`, given the header's column names, returns the
    columns to keep (default all): the others are parsed but never stored.

    The file is streamed (`CHUNK_ROWS` rows at a time): what is kept is the cells of the kept
    columns of the rows that do not exactly repeat an earlier row, and after each chunk those
    are checked against the memory left (`KEPT_MEMORY_FACTOR`): a table that would not fit is
    refused, naming the file and the row, instead of being killed halfway. The frame's
    `attrs["header"]` holds every column of the header.
    """
    encoding, errors = _text_encoding(path, log)
    with path.open("r", encoding=encoding, errors=errors, newline="") as fh:
        first_line = fh.read(65536).lstrip("\ufeff").split("\n", 1)[0]
    delimiter = _sniff_delimiter(first_line)
    final_newline = _ends_with_newline(path, encoding)
    limit = csv.field_size_limit()
    chunks: list[pd.DataFrame] = []
    kept_bytes = 0
    seen: set[int] = set()
    n_dup = 0
    try:
        # a long journal note is data, not an error: lift the csv module's 128 KiB field limit
        # for this read
        csv.field_size_limit(max(limit, MAX_FIELD_CHARS))
        with path.open("r", encoding=encoding, errors=errors, newline="") as fh:
            rows = csv.reader(fh, delimiter=delimiter)
            columns: list[str] | None = None
            keep: list[int] = []
            pending: list[list[str]] = []
            last: list[str] | None = None
            n_body = 0

            def flush() -> None:
                nonlocal kept_bytes
                if not pending:
                    return
                chunk = pd.DataFrame(pending, columns=[columns[i] for i in keep], dtype=object)
                pending.clear()
                kept_bytes += int(chunk.memory_usage(deep=True, index=False).sum())
                chunks.append(chunk)
                _check_kept(path, kept_bytes, n_body)

            def add(row: list[str]) -> None:
                nonlocal n_dup
                cells = [c.strip() for c in row] + [""] * (len(columns) - len(row))
                key = hash(tuple(cells))
                if key in seen:
                    n_dup += 1
                    return
                seen.add(key)
                pending.append([cells[i] or None for i in keep])
                if len(pending) >= CHUNK_ROWS:
                    flush()

            for row in rows:
                if not any(cell.strip() for cell in row):
                    continue
                if columns is None:
                    columns = [c.strip().lstrip("\ufeff") for c in row]
                    if len(columns) < min_columns:
                        raise DataError(path, f"only {len(columns)} column found in the header; "
                                              f"expected a delimited table (comma, semicolon "
                                              f"or tab)")
                    if len(set(columns)) != len(columns):
                        dupes = sorted({c for c in columns if columns.count(c) > 1})
                        raise DataError(path, f"repeated column names in the header: {dupes}")
                    wanted = set(usecols(columns)) if usecols is not None else set(columns)
                    keep = [i for i, c in enumerate(columns) if c in wanted]
                    continue
                if len(row) > len(columns):
                    raise DataError(path, f"line {n_body + 2} has {len(row)} fields but the "
                                          f"header has {len(columns)}")
                n_body += 1
                if last is not None:
                    add(last)
                last = row
    except csv.Error as exc:
        raise DataError(path, f"not a readable CSV file ({exc})") from None
    except UnicodeDecodeError as exc:  # only if the file changed since it was checked
        raise DataError(path, f"cannot be decoded as {encoding} ({exc.reason})") from None
    finally:
        csv.field_size_limit(limit)
    if columns is None:
        raise DataError(path, "the file is empty")
    if last is None:
        raise DataError(path, "header only, no data rows")
    if len(last) < len(columns) and not final_newline:
        log.add(path, "repair", f"last line is cut short ({len(last)} of {len(columns)} "
                                f"fields, no final newline); dropped", 1)
        if n_body == 1:
            raise DataError(path, "header only, no complete data rows")
    else:
        add(last)
    flush()
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    frame.attrs["header"] = columns
    if delimiter == ";":
        frame.attrs["decimal_comma"] = True
        log.add(path, "info", "semicolon-delimited file: decimal commas accepted")
    else:
        frame.attrs["decimal_comma"] = False
    if n_dup:
        log.add(path, "repair", "rows that exactly repeat an earlier row dropped", n_dup)
    return frame


def amount(n: float) -> str:
    """`1.3 GB`, `240 MB`."""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _check_kept(path: Path, kept_bytes: int, rows: int) -> None:
    """Refuse a table whose kept cells would not fit the memory left (`KEPT_MEMORY_FACTOR`)."""
    need = kept_bytes * KEPT_MEMORY_FACTOR
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError(path, f"after {rows:,} rows the table read so far needs about "
                              f"{amount(need)} of memory and {amount(available)} is left; "
                              f"split the export by date (or free memory) and read "
                              f"the parts")


MISSING_TOKENS = ("nan", "none", "null", "nil", "na", "n/a", "n.a.", "#n/a", "-", "--",
                  "---", "\u2013", "\u2014", "?")
"""Cells that spreadsheets and apps write for "no value": read as missing, not as an error."""


def to_number(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A column as float64. Empty cells and `MISSING_TOKENS` (`N/A`, `--`, ...) are NaN; any
    other non-number is a `DataError`.

    Decimal commas are accepted when the file was semicolon-delimited, or when a value has a
    comma and no dot (`"45,3"`).
    """
    return to_numbers(frame, [column], path)[column]


def to_numbers(frame: pd.DataFrame, columns: list[str], path: Path) -> dict[str, pd.Series]:
    """`to_number` of several columns of text (as `read_csv` gives them), in one pass of the
    text operations over all their cells: a pandas operation on a few dozen cells costs about
    as much as on thousands. A `DataError` names the first of `columns` with a non-number."""
    if not columns:
        return {}
    raw = pd.concat([frame[column] for column in columns], ignore_index=True)
    text = raw.astype("string")
    cells = [cell for cell in text.tolist() if cell is not pd.NA]
    # each replacement only where it changes a cell (the same literal test, in Python)
    if frame.attrs.get("decimal_comma"):
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    elif any("," in cell for cell in cells):
        only_comma = text.str.contains(",", regex=False) & ~text.str.contains(".", regex=False)
        text = text.where(~only_comma.fillna(False), text.str.replace(",", ".", regex=False))
    if any("%" in cell for cell in cells):
        text = text.str.replace("%", "", regex=False)
    text = text.str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = raw.notna() & values.isna()
    if bad.any():  # unless each is a missing-value token
        bad &= ~text.str.lower().isin(MISSING_TOKENS)
    bad = bad.to_numpy()
    values = values.to_numpy()
    n = len(frame)
    for k, column in enumerate(columns):
        wrong = bad[k * n:(k + 1) * n]
        if wrong.any():
            first = int(wrong.nonzero()[0][0])
            raise DataError(path, f"column {column!r}: {int(wrong.sum())} values are not numbers "
                                  f"(e.g. {raw.iloc[k * n + first]!r} in data row {first + 1})")
    return {column: pd.Series(values[k * n:(k + 1) * n], index=frame.index, name=column)
            for k, column in enumerate(columns)}


_OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"
_NUMERIC_DATE = r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?:$|[ T])"
"""`DD/MM/YYYY` or `MM/DD/YYYY` (also with `.` or `-`, a 2-digit year, a time after it)."""
_OFFSET_RE = re.compile(_OFFSET)
_NUMERIC_DATE_RE = re.compile(_NUMERIC_DATE)
"""The patterns as pandas' `str` methods apply them (Python's `re`, `search`): scanning a
few dozen cells with them costs less than one pandas operation."""


def day_first(text: pd.Series, column: str, path: Path, log: NoteLog | None = None) -> bool:
    """Whether the numeric dates in `text` (`03/04/2024`) put the day first, decided from the
    data (docs/untrusted_input.md): a first field above 12 settles day-first, a second field
    above 12 month-first, both at once is a `DataError` (the column mixes the two orders).
    When no value settles it, the order under which the dates span fewer days is taken (daily
    exports are runs of consecutive days) and stated in a `log` note; with no log, or when both
    orders span as many days, it is a `DataError` asking for ISO dates. False when the column
    holds no such dates (ISO `2024-03-04` never matches)."""
    cells = text.dropna().astype(str).str.strip()
    if not any(map(_NUMERIC_DATE_RE.search, cells)):  # what the extract below would find
        return False
    parts = cells.str.extract(_NUMERIC_DATE).dropna()
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (first > 12).any() and (second > 12).any():
        a = parts.index[(first > 12).to_numpy()][0]
        b = parts.index[(second > 12).to_numpy()][0]
        raise DataError(path, f"column {column!r} mixes day-first ({text[a]!r}) and "
                              f"month-first ({text[b]!r}) dates")
    if (first > 12).any():
        return True
    if (second > 12).any():
        return False
    sample = text.dropna().astype(str).str.strip()
    spans = {}
    for name, dayfirst in (("DD/MM", True), ("MM/DD", False)):
        values = pd.to_datetime(sample, errors="coerce", format="mixed", dayfirst=dayfirst)
        spans[name] = (values.max() - values.min()).days if values.notna().any() else 0
    if spans["DD/MM"] == spans["MM/DD"] or log is None:
        raise DataError(path, f"column {column!r}: day and month cannot be told apart (no value "
                              f"above 12 in either place, e.g. {sample.iloc[0]!r}); write the "
                              f"dates as YYYY-MM-DD")
    chosen = min(spans, key=spans.get)
    other = "MM/DD" if chosen == "DD/MM" else "DD/MM"
    log.add(path, "repair", f"column {column!r}: no day above 12 says whether dates are DD/MM "
                            f"or MM/DD; read as {chosen} (the dates span {spans[chosen]} days; "
                            f"as {other} they would span {spans[other]})")
    return chosen == "DD/MM"


def to_datetime(frame: pd.DataFrame, column: str, path: Path, *, fmt: str | None = None,
                utc: bool = False, required: bool = False,
                log: NoteLog | None = None) -> pd.Series:
    """A column of timestamps. Unreadable values are a `DataError`; empty cells are NaT, or a
    `DataError` too when `required` (a row that cannot be placed in time).

    Without `fmt`: numeric dates take their day/month order from the data (`day_first`), and
    local timestamps (`utc` False) whose UTC offsets differ (daylight saving, travel) are read
    at their local wall-clock time, offsets dropped (an `info` note when `log` is given)."""
    raw = frame[column]
    source, dayfirst = raw, False
    if fmt is None:
        text = raw.astype("string").str.strip()
        if not utc:
            offsets = text.str.extract(_OFFSET, expand=False).dropna()
            if offsets.nunique() > 1:
                source = text.str.replace(_OFFSET, "", regex=True)
                if log is not None:
                    log.add(path, "info", f"{column}: timestamps carry {offsets.nunique()} "
                                          f"different UTC offsets (daylight saving or travel); "
                                          f"each row's local time is used as written")
        dayfirst = day_first(text, column, path, log)
    values = pd.to_datetime(source, errors="coerce", format=fmt if fmt else "mixed", utc=utc,
                            dayfirst=dayfirst)
    bad = raw.notna() & values.isna()
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not dates/times "
                              f"(e.g. {raw.iloc[first]!r} in data row {first + 1})")
    check_date_range(values, column, path)
    if required and values.isna().any():
        first = int(values.isna().to_numpy().nonzero()[0][0])
        raise DataError(path, f"column {column!r} is empty in {int(values.isna().sum())} rows "
                              f"(first in data row {first + 1})")
    return values


DATE_RANGE = (pd.Timestamp("1990-01-01"), pd.Timestamp("2100-01-01"))
"""Dates outside this range are a corrupted or misread value, not a wearable's day."""


def check_date_range(values: pd.Series, column: str, path: Path) -> None:
    """A `DataError` naming the first date outside `DATE_RANGE` (time zones ignored)."""
    naive = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
    lo, hi = DATE_RANGE
    stamps = naive.to_numpy()  # NaT compares False
    outside = (stamps < lo.to_datetime64()) | (stamps >= hi.to_datetime64())
    if outside.any():
        first = int(outside.nonzero()[0][0])
        raise DataError(path, f"column {column!r}: {int(outside.sum())} dates outside "
                              f"{lo.year}-{hi.year - 1} (e.g. {naive.iloc[first]} in data row "
                              f"{first + 1}): a corrupted or misread date")


def require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    """Raise a `DataError` listing every missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {list(frame.columns)[:12]}")


def read_json(path: Path, log: NoteLog) -> Any:
    """Parse a JSON file; a syntax error names the line."""
    text = read_text(path, log)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None


def header_of(path: Path) -> list[str]:
    """The first line's column names, cheaply, for format detection. [] when unreadable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return []
    encoding = utf16_encoding(head)
    if encoding is not None:
        head = head[: len(head) // 2 * 2]
        text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    else:
        text = head.decode("utf-8-sig", errors="replace")
    text = text.split("\n", 1)[0].strip()
    if not text:
        return []
    delimiter = _sniff_delimiter(text)
    try:
        row = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return []
    return [c.strip() for c in row]


def to_local_date(frame: pd.DataFrame, column: str, path: Path, log: NoteLog) -> pd.Series:
    """Calendar dates from a column of dates or local timestamps, as written.

    A timestamp with a UTC offset (`2024-03-01T07:12:00+01:00`) is taken at its local date
    (2024-03-01), not converted to UTC: the daily table is keyed by the local day of waking, so
    a file whose offsets change (travel, daylight saving) keeps each row on the day the athlete
    lived it. Differing offsets are reported as an `info` note.
    """
    raw = frame[column].astype("string").str.strip()
    cells = list(raw.dropna())
    offsets = {m.group(1) for m in map(_OFFSET_RE.search, cells) if m is not None}
    if len(offsets) > 1:
        log.add(path, "info", f"{column}: timestamps carry {len(offsets)} different UTC "
                              f"offsets; each row's local date is used as written")
    local = raw  # each replacement only where it changes a cell
    if offsets:
        local = local.str.replace(_OFFSET, "", regex=True)
    if any("T" in cell for cell in cells):
        local = local.str.replace("T", " ", regex=False)
    values = pd.to_datetime(local, errors="coerce", format="mixed",
                            dayfirst=day_first(raw, column, path, log))
    bad = raw.notna() & values.isna()
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not dates "
                              f"(e.g. {raw.iloc[first]!r} in data row {first + 1})")
    if raw.isna().any():
        first = int(raw.isna().to_numpy().nonzero()[0][0])
        raise DataError(path, f"column {column!r} is empty in data row {first + 1}")
    check_date_range(values, column, path)
    return values.dt.normalize()
