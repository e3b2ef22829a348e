"""FIT activity files (`*.fit`, or gzipped `*.fit.gz` as in a Strava archive) → daily load rows
(source `fit`, `user_id = f"fit-{folder}"`), one person per folder. Load only.

Decoded with Garmin's own FIT SDK (`garmin-fit-sdk`, `Decoder`): the file's CRC is checked
(`check_integrity`) before anything is read, and a file that is not FIT, fails its CRC, or
decodes with errors is one `DataError` naming it. Only `activity` files are read; a FIT file of
another type (course, settings, monitoring) is an error too.

Load comes from the **heart-rate record stream** (`record` messages' `heart_rate`; the SDK
merges a chest strap's `hr` messages in): every record's heart rate holds until the next record,
at most `MAX_RECORD_GAP_S` seconds (a longer gap is a pause and counts nothing), and that time
goes to its Edwards zone (50-60 %, ..., 90-100 % of HRmax, zones 1-5; below 50 % no zone). The
day's zone minutes `z1_min`..`z5_min` then give the Edwards TRIMP through `derive_load_columns`
(`load_basis = "hr_zones"`), exactly as for any source with zone minutes.

HRmax is the athlete's highest heart rate in these files, taken from a 5-record rolling median so
that a single spike (a strap losing contact reads 220) does not set it; an `info` note gives it.
It underestimates the true maximum when no file holds an all-out effort, which shifts time up a
zone. An activity without heart rate records has no load estimate (its day's load is unknown;
noted).

The day is the local date of the activity's start: FIT times are UTC, and the `activity`
message's `local_timestamp` gives the device's local offset (without it, the UTC date is used
and noted). A folder of FIT files is a sample of activities, not a complete log: days without a
file get no row (unknown, not rest).
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._sessions import SESSION_COLUMNS, daily_load_from_sessions
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

MAX_RECORD_GAP_S = 30.0
"""A record's heart rate holds until the next record for at most this long (longer: a pause)."""
MAX_FILE_BYTES = 64 * 1024 * 1024
"""A decompressed FIT file larger than this is refused (a day-long activity is a few MB)."""
FIT_EPOCH = pd.Timestamp("1989-12-31", tz="UTC")
SPIKE_WINDOW = 5


def _is_fit_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".fit", ".fit.gz"))


def read_bytes(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        else:
            data = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(path, f"cannot be read ({exc}); a gzip that is cut short or not gzip?"
                        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise DataError(path, f"more than {MAX_FILE_BYTES // 2**20} MB: not an activity file")
    return data


def decode(path: Path) -> dict:
    """The FIT file's messages, after the SDK's header and CRC checks (module doc)."""
    from garmin_fit_sdk import Decoder, Stream

    data = read_bytes(path)
    if not Decoder(Stream.from_byte_array(bytearray(data))).is_fit():
        raise DataError(path, "not a FIT file (no '.FIT' header)")
    # read() checks the CRC of the header and the whole file (enable_crc_check)
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    if errors:
        if "CRC" in str(errors[0]):
            raise DataError(path, "FIT CRC check failed: the file is damaged or truncated")
        raise DataError(path, f"FIT file cannot be decoded ({errors[0]})")
    kinds = [m.get("type") for m in messages.get("file_id_mesgs", [])]
    if kinds and kinds[0] != "activity":
        raise DataError(path, f"a FIT {kinds[0]!r} file, not an activity")
    return messages


def _local_offset(messages: dict) -> timedelta | None:
    for m in messages.get("activity_mesgs", []):
        local, ts = m.get("local_timestamp"), m.get("timestamp")
        if isinstance(local, (int, float)) and ts is not None:
            utc_s = (pd.Timestamp(ts) - FIT_EPOCH).total_seconds()
            # offsets are whole quarter hours
            return timedelta(minutes=round((float(local) - utc_s) / 900.0) * 15)
    return None


def read_activity(path: Path, log: NoteLog) -> dict:
    """One FIT activity → start (local), type, minutes, and the HR stream (seconds, bpm)."""
    messages = decode(path)
    records = messages.get("record_mesgs", [])
    sessions = messages.get("session_mesgs", [])
    if not records and not sessions:
        raise DataError(path, "FIT activity with no record or session messages")
    times = [r.get("timestamp") for r in records]
    hr = np.array([r.get("heart_rate") if r.get("heart_rate") is not None else np.nan
                   for r in records], dtype=float)
    t = pd.to_datetime(pd.Series(times), utc=True)
    start = (pd.Timestamp(sessions[0]["start_time"]) if sessions and sessions[0].get("start_time")
             else t.min())
    offset = _local_offset(messages)
    if offset is None:
        log.add(path, "info", "no local time in the FIT file: the activity's UTC date is used")
        offset = timedelta(0)
    minutes = (float(sessions[0]["total_timer_time"]) / 60.0
               if sessions and sessions[0].get("total_timer_time") is not None
               else (t.max() - t.min()).total_seconds() / 60.0)
    sport = str(sessions[0].get("sport") or "") if sessions else ""
    seconds = t.diff().dt.total_seconds().shift(-1).to_numpy()  # time each record holds
    seconds = np.where(np.isfinite(seconds) & (seconds <= MAX_RECORD_GAP_S), seconds, 0.0)
    return {"start": (start.tz_convert("UTC") + offset).tz_localize(None), "type": sport,
            "minutes": minutes, "hr": hr, "seconds": seconds}


def zone_minutes(hr: np.ndarray, seconds: np.ndarray, hr_max: float) -> np.ndarray:
    """Minutes in Edwards zones 1-5 (% of `hr_max`), shape (5,); NaN when no heart rate."""
    ok = np.isfinite(hr) & (hr > 0)
    if not ok.any():
        return np.full(5, np.nan)
    frac = hr[ok] / hr_max
    zone = np.clip(np.floor(np.round((frac - 0.5) * 10.0, 9)), -1, 4).astype(int)
    out = np.zeros(5)
    np.add.at(out, zone[zone >= 0], seconds[ok][zone >= 0] / 60.0)
    return out


def peak_hr(hr: np.ndarray) -> float:
    """The highest 5-record rolling median (a lone spike does not count)."""
    s = pd.Series(hr).dropna()
    if s.empty:
        return np.nan
    return float(s.rolling(SPIKE_WINDOW, min_periods=1, center=True).median().max())


class FitLoader:
    """FIT activity files through the Garmin FIT SDK (module doc)."""

    source = "fit"

    def claims(self, path: Path) -> bool:
        if not _is_fit_name(path):
            return False
        if path.name.lower().endswith(".gz"):
            return True
        try:
            with path.open("rb") as fh:
                head = fh.read(12)
        except OSError:
            return False
        return head[8:12] == b".FIT" or path.suffix.lower() == ".fit"

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        where = files[0].parent if len(files) > 1 else files[0]
        acts = [read_activity(p, log) for p in sorted(files)]
        peaks = [peak_hr(a["hr"]) for a in acts]
        hr_max = float(np.nanmax(peaks)) if np.isfinite(peaks).any() else np.nan
        if np.isfinite(hr_max):
            log.add(where, "info", f"HRmax for the Edwards zones = highest heart rate in the FIT "
                                   f"files (5-record rolling median), {hr_max:g} bpm")
        no_hr = sum(1 for a in acts if not np.isfinite(a["hr"]).any())
        if no_hr:
            log.add(where, "info", "FIT activities without heart-rate records: no load "
                                   "estimate (their day's load is unknown)", no_hr)
        rows = []
        for a in acts:
            z = zone_minutes(a["hr"], a["seconds"], hr_max)
            rows.append({"date": a["start"].normalize(), "minutes": a["minutes"],
                         **dict(zip(ZONE_COLUMNS, z)), "tss": np.nan, "rpe_cr10": np.nan,
                         "strength": is_strength_activity(a["type"])})
        sessions = pd.DataFrame(rows, columns=list(SESSION_COLUMNS))
        frame = daily_load_from_sessions(sessions, rest_day_spans=[], path=where, log=log)
        frame.insert(0, "user_id", f"{self.source}-{user_hint}")
        frame["source"] = self.source
        return frame


LOADER = FitLoader()
