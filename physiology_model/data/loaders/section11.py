"""Section 11 (intervals.icu sync) JSON → daily rows (source `section11`,
`user_id = f"section11-{folder}"`), one person per folder.

The "Section 11" AI-coaching template's `sync.py` pulls the intervals.icu API into a
GitHub repository several times a day. Files read:

- `history.json`: `daily_90d` is a list of 90 days, each with `date`, `total_tss`,
  `total_hours`, `activity_count`, `hrv` (the night's **RMSSD**, ms), `rhr` (bpm),
  `sleep_hours`, and more in newer sync versions (fields differ by version; missing ones are
  NaN). The file is claimed by its keys (`daily_90d`), whatever its name.
- `latest.json` (optional): `wellness_data`, the last 7 days (`resting_hr`, `hrv_rmssd`,
  `hrv_sdnn`, `sleep_hours`), and `recent_activities` (per activity `date`, `tss`). Its days
  are added where history.json has none (the two are regenerated on different schedules, so
  they can overlap, where history.json wins, or leave a gap).
- `ftp_history.json`: `{"indoor": {date: W}, "outdoor": {date: W}}`, read by
  `performance_tests` only.

Rules:

- `hrv`/`hrv_rmssd` → `hrv_rmssd_ms`; `hrv_sdnn` → `hrv_sdnn_ms` (never mixed);
  `rhr`/`resting_hr` → `rhr_bpm`; `sleep_hours` × 60 → `sleep_min`.
- Load: the day's `total_tss` (intervals.icu training load, a TSS) → `load.tss_to_trimp`
  (`load_basis = "tss"`); a day with `activity_count` 0 and `total_tss` 0 is a rest day (load
  0, `load_basis = "no_activity"`). The **last** `daily_90d` day is the day the file was
  generated and holds only part of that day's training: its load is left empty (note).
- latest.json days: load from `recent_activities` TSS summed per day; a day of its
  `wellness_data` window without an activity is a rest day.

Performance tests (`performance_tests`). `ftp_history.json` is not a log of tests: the sync
writes the intervals.icu FTP *setting* on its first run and again whenever it changes, indoor
and outdoor separately. Rule: every dated setting counts as a test (an FTP the athlete or
intervals.icu set from a test or an estimate), except that a same-day indoor/outdoor pair is one
test and only one environment is used, the one with more entries (outdoor on a tie), because
indoor and outdoor FTPs differ systematically. Settings outside the days of the data are left
out by the planner with a note. The first entry is often just the first sync day's setting: it
anchors the later changes, and one test alone tells the planner nothing.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physiology_model.data.load import tss_to_trimp
from physiology_model.data.loaders._io import read_json
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

MINUTES_PER_HOUR = 60.0


def _head(path: Path, n: int = 4096) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


def kind_of(path: Path) -> str | None:
    """'history', 'latest', 'ftp' or None, from the name and the first bytes."""
    if path.suffix.lower() != ".json":
        return None
    head = _head(path, 65536)
    name = path.name.lower()
    if '"daily_90d"' in head or (name == "history.json" and '"sync_version"' in head):
        return "history"
    if name == "latest.json" and '"wellness_data"' in head or (
            '"READ_THIS_FIRST"' in head and '"wellness_data"' in head):
        return "latest"
    if name == "ftp_history.json" and ('"indoor"' in head or '"outdoor"' in head):
        return "ftp"
    return None


def _number(value: Any, path: Path, what: str) -> float:
    if value is None or value == "":
        return np.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"{what} is {value!r}, not a number")
    return float(value)


def _day(value: Any, path: Path, what: str) -> pd.Timestamp:
    """An ISO date (`2026-05-18`, or the date part of an ISO date-time); the sync writes no
    other form, and a locale date (`18.05.2026`) would be ambiguous, so it is an error."""
    try:
        return pd.Timestamp(date.fromisoformat(str(value)[:10]))
    except (ValueError, TypeError):
        raise DataError(path, f"{what}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _first(record: dict, keys: tuple[str, ...]) -> Any:
    return next((record[k] for k in keys if record.get(k) is not None), None)


def read_history(path: Path, log: NoteLog) -> pd.DataFrame:
    """history.json's `daily_90d` → daily rows (physiology and TSS-based load)."""
    data = read_json(path, log)
    days = data.get("daily_90d") if isinstance(data, dict) else None
    if not isinstance(days, list) or not all(isinstance(d, dict) for d in days):
        raise DataError(path, "no `daily_90d` list of days (not a Section 11 history.json)")
    if not days:
        raise DataError(path, "`daily_90d` is empty")
    rows = []
    for i, d in enumerate(days):
        what = f"daily_90d[{i}]"
        if "date" not in d:
            raise DataError(path, f"{what} has no date")
        tss = _number(d.get("total_tss"), path, f"{what}.total_tss")
        count = _number(d.get("activity_count"), path, f"{what}.activity_count")
        sleep_h = _number(d.get("sleep_hours"), path, f"{what}.sleep_hours")
        rows.append({
            "date": _day(d["date"], path, what),
            "hrv_rmssd_ms": _number(_first(d, ("hrv", "hrv_rmssd")), path, f"{what}.hrv"),
            "hrv_sdnn_ms": _number(d.get("hrv_sdnn"), path, f"{what}.hrv_sdnn"),
            "rhr_bpm": _number(_first(d, ("rhr", "resting_hr")), path, f"{what}.rhr"),
            "sleep_min": sleep_h * MINUTES_PER_HOUR,  # h → min
            "_tss": tss,
            "_count": count,
        })
    frame = pd.DataFrame(rows).sort_values("date", kind="stable").reset_index(drop=True)
    frame = _load_from_tss(frame)
    last = frame.index[-1]
    if pd.notna(frame.loc[last, "load_trimp"]):
        log.add(path, "repair", f"the last daily_90d day ({frame.loc[last, 'date'].date()}) is "
                                f"the day the file was generated, with part of its training: its "
                                f"load is left empty", 1)
    frame.loc[last, ["load_trimp", "load_basis"]] = [np.nan, None]
    return frame


def _load_from_tss(frame: pd.DataFrame) -> pd.DataFrame:
    tss, count = frame.pop("_tss"), frame.pop("_count")
    rest = (tss == 0) & (count.fillna(0) == 0)
    frame["load_trimp"] = np.where(rest, 0.0, tss_to_trimp(tss.to_numpy()))
    frame["load_basis"] = np.where(rest, "no_activity", np.where(tss.notna(), "tss", None))
    frame.loc[frame["load_trimp"].isna(), "load_basis"] = None
    return frame


def read_latest(path: Path, log: NoteLog) -> pd.DataFrame:
    """latest.json's 7 `wellness_data` days, with load from `recent_activities` TSS."""
    data = read_json(path, log)
    well = data.get("wellness_data") if isinstance(data, dict) else None
    if not isinstance(well, list) or not all(isinstance(d, dict) for d in well):
        raise DataError(path, "no `wellness_data` list of days (not a Section 11 latest.json)")
    rows = []
    for i, d in enumerate(well):
        what = f"wellness_data[{i}]"
        if "date" not in d:
            raise DataError(path, f"{what} has no date")
        rows.append({
            "date": _day(d["date"], path, what),
            "hrv_rmssd_ms": _number(_first(d, ("hrv_rmssd", "hrv")), path, f"{what}.hrv_rmssd"),
            "hrv_sdnn_ms": _number(d.get("hrv_sdnn"), path, f"{what}.hrv_sdnn"),
            "rhr_bpm": _number(_first(d, ("resting_hr", "rhr")), path, f"{what}.resting_hr"),
            "sleep_min": _number(d.get("sleep_hours"), path, f"{what}.sleep_hours")
            * MINUTES_PER_HOUR,
        })
    frame = pd.DataFrame(rows, columns=["date", "hrv_rmssd_ms", "hrv_sdnn_ms", "rhr_bpm",
                                        "sleep_min"])
    acts = data.get("recent_activities") or []
    if not isinstance(acts, list):
        raise DataError(path, "`recent_activities` is not a list")
    tss = {}
    for i, a in enumerate(acts):
        if not isinstance(a, dict) or "date" not in a:
            raise DataError(path, f"recent_activities[{i}] has no date")
        day = _day(a["date"], path, f"recent_activities[{i}]")
        value = _number(a.get("tss"), path, f"recent_activities[{i}].tss")
        tss[day] = tss.get(day, 0.0) + value  # NaN makes the day's load unknown
    frame["_tss"] = [tss.get(d, 0.0) for d in frame["date"]]
    frame["_count"] = [1.0 if d in tss else 0.0 for d in frame["date"]]
    return _load_from_tss(frame)


def read_ftp_history(path: Path, log: NoteLog) -> pd.Series:
    """ftp_history.json → test results (W) by day, per the module doc's rule."""
    data = read_json(path, log)
    if not isinstance(data, dict) or not ({"indoor", "outdoor"} & set(data)):
        raise DataError(path, "expected {\"indoor\": {date: watts}, \"outdoor\": {...}}")
    series = {}
    for env in ("outdoor", "indoor"):
        entries = data.get(env) or {}
        if not isinstance(entries, dict):
            raise DataError(path, f"`{env}` is not a {{date: watts}} object")
        values = {_day(k, path, f"{env} key"): _number(v, path, f"{env}[{k!r}]")
                  for k, v in entries.items()}
        series[env] = pd.Series(values, dtype="float64").sort_index()
    chosen = max(("outdoor", "indoor"), key=lambda e: (len(series[e]), e == "outdoor"))
    out = series[chosen]
    return out[out > 0]


class Section11Loader:
    """Section 11 sync JSON: history.json (+ latest.json), ftp_history.json (module doc)."""

    source = "section11"

    def claims(self, path: Path) -> bool:
        return kind_of(path) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        kinds = {p: kind_of(p) for p in files}
        where = files[0].parent if len(files) > 1 else files[0]
        histories = [read_history(p, log) for p, k in sorted(kinds.items()) if k == "history"]
        latest = [read_latest(p, log) for p, k in sorted(kinds.items()) if k == "latest"]
        if not histories and not latest:
            return pd.DataFrame()  # only an FTP log: no daily rows (an info note says so)
        frame = pd.concat(histories + latest, ignore_index=True)
        dup = frame.duplicated("date")
        if dup.any():
            log.add(where, "repair", "days in both history.json and latest.json: history.json "
                                     "kept", int(dup.sum()))
            frame = frame[~dup]
        frame = frame.sort_values("date", kind="stable").reset_index(drop=True)
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame

    def performance_tests(self, files: list[Path], user_hint: str,
                          log: NoteLog) -> dict[str, pd.Series]:
        """{user_id: FTP settings (W) by day} from the folder's ftp_history.json."""
        found = [read_ftp_history(p, log) for p in sorted(files) if kind_of(p) == "ftp"]
        found = [s for s in found if len(s)]
        if not found:
            return {}
        tests = pd.concat(found)
        tests = tests[~tests.index.duplicated(keep="first")].sort_index()
        return {f"{self.source}-{user_hint}": tests}


LOADER = Section11Loader()
