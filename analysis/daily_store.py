"""The daily loop's embedded store: one SQLite file (standard library `sqlite3`).

Per athlete and morning it holds what `periodize daily` saw and said, and what happened after
(DESIGN §10, seed TRD §15.2 "log all recommendations + user outcomes"):

- `mornings`: the observation (this morning's readings, the feature vector the policy saw, the
  athlete's normal HRV and RHR bands, the rules in force and the export's data notes),
  the athlete's own "how do you feel today?" (1-5, optional), the A/B arm, and the
  recommendation: policy, session, load, the 7-day plan (JSON, with reasons) and the rule that
  changed the choice (NULL when none did).
- `forecasts`: the world model's prediction of the next morning (HRV in ms, RHR in bpm,
  recovery in %) for the recommended session: the quantiles of the 50, 90 and 99 % central
  intervals, the median, and the sorted predictive samples (JSON) that the CRPS is scored on.
- `done`: what the athlete actually did that day, read from a later export (session when the
  export names it, and the loads).
- `outcomes`: the measured morning after (the next morning's HRV, RHR, recovery, ln HRV z).

Rows are written once: every insert is `INSERT OR IGNORE` on the (athlete, date) key, so
rerunning a morning changes nothing (the first record of a morning is the one that was shown to
the athlete; a rerun must not rewrite history). Each morning's rows go in one transaction
(`BEGIN IMMEDIATE`), the journal is WAL and writers wait (`busy_timeout`) rather than fail, so
several processes can log at once and lose nothing (tests/test_daily.py runs concurrent writer
processes).

Schema versions (`schema_version` table, one row per version applied, and `PRAGMA
user_version`): 1 is the first layout (no feel, no A/B arm, forecasts without the 99 %
band), kept as `_SCHEMA_V1` so that upgrading an old file stays tested; 2 adds them. Opening an older file migrates it in place, in one transaction; a file from
a newer version, or not a store at all, is one `DataError` naming the file.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from physiology_model.errors import DataError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 60_000
TARGETS = ("hrv_ms", "rhr_bpm", "recovery_pct")
"""Forecast targets, in the units shown to the athlete."""
QUANTILE_COLUMNS = {"q005": 0.005, "q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75,
                    "q95": 0.95, "q995": 0.995}
"""Forecast columns and their levels: the 50 % (q25-q75), 90 % (q05-q95) and 99 %
(q005-q995) central intervals and the median."""

_SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE mornings (
    athlete TEXT NOT NULL, date TEXT NOT NULL,
    observation TEXT NOT NULL,
    policy TEXT NOT NULL, session TEXT NOT NULL, load_trimp REAL NOT NULL,
    plan TEXT NOT NULL, rule_changed TEXT,
    PRIMARY KEY (athlete, date));
CREATE TABLE forecasts (
    athlete TEXT NOT NULL, date TEXT NOT NULL, target TEXT NOT NULL, for_date TEXT NOT NULL,
    q05 REAL, q25 REAL, q50 REAL, q75 REAL, q95 REAL, samples TEXT NOT NULL,
    PRIMARY KEY (athlete, date, target));
CREATE TABLE done (
    athlete TEXT NOT NULL, date TEXT NOT NULL, session TEXT, load_trimp REAL,
    z4_min REAL, z5_min REAL, strength_min REAL,
    PRIMARY KEY (athlete, date));
CREATE TABLE outcomes (
    athlete TEXT NOT NULL, date TEXT NOT NULL, hrv_ms REAL, rhr_bpm REAL,
    recovery_pct REAL, ln_hrv_z REAL,
    PRIMARY KEY (athlete, date));
INSERT INTO schema_version VALUES (1, 'first layout');
PRAGMA user_version = 1;
"""
"""The first layout, kept to create version-1 files for the migration test."""

_MIGRATIONS: Mapping[int, str] = {
    2: """
ALTER TABLE mornings ADD COLUMN feel INTEGER CHECK (feel BETWEEN 1 AND 5);
ALTER TABLE mornings ADD COLUMN arm TEXT;
ALTER TABLE forecasts ADD COLUMN q005 REAL;
ALTER TABLE forecasts ADD COLUMN q995 REAL;
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO schema_version VALUES (2, 'feel, A/B arm, 99 % band, settings');
PRAGMA user_version = 2;
""",
}
"""Version → the statements that take a file from the version before to it."""


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    con.row_factory = sqlite3.Row
    return con


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error): the write lock is taken up front, so
    two writers queue instead of one failing on a lock upgrade."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _apply(con: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            con.execute(statement)


def create_v1(path: str | Path) -> None:
    """A new, empty store in the first layout (schema version 1): for the migration test."""
    con = _connect(Path(path))
    with _transaction(con):
        _apply(con, _SCHEMA_V1)
    con.close()


class DailyStore:
    """One store file, opened (created or migrated to `SCHEMA_VERSION`) on construction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise DataError(str(self.path), "is a directory, not a store file")
        try:
            self.con = _connect(self.path)
            self.con.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise DataError(str(self.path), f"not a daily-loop store (SQLite: {exc})") from None

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with _transaction(self.con):
            version = int(self.con.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in self.con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and tables:
                raise DataError(str(self.path), "an SQLite file that is not a daily-loop store "
                                                f"(tables: {', '.join(sorted(tables))})")
            if version > SCHEMA_VERSION:
                raise DataError(str(self.path), f"store schema version {version} is newer than "
                                                f"this program's ({SCHEMA_VERSION}): upgrade")
            if version == 0:
                _apply(self.con, _SCHEMA_V1)
                version = 1
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _apply(self.con, _MIGRATIONS[target])

    @property
    def version(self) -> int:
        return int(self.con.execute("PRAGMA user_version").fetchone()[0])

    def versions(self) -> list[tuple[int, str]]:
        """The versions applied to this file, oldest first, with their notes."""
        return [(int(r[0]), str(r[1])) for r in self.con.execute(
            "SELECT version, note FROM schema_version ORDER BY version")]

    # -- settings ----------------------------------------------------------------------------
    def setting(self, key: str, default: str) -> str:
        """A store-wide setting (e.g. the A/B salt), written with `default` on first use so it
        stays the same for the life of the file."""
        with _transaction(self.con):
            self.con.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, default))
            row = self.con.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    # -- writing -----------------------------------------------------------------------------
    def has_morning(self, athlete: str, date: str) -> bool:
        return self.con.execute("SELECT 1 FROM mornings WHERE athlete = ? AND date = ?",
                                (athlete, date)).fetchone() is not None

    def log_morning(self, morning: Mapping[str, Any],
                    forecasts: Sequence[Mapping[str, Any]]) -> bool:
        """The morning's observation and recommendation and its next-morning forecasts, in one
        transaction. Returns False (and writes nothing) when the morning is already logged."""
        with _transaction(self.con):
            cur = self.con.execute(
                "INSERT OR IGNORE INTO mornings (athlete, date, observation, policy, session, "
                "load_trimp, plan, rule_changed, feel, arm) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (morning["athlete"], morning["date"], _dumps(morning["observation"]),
                 morning["policy"], morning["session"], float(morning["load_trimp"]),
                 _dumps(morning["plan"]), morning.get("rule_changed"), morning.get("feel"),
                 morning.get("arm")))
            if cur.rowcount == 0:
                return False
            for f in forecasts:
                self.con.execute(
                    "INSERT OR IGNORE INTO forecasts (athlete, date, target, for_date, "
                    + ", ".join(QUANTILE_COLUMNS) + ", samples) VALUES ("
                    + ", ".join("?" * (5 + len(QUANTILE_COLUMNS))) + ")",
                    (f["athlete"], f["date"], f["target"], f["for_date"],
                     *[float(f[c]) for c in QUANTILE_COLUMNS], _dumps(f["samples"])))
        return True

    def log_after(self, done: Sequence[Mapping[str, Any]],
                  outcomes: Sequence[Mapping[str, Any]]) -> int:
        """What was done on logged days and the mornings after them, read from a later
        export, in one transaction; a day already filled keeps its first record. Returns the
        number of rows added."""
        added = 0
        with _transaction(self.con):
            for d in done:
                added += self.con.execute(
                    "INSERT OR IGNORE INTO done VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (d["athlete"], d["date"], d.get("session"), d.get("load_trimp"),
                     d.get("z4_min"), d.get("z5_min"), d.get("strength_min"))).rowcount
            for o in outcomes:
                added += self.con.execute(
                    "INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
                    (o["athlete"], o["date"], o.get("hrv_ms"), o.get("rhr_bpm"),
                     o.get("recovery_pct"), o.get("ln_hrv_z"))).rowcount
        return added

    # -- reading -----------------------------------------------------------------------------
    def athletes(self) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT DISTINCT athlete FROM mornings ORDER BY athlete")]

    def rows(self, table: str, athlete: str | None = None) -> list[dict[str, Any]]:
        """All rows of one table (of one athlete), ordered by date, JSON columns decoded."""
        if table not in ("mornings", "forecasts", "done", "outcomes"):
            raise ValueError(f"no table {table!r}")
        where, args = ("WHERE athlete = ?", (athlete,)) if athlete is not None else ("", ())
        order = "date, target" if table == "forecasts" else "date"
        out = []
        for r in self.con.execute(f"SELECT * FROM {table} {where} ORDER BY athlete, {order}",
                                  args):
            row = dict(r)
            for key in ("observation", "plan", "samples"):
                if key in row and isinstance(row[key], str):
                    row[key] = json.loads(row[key])
            out.append(row)
        return out

    def content(self) -> list[str]:
        """Every row of every table as text, in a fixed order: two stores with equal content
        give equal lists (what a rerun must leave unchanged)."""
        return list(self.con.iterdump())


def _dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no NaN: a missing value is null)."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _finite(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
