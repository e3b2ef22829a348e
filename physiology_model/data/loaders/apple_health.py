"""Apple Health export (`export.zip` or `export.xml`) → daily rows (source `apple_health`,
`user_id = f"apple_health-{folder}"`), one person per folder.

The Health app's "Export All Health Data" writes `export.zip` holding
`apple_health_export/export.xml` (tens to hundreds of MB: a `HealthData` root with one
`Record` per sample and one `Workout` per workout). It is **streamed** from the zip with
`lxml.etree.iterparse` and each element is cleared once read, so memory holds the few values
kept, never the document. Entities are not resolved and nothing is fetched from the network
(the file carries an internal DTD). `export_cda.xml` and other members are not read.

Records used (times are local with their UTC offset, `2020-10-24 22:04:00 +0100`; the local
wall-clock date is kept as written, like every loader):

- `HKQuantityTypeIdentifierHeartRateVariabilitySDNN` (ms) is **SDNN**, not RMSSD: Apple Watch
  takes short SDNN readings at intervals through the day and night. Day value → `hrv_sdnn_ms`:
  the median of the readings taken between midnight and noon of that day (the night and
  morning), else of all that day's readings. It never fills `hrv_rmssd_ms` (see
  `_hrv.sdnn_stand_in` for how an SDNN-only athlete enters the world model).
- `HKQuantityTypeIdentifierRestingHeartRate` (count/min) → `rhr_bpm` (Apple computes one per
  day; the day's median if several sources wrote one).
- Without any RestingHeartRate record (a Garmin or other watch syncing through its app writes
  only `HeartRate` samples), `rhr_bpm` is **estimated** from the night: the lowest 3-sample
  rolling mean of the heart-rate samples inside the night's asleep intervals, else between
  00:00 and 06:00, with at least `MIN_NIGHT_SAMPLES` samples (a `repair` note, which a plan
  shows). Like Oura's lowest night HR it runs a few bpm below a daytime resting HR.
- `HKCategoryTypeIdentifierSleepAnalysis`: the union of the `Asleep*` intervals (Core, Deep,
  REM, Unspecified, or the old `Asleep`) ending on a day is that wake day's `sleep_min`;
  `deep_pct`/`rem_pct` from `AsleepDeep`/`AsleepREM` where written; efficiency = asleep / the
  union of `InBed` intervals where both exist. Overlapping intervals from several sources
  (phone and watch) are merged, not added. `InBed` alone is not sleep.
- `Workout`: type (`HKWorkoutActivityTypeRunning` → `Running`), duration (min, or s/h by its
  `durationUnit`), start. The same workout written again by every re-sync (same start, type
  and duration) counts once. Its heart rate: the `WorkoutStatistics` average/maximum where the
  export has them (iOS 16+), else the mean and maximum of the HeartRate samples between its
  start and end (at least 3). Load: the mean-heart-rate Edwards estimate (`_activities`).
  Days with heart-rate samples (the watch was worn) between the first and last workout and
  without one are rest days.

Bad input: a zip that is truncated or not a zip, a zip without `export.xml`, XML that is not
well-formed or whose root is not `HealthData`: one `DataError` naming the file.
"""

from __future__ import annotations

import re
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from physiology_model.data.loaders._activities import activity_days, rest_spans
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

MIN_NIGHT_SAMPLES = 10
"""Heart-rate samples a night needs before its lowest value estimates resting HR."""
REST_GAP_DAYS = 14
MIN_WORKOUT_HR_SAMPLES = 3

HR = "HKQuantityTypeIdentifierHeartRate"
RHR = "HKQuantityTypeIdentifierRestingHeartRate"
SDNN = "HKQuantityTypeIdentifierHeartRateVariabilitySDNN"
SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
_LOCAL = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})")
_DURATION_FACTOR = {"min": 1.0, "s": 1.0 / 60.0, "sec": 1.0 / 60.0, "hr": 60.0, "h": 60.0}


def _xml_member(zf: zipfile.ZipFile) -> str | None:
    names = zf.namelist()
    return next((n for n in names if n.rsplit("/", 1)[-1] == "export.xml"), None)


def kind_of(path: Path) -> str | None:
    """'zip', 'xml' or None. A zip named like an export is claimed even when it cannot be
    opened, so that a truncated download gets a clear error rather than being ignored."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                return "zip" if _xml_member(zf) else None
        except (zipfile.BadZipFile, OSError):
            return "zip" if "export" in path.name.lower() else None
    if suffix == ".xml":
        if path.name.lower() == "export.xml":
            return "xml"
        try:
            with path.open("rb") as fh:
                head = fh.read(65536)
        except OSError:
            return None
        return "xml" if b"<HealthData" in head else None
    return None


def _local(text: str | None) -> str | None:
    m = _LOCAL.match(text or "")
    return m.group(1) if m else None


class _Collector:
    """What the stream keeps: a few numbers per record, never the elements."""

    def __init__(self) -> None:
        self.hr_t: list[str] = []
        self.hr_v: list[float] = []
        self.rhr: dict[str, list[float]] = defaultdict(list)
        self.sdnn: list[tuple[str, float]] = []
        self.sleep: list[tuple[str, str, str]] = []  # (start, end, kind)
        self.workouts: list[dict] = []
        self.records = 0
        self.bad_dates: list[str] = []

    def record(self, attrib) -> None:
        self.records += 1
        kind = attrib.get("type")
        start = _local(attrib.get("startDate"))
        if start is None:
            self.bad_dates.append(str(attrib.get("startDate")))
            return
        if kind == HR:
            self.hr_t.append(start)
            self.hr_v.append(_float(attrib.get("value")))
        elif kind == RHR:
            self.rhr[start[:10]].append(_float(attrib.get("value")))
        elif kind == SDNN:
            self.sdnn.append((start, _float(attrib.get("value"))))
        elif kind == SLEEP:
            end = _local(attrib.get("endDate"))
            value = attrib.get("value") or ""
            if end:
                if "Asleep" in value:
                    stage = ("deep" if value.endswith("Deep") else
                             "rem" if value.endswith("REM") else "asleep")
                    self.sleep.append((start, end, stage))
                elif value.endswith("InBed"):
                    self.sleep.append((start, end, "inbed"))

    def workout(self, element) -> None:
        a = element.attrib
        start, end = _local(a.get("startDate")), _local(a.get("endDate"))
        if start is None:
            self.bad_dates.append(str(a.get("startDate")))
            return
        factor = _DURATION_FACTOR.get((a.get("durationUnit") or "min").lower(), np.nan)
        avg = mx = np.nan
        for child in element:
            if child.tag == "WorkoutStatistics" and child.get("type") == HR:
                avg, mx = _float(child.get("average")), _float(child.get("maximum"))
        self.workouts.append({
            "start": start, "end": end,
            "type": (a.get("workoutActivityType") or "").replace("HKWorkoutActivityType", ""),
            "minutes": _float(a.get("duration")) * factor, "avg_hr": avg, "max_hr": mx})


def _float(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return np.nan


def _stream(fh: IO[bytes], where: Path) -> _Collector:
    from lxml import etree

    out = _Collector()
    try:
        events = etree.iterparse(fh, events=("start", "end"), resolve_entities=False,
                                 no_network=True, load_dtd=False, huge_tree=False)
        depth = 0
        for event, element in events:
            if event == "start":
                if depth == 0 and element.tag != "HealthData":
                    raise DataError(where, f"XML root is <{element.tag}>, not <HealthData>: not "
                                           f"an Apple Health export.xml")
                depth += 1
                continue
            depth -= 1
            if depth == 1:  # a direct child of HealthData, complete with its children
                if element.tag == "Record":
                    out.record(element.attrib)
                elif element.tag == "Workout":
                    out.workout(element)
                element.clear()
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise DataError(where, f"not well-formed XML (line {exc.lineno}: {exc.msg}); is the "
                               f"export complete?") from None
    return out


def read_export(path: Path, log: NoteLog) -> _Collector:
    """Stream the export's records (module doc)."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                member = _xml_member(zf)
                if member is None:
                    raise DataError(path, "the zip has no export.xml (not an Apple Health "
                                          "export)")
                with zf.open(member) as fh:
                    return _stream(fh, path)
        except zipfile.BadZipFile as exc:
            raise DataError(path, f"not a readable zip file ({exc}); the download may be "
                                  f"truncated") from None
        except (EOFError, zipfile.LargeZipFile, OSError) as exc:
            raise DataError(path, f"the zip is damaged or truncated ({exc})") from None
    try:
        with path.open("rb") as fh:
            return _stream(fh, path)
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None


def _union_minutes(intervals: list[tuple[pd.Timestamp, pd.Timestamp]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += (cur_e - cur_s).total_seconds()
    return total / 60.0


def _sleep_days(sleep: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, dict]:
    """Per wake day: sleep_min, deep_pct, rem_pct, efficiency; and the asleep intervals."""
    by_day: dict = defaultdict(lambda: defaultdict(list))
    for s, e, kind in sleep:
        ts, te = pd.Timestamp(s), pd.Timestamp(e)
        if te > ts:
            by_day[te.normalize()][kind].append((ts, te))
    rows, windows = [], {}
    for day, kinds in sorted(by_day.items()):
        asleep_iv = kinds["asleep"] + kinds["deep"] + kinds["rem"]
        asleep = _union_minutes(asleep_iv) if asleep_iv else np.nan
        inbed = _union_minutes(kinds["inbed"] + asleep_iv) if kinds["inbed"] else np.nan
        windows[day] = asleep_iv
        rows.append({
            "date": day, "sleep_min": asleep,
            "deep_pct": _union_minutes(kinds["deep"]) / asleep * 100 if kinds["deep"] else np.nan,
            "rem_pct": _union_minutes(kinds["rem"]) / asleep * 100 if kinds["rem"] else np.nan,
            "sleep_efficiency_pct": asleep / inbed * 100 if inbed and asleep_iv else np.nan})
    return pd.DataFrame(rows, columns=["date", "sleep_min", "deep_pct", "rem_pct",
                                       "sleep_efficiency_pct"]), windows


def _night_rhr(hr: pd.Series, windows: dict) -> pd.Series:
    """Estimated resting HR per wake day from the night's HR samples (module doc)."""
    if hr.empty:
        return pd.Series(dtype=float)
    out = {}
    for day in pd.DatetimeIndex(hr.index.normalize().unique()):
        asleep = windows.get(day) or []
        if asleep:
            parts = [hr[(hr.index >= s) & (hr.index <= e)] for s, e in asleep]
            night = pd.concat(parts).sort_index() if parts else hr.iloc[:0]
        else:
            night = hr[(hr.index >= day) & (hr.index < day + pd.Timedelta(hours=6))]
        night = night.dropna()
        if len(night) >= MIN_NIGHT_SAMPLES:
            out[day] = float(night.rolling(3).mean().min())
    return pd.Series(out, dtype=float)


class AppleHealthLoader:
    """Apple Health export.zip / export.xml, streamed (module doc)."""

    source = "apple_health"

    def claims(self, path: Path) -> bool:
        return kind_of(path) is not None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        if len(files) > 1:
            raise DataError(files[0].parent, f"{len(files)} Apple Health exports in one folder "
                                             f"({', '.join(f.name for f in files)}): give each "
                                             f"export its own folder")
        path = files[0]
        c = read_export(path, log)
        if c.bad_dates:
            raise DataError(path, f"{len(c.bad_dates)} records have a startDate that is not "
                                  f"'YYYY-MM-DD HH:MM:SS +HHMM' (e.g. {c.bad_dates[0]!r}); the "
                                  f"Health app writes no other form")
        if c.records == 0 and not c.workouts:
            raise DataError(path, "the export has no Record or Workout elements")
        hr = pd.Series(c.hr_v, index=pd.to_datetime(c.hr_t), dtype=float).sort_index()
        sleep, windows = _sleep_days(c.sleep)
        frame = sleep
        rhr = pd.Series({pd.Timestamp(d): float(np.nanmedian(v)) for d, v in c.rhr.items()},
                        dtype=float)
        if rhr.empty and not hr.empty:
            rhr = _night_rhr(hr, windows)
            if len(rhr):
                log.add(path, "repair", f"no RestingHeartRate records: rhr_bpm estimated as the "
                                      f"night's lowest heart rate (3-sample mean, at least "
                                      f"{MIN_NIGHT_SAMPLES} samples)", len(rhr))
        parts = [frame]
        if len(rhr):
            parts.append(pd.DataFrame({"date": rhr.index, "rhr_bpm": rhr.to_numpy()}))
        if c.sdnn:
            s = pd.DataFrame(c.sdnn, columns=["t", "v"])
            s["t"] = pd.to_datetime(s["t"])
            s["date"] = s["t"].dt.normalize()
            morning = s[s["t"].dt.hour < 12].groupby("date")["v"].median()
            allday = s.groupby("date")["v"].median()
            sdnn = morning.combine_first(allday)
            parts.append(pd.DataFrame({"date": sdnn.index, "hrv_sdnn_ms": sdnn.to_numpy()}))
        else:
            log.add(path, "info", "no HRV (HeartRateVariabilitySDNN) records in the export")
        daily = pd.concat([p for p in parts if len(p)], ignore_index=True)
        daily = daily.groupby("date", sort=True, as_index=False).first() if len(daily) else (
            pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")}))
        if c.workouts:
            w = pd.DataFrame(c.workouts)
            w["start"] = pd.to_datetime(w["start"])
            w["end"] = pd.to_datetime(w["end"])
            for i in w.index[w["avg_hr"].isna()]:
                seg = hr[(hr.index >= w.at[i, "start"]) & (hr.index <= w.at[i, "end"])].dropna()
                if len(seg) >= MIN_WORKOUT_HR_SAMPLES:
                    w.at[i, "avg_hr"], w.at[i, "max_hr"] = float(seg.mean()), float(seg.max())
            w["tss"] = np.nan
            worn = pd.DatetimeIndex(hr.index.normalize().unique())
            load = activity_days(w, path, log, rest_spans=rest_spans(w["start"], REST_GAP_DAYS),
                                 rest_days_only=worn)
            daily = daily.merge(load, on="date", how="outer", sort=True)
        daily = daily.reset_index(drop=True)
        daily.insert(0, "user_id", f"{self.source}-{user_hint}")
        daily["source"] = self.source
        return daily


LOADER = AppleHealthLoader()
