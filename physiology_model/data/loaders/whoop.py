"""WHOOP app "Export data" files → daily rows (DESIGN §3).

WHOOP's export (Profile → App settings → Data export) is a zip of four CSV files. Each is
recognised by its header, never by its name alone, so renamed files (`physio.csv`,
`physiologische_zyklen_Lena.csv`, `workouts2.csv`), snake_case headers from a pandas re-save and
exports with German headers are all read (see `HEADER_SYNONYMS`):

- **physiological cycles**: one row per WHOOP cycle. A cycle runs from one sleep onset to the
  next. Recovery, HRV (RMSSD, ms), resting HR, skin temperature (absolute, °C), SpO2 and the
  sleep columns describe the sleep at the cycle's start; `Day Strain` (0-21) accrues during the
  cycle. The newest cycle is still running: its end time and strain are empty.
- **sleeps**: one row per sleep, naps included (`Nap` flag). Read only where it adds what the
  cycles file lacks (see "Which sleep" below); otherwise claimed and noted as not needed.
- **workouts**: one row per workout with its duration (min) and % of time in HR zones 1-5.
- **journal entries**: long format, one row per (cycle, question) with a yes/no answer.

Day mapping
-----------
- A cycle maps to the local calendar date of its **wake onset**: the row of day d holds the
  physiology of the night that ended on the morning of d and the strain of the cycle that
  followed it (DESIGN §3).
- All times in the export are already local wall-clock times; `Cycle timezone` (`UTC-05:00`,
  `UTCZ`) only states the offset in force, so it is not applied again. Dates are local dates.
- A cycle without a wake onset (no sleep recorded) maps to the date of its **midpoint**
  (start + (end − start)/2), or to its start date while it is still running. For the non-wear
  cycles that start at 00:00:00 this is their start date; for a cycle that starts at a late
  sleep onset (say 23:45) and holds a whole day's strain it is the day that strain was
  accrued. Mapping such cycles to their start date instead would put them on the previous
  cycle's wake date: on the shipped exports that rule drops 79 cycles in date collisions (53
  for u21 alone), the midpoint rule 12.
- **Non-wear**: a cycle that starts at exactly 00:00:00 with an empty recovery score is a day
  the strap was not worn overnight; its physiology is dropped (a `repair` note counts them) and
  its strain, where present, is kept.
- **Two cycles on one date** (an afternoon sleep scored as the cycle's sleep, or a short cycle
  between two sleeps): the cycle with the longer asleep duration is kept (then the one with a
  recovery score, then the earlier start), for physiology *and* strain: strain is a quantity of
  the cycle, so it is not summed or mixed across cycles. Each dropped cycle is counted in a
  `repair` note.

Which sleep
-----------
Physiology comes from the sleep at the cycle's start (sleep onset within 5 min of the cycle
start; older exports are 1 s apart). Some exports list a later sleep in the cycle row instead
(u02: 33 cycles, u11: 26, all but one of them a nap), and some leave the cycle's sleep columns
empty while `sleeps.csv` holds the night (u21: 21 cycles, plus unscored nights that give only
the wake time). So, per cycle: (1) the cycle row's own sleep if it starts at the cycle start;
else (2) the non-nap sleep of the sleeps file that starts at the cycle start, if the cycle row
lists no sleep or a later, shorter one (a nap); else (3) the cycle row's own later sleep, which
is then the night WHOOP scored for that cycle (e.g. after travel). In case (2) with a nap listed
in the cycle row, WHOOP computed the cycle's recovery, HRV, RHR, skin temperature and SpO2 from
that nap (recovery 1-17 %, mean 4-7 %, against 57-62 % on the other days of u02 and u11): they
do not describe the night, so they are blanked (a `repair` note counts them). `sleep_min` is the
asleep duration; `rem_pct` and `deep_pct` are REM and deep (SWS) minutes as % of asleep minutes.

Workouts
--------
Per local date of workout start: `zK_min = Duration (min) × HR Zone K % / 100`, summed over the
day's workouts (WHOOP's zone % do not sum to 100: time below zone 1 is not listed), and
`strength_min` = total duration of workouts whose activity name is resistance work
(`load.is_strength_activity`). WHOOP detects workouts automatically, so a day inside the span
of the workouts file (first to last workout date) with a recorded day strain and no workout had
no training: its zone and strength minutes are 0. Days outside that span, days without a
recorded strain (strap not worn) and every day of a person without a workouts file stay NaN
(`load_trimp` is then derived centrally from strain). A day with a manually entered workout
that has no zone percentages gets NaN zone minutes (its TRIMP is unknown, an undercount would
be worse), but its strength minutes are still counted.

Journal
-------
Answers to illness/injury questions (`Feeling sick or ill?`, `Have an injury or wound`,
`Experiencing a fever`, `Experiencing COVID-19 symptoms`, and any question naming sickness,
illness, injury, wounds, pain or fever, in English or German; never vaccination questions) set
`injury` = 1 on the date of the answer's cycle when any is answered yes, 0 when all are
answered no. Other questions (alcohol, caffeine, ...) are not read.

The WHOOP-API daily table (u15/whoop.csv)
-----------------------------------------
`whoop.csv` in u15 is a daily table its author built from the WHOOP developer API (`date`,
`sleep_*` in **hours**, `recovery_score`, `resting_hr`, `hrv` in ms, `spo2`, `skin_temp` in °C).
It is loaded, not ignored: it is the same person's WHOOP data (on all 327 dates both have,
its recovery equals the export's row for that date, and HRV, asleep minutes, efficiency, skin
temperature and SpO2 agree within the export's rounding, < 1 unit), its `date` is therefore
the wake date, and it extends u15's series by 35 days with HRV after the export ends, a period
u15's Garmin load data also covers. Units: `sleep_duration` is time in bed (light + deep +
REM + awake), so `sleep_min` = (light + deep + REM) h × 60; stage shares are of that asleep
time. The export wins wherever both have a value (a note counts the days the
table filled in).

Rows
----
One row per date that has a value: the dates of cycles with any recovery, sleep or strain
value, the dates of workouts (a workout on a day whose cycle was mapped elsewhere, or a manual
entry on a non-wear day, is still training), the dates of illness/injury journal answers, and
the dates of the WHOOP-API daily table. Output: `user_id = "whoop-<folder>"`,
`source = "whoop"`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.load import ZONE_COLUMNS, is_strength_activity
from physiology_model.data.loaders._io import header_of, read_csv, to_datetime, to_number
from physiology_model.data.loaders._people import describe, levels, two_people
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

SOURCE = "whoop"

# ---------------------------------------------------------------------------------------------
# Header synonyms
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeaderNames:
    """The header names one WHOOP field appears under."""

    english: tuple[str, ...]
    """WHOOP's English export header first, then other English spellings."""
    snake: tuple[str, ...] = ()
    """snake_case names (a pandas re-save, the WHOOP-API daily table)."""
    german: tuple[str, ...] = ()
    """German export headers (first the one a German export uses), then variants."""

    def all(self) -> tuple[str, ...]:
        return self.english + self.snake + self.german


def _n(english: str | tuple[str, ...], snake: str | tuple[str, ...] = (),
       german: str | tuple[str, ...] = ()) -> HeaderNames:
    def as_tuple(x: str | tuple[str, ...]) -> tuple[str, ...]:
        return (x,) if isinstance(x, str) else x
    return HeaderNames(as_tuple(english), as_tuple(snake), as_tuple(german))


HEADER_SYNONYMS: dict[str, HeaderNames] = {
    # Identity of the cycle (every export file has it).
    "cycle_start": _n("Cycle start time", "cycle_start_time",
                      ("Startzeit des Zyklus", "Zyklus Startzeit", "Zyklusstartzeit",
                       "Zyklusbeginn", "Beginn des Zyklus")),
    "cycle_end": _n("Cycle end time", "cycle_end_time",
                    ("Endzeit des Zyklus", "Zyklus Endzeit", "Zyklusendzeit", "Zyklusende",
                     "Ende des Zyklus")),
    "cycle_timezone": _n(("Cycle timezone", "Timezone of cycle"), "cycle_timezone",
                         ("Zeitzone des Zyklus", "Zyklus Zeitzone", "Zykluszeitzone")),
    # Recovery (cycles file).
    "recovery_pct": _n("Recovery score %", ("recovery_score_%", "recovery_score"),
                       ("Erholungswert %", "Erholungswert", "Erholung %", "Erholungsscore %")),
    "rhr_bpm": _n("Resting heart rate (bpm)", ("resting_heart_rate_bpm", "resting_hr"),
                  ("Ruheherzfrequenz (Schläge pro Minute)", "Ruhepuls (bpm)",
                   "Ruheherzfrequenz (bpm)", "Ruhepuls (Schläge pro Minute)")),
    "hrv_ms": _n(("Heart rate variability (ms)", "HRV RMSSD (ms)"),
                 ("heart_rate_variability_ms", "hrv"),
                 ("Herzfrequenzvariabilität (ms)", "HFV (ms)")),
    "skin_temp_c": _n("Skin temp (celsius)", ("skin_temp_celsius", "skin_temp"),
                      ("Hauttemperatur (Celsius)", "Hauttemperatur (°C)",
                       "Hauttemp. (Celsius)")),
    "spo2_pct": _n("Blood oxygen %", ("blood_oxygen_%", "spo2"),
                   ("Blutsauerstoff %", "Blutsauerstoffsättigung %", "Sauerstoffsättigung %")),
    "day_strain": _n("Day Strain", "day_strain",
                     ("Tagesbelastung", "Belastung des Tages", "Tages-Strain")),
    # Sleep (cycles and sleeps files).
    "sleep_onset": _n("Sleep onset", "sleep_onset",
                      ("Beginn des Schlafs", "Einschlafzeit", "Einschlafzeitpunkt",
                       "Schlafbeginn")),
    "wake_onset": _n("Wake onset", "wake_onset",
                     ("Beginn des Aufwachens", "Aufwachzeit", "Aufwachzeitpunkt",
                      "Aufwachbeginn")),
    "resp_rate_rpm": _n("Respiratory rate (rpm)", "respiratory_rate_rpm",
                        ("Atemfrequenz (Atemzüge/min.)", "Atemfrequenz (rpm)",
                         "Atemfrequenz (Atemzüge pro Minute)")),
    "asleep_min": _n("Asleep duration (min)", "asleep_duration_min",
                     ("Schlafdauer (min.)", "Dauer des Schlafs (min.)")),
    "in_bed_min": _n("In bed duration (min)", "in_bed_duration_min",
                     ("Dauer im Bett (min.)", "Zeit im Bett (min)", "Im Bett (min)")),
    "deep_min": _n("Deep (SWS) duration (min)", "deep_sws_duration_min",
                   ("Dauer des Tiefschlafs (min.)", "Tiefschlaf (SWS) Dauer (min)",
                    "Tiefschlafdauer (min)")),
    "rem_min": _n("REM duration (min)", "rem_duration_min",
                  ("Dauer des REM-Schlafs (min.)", "REM-Dauer (min)",
                   "REM-Schlafdauer (min)")),
    "sleep_efficiency_pct": _n("Sleep efficiency %", "sleep_efficiency_%",
                               ("Schlafeffizienz %", "Schlafeffizienz")),
    "nap": _n("Nap", "nap", ("Nickerchen", "Schläfchen")),
    # Workouts file.
    "workout_start": _n("Workout start time", "workout_start_time",
                        ("Startzeit des Trainings", "Trainingsbeginn", "Trainingsstartzeit",
                         "Training Startzeit")),
    "duration_min": _n("Duration (min)", "duration_min",
                       ("Dauer (min.)", "Trainingsdauer (min)")),
    "activity_name": _n("Activity name", "activity_name",
                        ("Name der Aktivität", "Aktivitätsname", "Aktivität")),
    **{f"zone{k}_pct": _n(f"HR Zone {k} %", f"hr_zone_{k}_%",
                          (f"HF-Zone {k} %", f"Herzfrequenzzone {k} %"))
       for k in range(1, 6)},
    # Journal file.
    "question": _n("Question text", "question_text", ("Fragetext", "Text der Frage", "Frage")),
    "answered_yes": _n("Answered yes", "answered_yes",
                       ("Mit Ja beantwortet", "Antwort ja", "Ja beantwortet")),
    # The WHOOP-API daily table (u15/whoop.csv): hours, not minutes, hence separate fields.
    "date": _n("Date", "date", "Datum"),
    "sleep_id": _n("Sleep ID", "sleep_id"),
    "api_in_bed_h": _n((), "sleep_duration"),
    "api_light_h": _n((), "sleep_light"),
    "api_deep_h": _n((), "sleep_deep"),
    "api_rem_h": _n((), "sleep_rem"),
    "api_efficiency_pct": _n((), "sleep_score_efficiency"),
}
"""Each canonical WHOOP field → the header names it appears under: WHOOP's English export,
the snake_case of a pandas re-save, and German. The first German name of each field follows
a German-language export's headers as listed in a public WHOOP-export importer (e.g.
`Startzeit des Zyklus`, `Erholungswert %`, `Tagesbelastung`, `HF-Zone 1 %`, `Schlafdauer
(min.)`); the others are plausible variants. Matching is on `normalize_header`, so case,
spaces, punctuation and umlaut spelling (ä/ae) do not matter."""


def normalize_header(name: str) -> str:
    """A header reduced for matching: lower case, umlauts transliterated (ä→ae, ß→ss), accents
    dropped, everything but letters and digits removed. `"Cycle start time"`,
    `"cycle_start_time"` and `"CYCLE-START-TIME"` all give `"cyclestarttime"`."""
    text = name.strip().lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]", "", text)


def _build_synonym_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for field_name, names in HEADER_SYNONYMS.items():
        for name in names.all():
            key = normalize_header(name)
            if index.get(key, field_name) != field_name:
                raise ValueError(f"header synonym {name!r} maps to both {index[key]!r} and "
                                 f"{field_name!r}")
            index[key] = field_name
    return index


_SYNONYM_INDEX = _build_synonym_index()


def identify_fields(columns: list[str]) -> dict[str, str]:
    """Canonical field → the file's column, for every column that matches a synonym. The
    first column wins if two columns mean the same field."""
    found: dict[str, str] = {}
    for column in columns:
        field_name = _SYNONYM_INDEX.get(normalize_header(column))
        if field_name is not None and field_name not in found:
            found[field_name] = column
    return found


# ---------------------------------------------------------------------------------------------
# File roles
# ---------------------------------------------------------------------------------------------

SLEEP_FIELDS = ("resp_rate_rpm", "asleep_min", "in_bed_min", "deep_min", "rem_min",
                "sleep_efficiency_pct")
RECOVERY_FIELDS = ("recovery_pct", "rhr_bpm", "hrv_ms", "skin_temp_c", "spo2_pct")

REQUIRED: dict[str, tuple[str, ...]] = {
    "cycles": ("cycle_start", "cycle_end", "recovery_pct", "rhr_bpm", "hrv_ms", "day_strain",
               "sleep_onset", "wake_onset"),
    "sleeps": ("cycle_start", "sleep_onset", "wake_onset", "asleep_min"),
    "workouts": ("workout_start", "duration_min", "activity_name", "zone1_pct", "zone2_pct",
                 "zone3_pct", "zone4_pct", "zone5_pct"),
    "journal": ("cycle_start", "question", "answered_yes"),
    "api_daily": ("date", "sleep_id", "recovery_pct", "rhr_bpm", "hrv_ms"),
}
"""Fields each file must have. Missing optional ones (skin temp, SpO2, sleep stages, ...)
leave their canonical columns empty and are named in an `info` note."""

OPTIONAL: dict[str, tuple[str, ...]] = {
    "cycles": ("skin_temp_c", "spo2_pct") + SLEEP_FIELDS,
    "sleeps": ("cycle_end", "nap") + SLEEP_FIELDS,
    "workouts": ("cycle_start",),
    "journal": ("cycle_end",),
    "api_daily": ("skin_temp_c", "spo2_pct", "api_in_bed_h", "api_light_h", "api_deep_h",
                  "api_rem_h", "api_efficiency_pct"),
}

_NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("journal", "journal"), ("workout", "workouts"), ("training", "workouts"),
    ("sleep", "sleeps"), ("schlaf", "sleeps"), ("physio", "cycles"), ("zykl", "cycles"),
    ("cycle", "cycles"),
)


def detect_role(fields: set[str]) -> str | None:
    """Which WHOOP file a header belongs to, from its recognised fields; None if unclear."""
    if {"question", "answered_yes"} <= fields and "cycle_start" in fields:
        return "journal"
    if "workout_start" in fields and "cycle_start" in fields:
        return "workouts"
    if "cycle_start" in fields and fields & {"recovery_pct", "hrv_ms", "day_strain"}:
        return "cycles"
    if "cycle_start" in fields and fields & {"nap", "sleep_onset"}:
        return "sleeps"
    if {"date", "sleep_id", "api_in_bed_h", "recovery_pct", "hrv_ms"} <= fields \
            and "cycle_start" not in fields:
        return "api_daily"
    return None


def _role_from_name(path: Path) -> str | None:
    stem = path.stem.lower()
    return next((role for hint, role in _NAME_HINTS if hint in stem), None)


def _describe_field(field_name: str) -> str:
    """`'Heart rate variability (ms)' (German 'Herzfrequenzvariabilität (ms)')`."""
    names = HEADER_SYNONYMS[field_name]
    first = (names.english or names.snake)[0]
    return f"{first!r}" + (f" (German {names.german[0]!r})" if names.german else "")


@dataclass
class _File:
    """One export file as read, its role, and where each canonical field is."""

    path: Path
    role: str
    frame: pd.DataFrame
    """The file as read (string cells, original headers, so errors name the real column)."""
    columns: dict[str, str]
    """Canonical field → the file's column."""

    def has(self, field_name: str) -> bool:
        return field_name in self.columns

    def raw(self, field_name: str) -> pd.Series:
        return self.frame[self.columns[field_name]]


def read_whoop_file(path: Path, log: NoteLog) -> _File:
    """Read one WHOOP file, find its role from the header and locate each field's column.

    Raises `DataError` listing the missing required columns, or when the file cannot be told
    apart as any of the WHOOP export files.
    """
    # only the columns a WHOOP field is read from are kept (energy, max HR, sleep need, ...
    # are parsed and dropped): a large export takes memory for what is used only
    raw = read_csv(path, log, usecols=lambda header: identify_fields(header).values())
    header = raw.attrs["header"]
    fields = identify_fields(header)
    role = detect_role(set(fields)) or _role_from_name(path)
    if role is None:
        raise DataError(path, "not a WHOOP export file: expected the header of "
                              "physiological_cycles, sleeps, workouts or journal_entries "
                              f"(found {header[:8]})")
    missing = [f for f in REQUIRED[role] if f not in fields]
    if missing:
        raise DataError(path, f"WHOOP {role} file without required column(s) "
                              f"{', '.join(_describe_field(f) for f in missing)}; "
                              f"found {header[:12]}")
    absent = [f for f in OPTIONAL[role] if f not in fields]
    if absent:
        log.add(path, "info", f"WHOOP {role} file has no column for {', '.join(absent)}; "
                              f"left empty")
    wanted = {f: fields[f] for f in REQUIRED[role] + OPTIONAL[role] if f in fields}
    return _File(path, role, raw, wanted)


# ---------------------------------------------------------------------------------------------
# Typed conversions
# ---------------------------------------------------------------------------------------------

_DOTTED_DATE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}")


def _timestamps(frame: pd.DataFrame, column: str, path: Path,
                log: NoteLog | None = None) -> pd.Series:
    """Local wall-clock timestamps (tz-naive). ISO times as WHOOP writes them; German
    day-first dates (`25.03.2025 00:00:00`) are read day-first. An embedded UTC offset is
    dropped, keeping the wall-clock time, because WHOOP's times are already local."""
    text = frame[column].astype("string")
    fmt = None
    if text.dropna().str.match(_DOTTED_DATE).any():
        has_seconds = text.dropna().str.count(":").max() >= 2
        fmt = "%d.%m.%Y %H:%M:%S" if has_seconds else "%d.%m.%Y %H:%M"
    try:
        values = to_datetime(frame, column, path, fmt=fmt, log=log)
    except (TypeError, ValueError) as exc:  # mixed offsets make pandas give up
        raise DataError(path, f"column {column!r}: times cannot be read ({exc})") from None
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise DataError(path, f"column {column!r}: times with mixed UTC offsets cannot be read "
                              f"as local times")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    return values.astype("datetime64[ns]")


_TRUE = {"true", "yes", "1", "ja", "wahr", "y"}
_FALSE = {"false", "no", "0", "nein", "falsch", "n"}


def _booleans(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A yes/no column as float 1.0/0.0 (NaN where empty). Unknown words are a `DataError`."""
    text = frame[column].astype("string").str.strip().str.lower()
    values = pd.Series(np.nan, index=frame.index, dtype="float64")
    values[text.isin(_TRUE).fillna(False)] = 1.0
    values[text.isin(_FALSE).fillna(False)] = 0.0
    bad = text.notna() & values.isna()
    if bad.any():
        example = frame.loc[bad, column].iloc[0]
        raise DataError(path, f"column {column!r}: {int(bad.sum())} values are not yes/no "
                              f"(e.g. {example!r})")
    return values


def _numbers(file: _File, names: tuple[str, ...]) -> pd.DataFrame:
    """The listed numeric fields as float64 (NaN for fields the file lacks)."""
    out = pd.DataFrame(index=file.frame.index)
    for name in names:
        if file.has(name):
            out[name] = to_number(file.frame, file.columns[name], file.path)
        else:
            out[name] = np.nan
    return out


def _times(file: _File, names: tuple[str, ...], log: NoteLog | None = None) -> pd.DataFrame:
    out = pd.DataFrame(index=file.frame.index)
    for name in names:
        if file.has(name):
            out[name] = _timestamps(file.frame, file.columns[name], file.path, log)
        else:
            out[name] = pd.Series(pd.NaT, index=file.frame.index, dtype="datetime64[ns]")
    return out


# ---------------------------------------------------------------------------------------------
# Cycles and sleeps
# ---------------------------------------------------------------------------------------------

SLEEP_AT_START_TOLERANCE = pd.Timedelta(minutes=5)
"""A sleep "starts the cycle" when its onset is this close to the cycle start."""

_SLEEP_COLUMNS = ("wake_onset",) + SLEEP_FIELDS


def parse_cycles(files: list[_File], log: NoteLog) -> pd.DataFrame:
    """The cycles files as one typed frame, one row per cycle start.

    Columns: `start`, `end`, `sleep_onset`, `wake_onset` (timestamps) and the numeric fields.
    Rows without a start time are dropped (noted); a cycle listed in two files keeps the row
    with more values (noted).
    """
    parts = []
    for file in files:
        times = _times(file, ("cycle_start", "cycle_end", "sleep_onset", "wake_onset"), log)
        values = _numbers(file, RECOVERY_FIELDS + ("day_strain",) + SLEEP_FIELDS)
        part = pd.concat([times, values], axis=1).rename(
            columns={"cycle_start": "start", "cycle_end": "end"})
        no_start = part["start"].isna()
        if no_start.any():
            log.add(file.path, "repair", "cycles without a start time dropped",
                    int(no_start.sum()))
            part = part[~no_start]
        parts.append(part)
    cycles = pd.concat(parts, ignore_index=True)
    return _drop_repeated(cycles, "start", files[0].path if len(files) == 1
                          else files[0].path.parent, log, "cycle")


OVERLAP_TOLERANCE = pd.Timedelta(hours=3)
"""One person's cycles follow each other; a cycle may overlap the next by a clock change
(daylight saving: 1 h; a flight across time zones: a few hours, once)."""
OVERLAP_WINDOW, OVERLAP_COUNT = 14, 5
"""Overlapping cycles in any `OVERLAP_WINDOW` consecutive ones that only two people's cycles
interleaved produce (travel makes one now and then)."""


def check_one_person(files: list[_File], where: Path) -> None:
    """Refuse cycles that cannot be one person's: sorted by start, a cycle that starts more
    than `OVERLAP_TOLERANCE` before an earlier cycle ends overlaps it; `OVERLAP_COUNT` such
    cycles among `OVERLAP_WINDOW` consecutive ones are two exports (two people) merged in one
    folder or one file. A repeated export of the same person repeats the same start times,
    which do not count. `DataError` naming the files."""
    parts = []
    for i, file in enumerate(files):
        times = _times(file, ("cycle_start", "cycle_end")).dropna(subset=["cycle_start"])
        parts.append(times.assign(file=i))
    cycles = (pd.concat(parts, ignore_index=True)
              .drop_duplicates(subset="cycle_start").sort_values("cycle_start",
                                                                 kind="stable"))
    if len(cycles) < OVERLAP_COUNT + 1:
        return
    start = cycles["cycle_start"].to_numpy()
    end = cycles["cycle_end"].fillna(cycles["cycle_start"]).to_numpy()
    latest_end = np.maximum.accumulate(end)
    overlaps = np.zeros(len(cycles), dtype=bool)
    overlaps[1:] = (latest_end[:-1] - start[1:]) > OVERLAP_TOLERANCE.to_timedelta64()
    dense = pd.Series(overlaps).rolling(OVERLAP_WINDOW, min_periods=1).sum().to_numpy()
    if dense.max() < OVERLAP_COUNT:
        return
    at = cycles.iloc[int(np.argmax(overlaps))]
    owners = cycles["file"].to_numpy()
    at_overlap = np.flatnonzero(overlaps)
    involved = np.concatenate([owners[at_overlap], owners[at_overlap - 1]])
    names = sorted({files[int(i)].path.name for i in involved})
    what = (f"the cycles files {' and '.join(names)} overlap in time" if len(names) > 1
            else f"{names[0]} holds cycles that overlap in time")
    raise DataError(where, f"{what} ({int(overlaps.sum())} cycles start before an earlier one "
                           f"ends, e.g. at {at['cycle_start']}): one person's cycles never "
                           f"overlap, so these look like two people's exports; give each "
                           f"person's export its own folder")


def check_file_junctions(files: list[_File], where: Path, log: NoteLog) -> None:
    """Cycles files of separate date ranges (one ends before the other starts): two people's
    exports one after the other, or one person's history in two parts. Refused (`DataError`
    naming both files) when the HRV and resting-HR levels on the two sides of the junction
    cannot be one person's (`_people.two_people`); otherwise read as one person with a
    `warning` note naming the files, never merged in silence. Files that share cycles (a
    repeated export) are not junctions."""
    if len(files) < 2:
        return
    spans = []
    for file in files:
        part = pd.concat([_times(file, ("cycle_start",)), _numbers(file, ("hrv_ms", "rhr_bpm"))],
                         axis=1).dropna(subset=["cycle_start"]).sort_values("cycle_start")
        if len(part):
            first, last = part["cycle_start"].iloc[0], part["cycle_start"].iloc[-1]
            spans.append((first, last, file, part))
    spans.sort(key=lambda span: span[0])
    for (a_first, a_last, a, a_part), (b_first, b_last, b, b_part) in itertools.pairwise(spans):
        if b_first <= a_last:
            continue  # the files share dates: one export repeated or extended, not a junction
        before = levels(a_part["hrv_ms"], a_part["rhr_bpm"], last=True)
        after = levels(b_part["hrv_ms"], b_part["rhr_bpm"], last=False)
        what = (f"the cycles files {a.path.name} ({a_first:%Y-%m-%d} to {a_last:%Y-%m-%d}) and "
                f"{b.path.name} ({b_first:%Y-%m-%d} to {b_last:%Y-%m-%d}) cover separate dates")
        if two_people(before, after):
            raise DataError(where, f"{what}, and at the junction {describe(before, after)}: one "
                                   f"person's nightly HRV and resting HR do not both jump that "
                                   f"far, so these look like two people's exports; give each "
                                   f"person's export its own folder")
        level = (f"their HRV and resting HR agree at the junction: {describe(before, after)}"
                 if before is not None and after is not None
                 else "too few mornings on one side to compare their HRV and resting HR")
        log.add(where, "warning", f"{what} and were read as one person's history ({level}); "
                                  f"if they are two people, give each export its own folder")


def parse_sleeps(files: list[_File], log: NoteLog) -> pd.DataFrame:
    """The sleeps files as one typed frame: `start` (the cycle's), `sleep_onset`, `nap` (0/1)
    and the sleep fields. Naps and sleeps without an onset are left out: only a cycle's main
    sleep is ever used."""
    parts = []
    for file in files:
        times = _times(file, ("cycle_start", "sleep_onset", "wake_onset"), log)
        values = _numbers(file, SLEEP_FIELDS)
        part = pd.concat([times, values], axis=1).rename(columns={"cycle_start": "start"})
        part["nap"] = (_booleans(file.frame, file.columns["nap"], file.path)
                       if file.has("nap") else 0.0)
        parts.append(part)
    sleeps = pd.concat(parts, ignore_index=True)
    sleeps = sleeps[(sleeps["nap"] != 1.0) & sleeps["sleep_onset"].notna()]
    return _drop_repeated(sleeps, "sleep_onset", files[0].path if len(files) == 1
                          else files[0].path.parent, log, "sleep")


def _drop_repeated(frame: pd.DataFrame, key: str, where: Path, log: NoteLog,
                   what: str) -> pd.DataFrame:
    """One row per `key`: the row with the most values wins (files exported at different
    times repeat the same cycle, the older copy with fewer values)."""
    filled = frame.notna().sum(axis=1)
    order = frame.assign(_filled=filled).sort_values([key, "_filled"], ascending=[True, False],
                                                     kind="stable")
    repeated = order[key].duplicated()
    if repeated.any():
        log.add(where, "repair", f"{what}s listed more than once (same start); kept the row "
                                 f"with the most values", int(repeated.sum()))
    return order[~repeated].drop(columns="_filled").reset_index(drop=True)


def choose_sleep_at_start(cycles: pd.DataFrame, sleeps: pd.DataFrame | None,
                          ) -> tuple[pd.DataFrame, int, int]:
    """Replace each cycle's sleep columns by the sleep at the cycle's start (module docstring,
    "Which sleep").

    Where the cycle row listed a later, shorter sleep (a nap) instead, WHOOP computed that
    cycle's recovery, HRV, RHR, skin temperature and SpO2 from the nap (their recovery averages
    4-7 % against 57-62 % on other days for u02 and u11): those values are not the night's and
    are blanked. Returns the new frame, how many cycles took their sleep from `sleeps`, and how
    many of those had their nap-based recovery values blanked.
    """
    out = cycles.copy()
    if sleeps is None or sleeps.empty:
        return out, 0, 0
    own_at_start = (out["sleep_onset"] - out["start"]).abs() <= SLEEP_AT_START_TOLERANCE
    left = out[["start"]].reset_index().sort_values("start")
    right = sleeps.rename(columns={c: f"s_{c}" for c in sleeps.columns})
    right = right.sort_values("s_sleep_onset")
    matched = pd.merge_asof(left, right, left_on="start", right_on="s_sleep_onset",
                            direction="nearest", tolerance=SLEEP_AT_START_TOLERANCE)
    matched = matched.set_index("index").reindex(out.index)
    has_match = matched["s_sleep_onset"].notna()
    longer_at_start = matched["s_asleep_min"] > out["asleep_min"].fillna(-1.0)
    take = ~own_at_start & has_match & (out["sleep_onset"].isna() | longer_at_start)
    later_sleep_scored = take & out["sleep_onset"].notna()
    for column in _SLEEP_COLUMNS + ("sleep_onset",):
        out.loc[take, column] = matched.loc[take, f"s_{column}"]
    out.loc[later_sleep_scored, list(RECOVERY_FIELDS)] = np.nan
    return out, int(take.sum()), int(later_sleep_scored.sum())


def cycle_dates(cycles: pd.DataFrame) -> pd.Series:
    """The local calendar date each cycle maps to: its wake onset's date; without a wake
    onset, the date of the cycle's midpoint; while still running, its start date."""
    midpoint = cycles["start"] + (cycles["end"] - cycles["start"]) / 2
    fallback = midpoint.where(cycles["end"].notna(), cycles["start"])
    return cycles["wake_onset"].where(cycles["wake_onset"].notna(), fallback).dt.normalize()


def is_non_wear(cycles: pd.DataFrame) -> pd.Series:
    """Cycles starting at exactly 00:00:00 with no recovery score: the strap was not worn."""
    return (cycles["start"] == cycles["start"].dt.normalize()) & cycles["recovery_pct"].isna()


def daily_from_cycles(cycles: pd.DataFrame, where: Path, log: NoteLog, *,
                      from_cycles_file: bool = True) -> pd.DataFrame:
    """One row per wake date from typed cycles (after `choose_sleep_at_start`).

    `from_cycles_file=False` (cycles stood in for by the sleeps file) skips the non-wear rule,
    which needs the recovery column only the cycles file has."""
    c = cycles.copy()
    non_wear = is_non_wear(c) if from_cycles_file else pd.Series(False, index=c.index)
    if non_wear.any():
        physiology = list(RECOVERY_FIELDS + SLEEP_FIELDS)
        blanked = int(c.loc[non_wear, physiology].notna().sum().sum())
        c.loc[non_wear, physiology] = np.nan
        # a repair only where it blanked something (shipped exports carry no physiology there)
        log.add(where, "repair" if blanked else "info",
                f"non-wear cycles (start 00:00:00, no recovery): physiology dropped "
                f"({blanked} values), strain kept", int(non_wear.sum()))
    daily = pd.DataFrame({
        "date": cycle_dates(c),
        "recovery_pct": c["recovery_pct"],
        "hrv_rmssd_ms": c["hrv_ms"],  # WHOOP export: RMSSD already in ms
        "rhr_bpm": c["rhr_bpm"],
        "skin_temp_c": c["skin_temp_c"],  # absolute skin temperature, °C
        "spo2_pct": c["spo2_pct"],
        "resp_rate_rpm": c["resp_rate_rpm"],
        "sleep_min": c["asleep_min"],  # asleep time (min), not time in bed
        "sleep_efficiency_pct": c["sleep_efficiency_pct"],
        # stage minutes → % of asleep minutes; a zero asleep time has no shares
        "rem_pct": 100.0 * c["rem_min"] / c["asleep_min"].where(c["asleep_min"] > 0),
        "deep_pct": 100.0 * c["deep_min"] / c["asleep_min"].where(c["asleep_min"] > 0),
        "strain": c["day_strain"],
        "_start": c["start"],
    })
    values = [col for col in daily.columns if col not in ("date", "_start")]
    daily = daily[daily[values].notna().any(axis=1)]
    # Collision rule (module docstring): longest asleep time, then a recovery score, then the
    # earliest start.
    daily = daily.assign(_sleep=daily["sleep_min"].fillna(-1.0),
                         _has_recovery=daily["recovery_pct"].notna())
    daily = daily.sort_values(["date", "_sleep", "_has_recovery", "_start"],
                              ascending=[True, False, False, True], kind="stable")
    dropped = daily["date"].duplicated()
    if dropped.any():
        lost_strain = int(daily.loc[dropped, "strain"].notna().sum())
        log.add(where, "repair",
                f"dates with two cycles: kept the cycle with the longer sleep (physiology and "
                f"its own strain), dropped the other ({lost_strain} of them had a strain)",
                int(dropped.sum()))
    daily = daily[~dropped]
    return daily.drop(columns=["_start", "_sleep", "_has_recovery"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Workouts
# ---------------------------------------------------------------------------------------------

def parse_workouts(files: list[_File], log: NoteLog) -> pd.DataFrame:
    """Typed workouts: `start`, `duration_min`, `activity_name`, `zone1_pct`..`zone5_pct`."""
    parts = []
    zone_fields = tuple(f"zone{k}_pct" for k in range(1, 6))
    for file in files:
        part = pd.concat([_times(file, ("workout_start",), log),
                          _numbers(file, ("duration_min",) + zone_fields)], axis=1)
        part = part.rename(columns={"workout_start": "start"})
        part["activity_name"] = file.raw("activity_name")
        no_start = part["start"].isna()
        if no_start.any():
            log.add(file.path, "repair", "workouts without a start time dropped",
                    int(no_start.sum()))
            part = part[~no_start]
        parts.append(part)
    workouts = pd.concat(parts, ignore_index=True)
    repeated = workouts.duplicated(["start", "activity_name"])
    if repeated.any():
        log.add(files[0].path.parent, "repair",
                "workouts listed more than once (same start and activity) dropped",
                int(repeated.sum()))
        workouts = workouts[~repeated]
    return workouts.reset_index(drop=True)


def daily_zone_minutes(workouts: pd.DataFrame) -> pd.DataFrame:
    """Per local date of workout start: `z1_min`..`z5_min` (min) and `strength_min` (min).

    `zK_min = duration (min) × zone K % / 100`, summed over the day's workouts; a day with any
    workout lacking its duration or a zone % gets NaN zone minutes. `strength_min` sums the
    durations of resistance workouts (`is_strength_activity`)."""
    w = workouts.copy()
    w["date"] = w["start"].dt.normalize()
    for k, column in enumerate(ZONE_COLUMNS, start=1):
        w[column] = w["duration_min"] * w[f"zone{k}_pct"] / 100.0  # % of the duration → min
    strength = w["activity_name"].map(is_strength_activity).astype(bool)
    w["strength_min"] = w["duration_min"].where(strength, 0.0)
    columns = list(ZONE_COLUMNS) + ["strength_min"]
    sums = w.groupby("date")[columns].sum()
    incomplete = w[columns].isna().groupby(w["date"]).any()  # one unknown workout → day unknown
    return sums.mask(incomplete).reset_index()


# ---------------------------------------------------------------------------------------------
# Journal
# ---------------------------------------------------------------------------------------------

ILLNESS_QUESTION = re.compile(
    r"sick|\bill\b|illness|injur|wound|\bpain|fever|covid.{0,20}symptom|"
    r"krank|verletz|wunde|schmerz|fieber|symptom",
    re.IGNORECASE,
)
"""Journal questions about illness or injury (`Feeling sick or ill?`, `Have an injury or
wound`, `Experiencing a fever`, `Experiencing COVID-19 symptoms`, German equivalents)."""

_NOT_ILLNESS = re.compile(r"vaccin|impf|dose|booster", re.IGNORECASE)


def is_illness_question(text: str | None) -> bool:
    """Whether a journal question asks about illness or injury (not about vaccination)."""
    return (bool(text) and bool(ILLNESS_QUESTION.search(str(text)))
            and not _NOT_ILLNESS.search(str(text)))


def daily_injury(files: list[_File], date_of_cycle: pd.Series, log: NoteLog) -> pd.DataFrame:
    """`injury` per date from the journals: 1 if any illness/injury question of a cycle was
    answered yes, 0 if all were answered no. `date_of_cycle` maps cycle start → date."""
    parts = []
    for file in files:
        frame = file.frame
        relevant = file.raw("question").map(is_illness_question).astype(bool)
        if not relevant.any():
            log.add(file.path, "info", "journal has no illness/injury question; not used")
            continue
        times = _times(file, ("cycle_start", "cycle_end"), log)[relevant]
        answers = _booleans(frame, file.columns["answered_yes"], file.path)[relevant]
        no_cycle = times["cycle_start"].isna()
        if no_cycle.any():
            log.add(file.path, "repair", "journal answers without a cycle start dropped",
                    int(no_cycle.sum()))
        times, answers = times[~no_cycle], answers[~no_cycle]
        dates = pd.Series(date_of_cycle.reindex(times["cycle_start"]).to_numpy(),
                          index=times.index, dtype="datetime64[ns]")
        unknown = dates.isna()
        if unknown.any():
            # A cycle missing from the cycles file: same date rule on the journal's own times.
            fallback = cycle_dates(pd.DataFrame({
                "start": times["cycle_start"], "end": times["cycle_end"],
                "wake_onset": pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns]")}))
            dates = dates.where(~unknown, fallback)
            log.add(file.path, "info", "journal answers for cycles not in the cycles file dated "
                                       "by the cycle's midpoint", int(unknown.sum()))
        part = pd.DataFrame({"date": pd.to_datetime(dates), "injury": answers})
        parts.append(part.dropna(subset=["injury"]))
        log.add(file.path, "info", "illness/injury journal answers read "
                                   f"({int((part['injury'] == 1).sum())} yes)", len(part))
    if not parts:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"),
                             "injury": pd.Series(dtype="float64")})
    return pd.concat(parts).groupby("date", as_index=False)["injury"].max()


# ---------------------------------------------------------------------------------------------
# The WHOOP-API daily table
# ---------------------------------------------------------------------------------------------

def daily_from_api_table(file: _File, log: NoteLog) -> pd.DataFrame:
    """u15/whoop.csv-style daily rows: hours → minutes, stage hours → % of asleep time."""
    dates = _timestamps(file.frame, file.columns["date"], file.path, log).dt.normalize()
    v = _numbers(file, ("recovery_pct", "rhr_bpm", "hrv_ms", "skin_temp_c", "spo2_pct",
                        "api_light_h", "api_deep_h", "api_rem_h", "api_efficiency_pct"))
    asleep_h = v["api_light_h"] + v["api_deep_h"] + v["api_rem_h"]  # asleep = all stages
    asleep_min = asleep_h * 60.0  # h → min
    daily = pd.DataFrame({
        "date": dates,
        "recovery_pct": v["recovery_pct"],
        "hrv_rmssd_ms": v["hrv_ms"],  # this table's `hrv` is RMSSD in ms (33-64 for u15)
        "rhr_bpm": v["rhr_bpm"],
        "skin_temp_c": v["skin_temp_c"],
        "spo2_pct": v["spo2_pct"],
        "sleep_min": asleep_min,
        "sleep_efficiency_pct": v["api_efficiency_pct"],
        "rem_pct": 100.0 * v["api_rem_h"] / asleep_h.where(asleep_h > 0),
        "deep_pct": 100.0 * v["api_deep_h"] / asleep_h.where(asleep_h > 0),
    })
    no_date = daily["date"].isna()
    if no_date.any():
        log.add(file.path, "repair", "rows without a date dropped", int(no_date.sum()))
        daily = daily[~no_date]
    daily = daily.assign(_sleep=daily["sleep_min"].fillna(-1.0))
    daily = daily.sort_values(["date", "_sleep"], ascending=[True, False], kind="stable")
    repeated = daily["date"].duplicated()
    if repeated.any():
        log.add(file.path, "repair", "dates listed twice: kept the row with the longer sleep",
                int(repeated.sum()))
    return daily[~repeated].drop(columns="_sleep").reset_index(drop=True)


def fill_from(primary: pd.DataFrame, secondary: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """`primary` daily rows with gaps filled from `secondary` (same date); dates only in
    `secondary` are added. Returns the frame, the number of filled values on shared dates and
    the number of added dates."""
    if primary.empty:
        return secondary.copy(), 0, len(secondary)
    p = primary.set_index("date")
    s = secondary.set_index("date")
    shared = p.index.intersection(s.index)
    columns = [c for c in s.columns if c in p.columns]
    filled = int((p.loc[shared, columns].isna() & s.loc[shared, columns].notna()).sum().sum())
    added = int((~s.index.isin(p.index)).sum())
    merged = p.combine_first(s)
    return merged.reset_index(), filled, added


# ---------------------------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------------------------

@dataclass
class _Export:
    """One folder's WHOOP files, grouped by role."""

    by_role: dict[str, list[_File]] = field(default_factory=dict)

    def get(self, role: str) -> list[_File]:
        return self.by_role.get(role, [])


class WhoopLoader:
    """WHOOP app export files (physiological cycles, sleeps, workouts, journal) and the
    WHOOP-API daily table of u15. See the module docstring for every rule."""

    source = SOURCE

    def claims(self, path: Path) -> bool:
        """A CSV whose header has a WHOOP cycle-start column (any language/spelling), or the
        header of the WHOOP-API daily table."""
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            return False
        fields = set(identify_fields(header_of(path)))
        return "cycle_start" in fields or detect_role(fields) == "api_daily"

    def names_file(self, path: Path) -> str | None:
        """The export file `path`'s name says it is (`cycles`, `sleeps`, ...), or None: used to
        refuse an export whose key file could not be read (loaders.load_exports)."""
        return _role_from_name(path) if path.suffix.lower() in (".csv", ".tsv", ".txt") else None

    def load(self, files: list[Path], user_hint: str, log: NoteLog) -> pd.DataFrame:
        export = _Export()
        for path in files:
            file = read_whoop_file(path, log)
            export.by_role.setdefault(file.role, []).append(file)
        where = files[0] if len(files) == 1 else files[0].parent

        cycles = None
        if export.get("cycles"):
            check_one_person(export.get("cycles"), where)
            check_file_junctions(export.get("cycles"), where, log)
            cycles = parse_cycles(export.get("cycles"), log)
        sleeps = parse_sleeps(export.get("sleeps"), log) if export.get("sleeps") else None
        if cycles is None and sleeps is not None:
            # No cycles file: each main sleep stands for its cycle (no recovery, no strain).
            cycles = sleeps.assign(end=pd.NaT)
            for name in RECOVERY_FIELDS + ("day_strain",):
                cycles[name] = np.nan
            log.add(where, "info", "no cycles file: sleep rows taken from the sleeps file",
                    len(cycles))
        elif sleeps is not None:
            cycles, n_from_sleeps, n_nap_scored = choose_sleep_at_start(cycles, sleeps)
            sleeps_where = (export.get("sleeps")[0].path if len(export.get("sleeps")) == 1
                            else where)
            if n_from_sleeps:
                log.add(sleeps_where, "info", "sleep at the cycle start taken from the sleeps "
                                              "file (the cycles file lists a nap or no sleep)",
                        n_from_sleeps)
            else:
                log.add(sleeps_where, "info", "sleeps file not needed: the cycles file already "
                                              "has every cycle's sleep")
            if n_nap_scored:
                log.add(sleeps_where, "repair", "cycles whose recovery, HRV and RHR WHOOP "
                                                "computed from a later nap: those values "
                                                "blanked, the night's sleep kept", n_nap_scored)

        daily = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
        date_of_cycle = pd.Series(dtype="datetime64[ns]")
        if cycles is not None:
            has_cycles_file = bool(export.get("cycles"))
            cycles_where = export.get("cycles")[0].path if has_cycles_file else where
            daily = daily_from_cycles(cycles, cycles_where, log,
                                      from_cycles_file=has_cycles_file)
            date_of_cycle = pd.Series(cycle_dates(cycles).to_numpy(), index=cycles["start"])
            date_of_cycle = date_of_cycle[~date_of_cycle.index.duplicated()]

        if export.get("workouts"):
            workouts = parse_workouts(export.get("workouts"), log)
            daily = self._add_workouts(daily, workouts, export.get("workouts")[0].path, log)

        if export.get("journal"):
            injury = daily_injury(export.get("journal"), date_of_cycle, log)
            if not injury.empty:
                daily = daily.merge(injury, on="date", how="outer")

        for file in export.get("api_daily"):
            table = daily_from_api_table(file, log)
            daily, filled, added = fill_from(daily, table)
            log.add(file.path, "info",
                    f"WHOOP-API daily table merged: the export wins where both have a value; "
                    f"{filled} values filled on shared dates, {added} dates added", added)

        if daily.empty:
            return daily
        daily = daily.sort_values("date").reset_index(drop=True)
        daily.insert(0, "user_id", f"{SOURCE}-{user_hint}")
        daily["source"] = SOURCE
        return daily

    @staticmethod
    def _add_workouts(daily: pd.DataFrame, workouts: pd.DataFrame, path: Path,
                      log: NoteLog) -> pd.DataFrame:
        """Merge the day's zone/strength minutes; 0 on covered days with strain and no
        workout (module docstring, "Workouts")."""
        if workouts.empty:
            return daily
        zones = daily_zone_minutes(workouts)
        incomplete = int(zones["z1_min"].isna().sum())
        if incomplete:
            log.add(path, "info", "days with a workout without HR-zone % (manual entry): zone "
                                  "minutes left empty", incomplete)
        merged = daily.merge(zones, on="date", how="outer")
        first, last = zones["date"].min(), zones["date"].max()
        has_strain = merged["strain"].notna() if "strain" in merged else False
        covered = (merged["date"] >= first) & (merged["date"] <= last)
        no_workout = ~merged["date"].isin(zones["date"])
        zero = covered & no_workout & has_strain
        merged.loc[zero, list(ZONE_COLUMNS) + ["strength_min"]] = 0.0
        if zero.any():
            log.add(path, "info",
                    f"days from {first:%Y-%m-%d} to {last:%Y-%m-%d} with a day strain and no "
                    f"workout: 0 zone and strength minutes (WHOOP detects workouts itself)",
                    int(zero.sum()))
        return merged


LOADER = WhoopLoader()
