"""WHOOP app-export loader: every shipped export, against values read straight from the raw CSVs.

The expected row counts are recomputed here from the raw files with plain pandas (not with the
loader's helpers), following the rules in `physiology_model.data.loaders.whoop`'s docstring.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.whoop import (
    LOADER,
    identify_fields,
    is_illness_question,
    normalize_header,
)
from physiology_model.data.table import NUMERIC_COLUMNS
from physiology_model.errors import DataError

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "whoop"
REAL = DATA.parent
USERS = sorted(p.name for p in DATA.iterdir() if p.is_dir())
FIVE_MIN = pd.Timedelta(minutes=5)


# ----------------------------------------------------------------------------- raw helpers

def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _raw(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str)
    frame.columns = [_key(c) for c in frame.columns]
    return frame


def _raw_files(user: str) -> dict[str, pd.DataFrame]:
    """The user's raw files by kind, recognised by a distinctive (English) column."""
    kinds = {"sleepid": "api", "recoveryscore": "cycles", "workoutstarttime": "workouts",
             "questiontext": "journal", "nap": "sleeps"}
    out: dict[str, pd.DataFrame] = {}
    for path in sorted((DATA / user).glob("*.csv")):
        frame = _raw(path)
        kind = next(k for col, k in kinds.items() if col in frame.columns)
        out[kind] = frame
    return out


def _t(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame[column])


def _f(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column])


def _expected_dates(user: str) -> set[pd.Timestamp]:
    """Dates the loader must produce for one user, from the raw files."""
    raw = _raw_files(user)
    dates: set[pd.Timestamp] = set()
    if "cycles" in raw:
        c = raw["cycles"]
        start, end = _t(c, "cyclestarttime"), _t(c, "cycleendtime")
        onset, wake = _t(c, "sleeponset"), _t(c, "wakeonset")
        asleep = _f(c, "asleepdurationmin")
        has_value = pd.DataFrame({
            "recovery": _f(c, "recoveryscore"), "rhr": _f(c, "restingheartratebpm"),
            "hrv": _f(c, "heartratevariabilityms"), "skin": _f(c, "skintempcelsius"),
            "spo2": _f(c, "bloodoxygen"), "resp": _f(c, "respiratoryraterpm"),
            "asleep": asleep, "eff": _f(c, "sleepefficiency"),
            "rem": _f(c, "remdurationmin"), "deep": _f(c, "deepswsdurationmin"),
        })
        if "sleeps" in raw:
            s = raw["sleeps"]
            s = s[s["nap"].str.lower() != "true"]
            s = pd.DataFrame({"s_on": _t(s, "sleeponset"), "s_wake": _t(s, "wakeonset"),
                              "s_asleep": _f(s, "asleepdurationmin")}).dropna(subset=["s_on"])
            m = pd.merge_asof(pd.DataFrame({"start": start}).reset_index().sort_values("start"),
                              s.sort_values("s_on"), left_on="start", right_on="s_on",
                              direction="nearest", tolerance=FIVE_MIN)
            m = m.set_index("index").sort_index()
            take = (m["s_on"].notna() & ~((onset - start).abs() <= FIVE_MIN)
                    & (onset.isna() | (m["s_asleep"] > asleep.fillna(-1))))
            wake = wake.where(~take, m["s_wake"])
            has_value["asleep"] = has_value["asleep"].where(~take, m["s_asleep"])
        non_wear = (start == start.dt.normalize()) & has_value["recovery"].isna()
        has_value["strain"] = _f(c, "daystrain")
        any_data = has_value.notna().any(axis=1)
        # physiology of non-wear cycles is dropped, but it is always empty in the shipped files
        assert not has_value.loc[non_wear].drop(columns="strain").notna().any().any()
        midpoint = (start + (end - start) / 2).where(end.notna(), start)
        date = wake.where(wake.notna(), midpoint).dt.normalize()
        dates |= set(date[any_data])
    if "workouts" in raw:
        dates |= set(_t(raw["workouts"], "workoutstarttime").dt.normalize())
    if "journal" in raw:
        j = raw["journal"]
        ill = j[j["questiontext"].str.contains(
            r"sick|injur|fever|COVID-19 symptoms", case=False, regex=True)]
        if len(ill) and "cycles" in raw:
            c = raw["cycles"]
            lookup = pd.Series(date.to_numpy(), index=_t(c, "cyclestarttime"))
            dates |= set(_t(ill, "cyclestarttime").dropna().map(lookup).dropna())
    if "api" in raw:
        dates |= set(pd.to_datetime(raw["api"]["date"]))
    return dates


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def table():
    return load_exports([DATA])


@pytest.fixture(scope="module")
def rows(table) -> pd.DataFrame:
    return table.frame.set_index(["user_id", "date"])


def _row(rows: pd.DataFrame, user: str, day: str) -> pd.Series:
    return rows.loc[(f"whoop-{user}", pd.Timestamp(day))]


def _raw_cycle(user: str, start: str) -> pd.Series:
    c = _raw_files(user)["cycles"]
    return c[_t(c, "cyclestarttime") == pd.Timestamp(start)].iloc[0]


# ----------------------------------------------------------------------------- every export

def test_every_shipped_folder_loads_with_one_user_each(table):
    assert sorted(table.frame["user_id"].unique()) == [f"whoop-{u}" for u in USERS]
    assert len(USERS) == 17
    assert set(table.frame["source"]) == {"whoop"}
    ignored = [n for n in table.notes if n.kind == "ignored"]
    assert ignored == []  # sleeps, journals and u15/whoop.csv are all claimed


@pytest.mark.parametrize("user", USERS)
def test_rows_are_the_distinct_wake_dates_of_the_raw_files(rows, user):
    got = set(rows.loc[f"whoop-{user}"].index)
    assert got == _expected_dates(user)


def test_no_duplicate_keys_and_sorted(table):
    f = table.frame
    assert not f.duplicated(["user_id", "date"]).any()
    assert f.equals(f.sort_values(["user_id", "date"]).reset_index(drop=True))


def test_values_are_in_their_units(table):
    f = table.frame
    for name, col in NUMERIC_COLUMNS.items():
        values = f[name].dropna()
        assert ((values >= col.lo) & (values <= col.hi)).all(), name
    # WHOOP: HRV RMSSD in ms (not s), absolute skin temperature in °C, stage shares of asleep time
    assert 20 < f["hrv_rmssd_ms"].median() < 150
    assert 30 < f["skin_temp_c"].median() < 37
    assert (f["rem_pct"] + f["deep_pct"]).dropna().le(100).all()
    assert f["hrv_rmssd_ms"].count() > 5500 and f["strain"].count() > 6000


# ----------------------------------------------------------------------------- cycles → dates

@pytest.mark.parametrize("user, start, day", [
    ("u01", "2022-11-08 23:29:29", "2022-11-09"),  # evening onset → next morning's date
    ("u19", "2024-10-22 01:34:30", "2024-10-22"),  # snake_case headers, float values
    ("u21", "2019-05-05 22:27:31", "2019-05-06"),  # 2019 export: sleep onset 1 s after start
    ("u24", "2023-02-20 23:46:08", "2023-02-21"),  # physio.csv, 25 columns
    ("u08", None, None),                           # physiologische_zyklen_Lena.csv
])
def test_raw_cycle_values_land_on_the_wake_date(rows, user, start, day):
    if start is None:  # any measured cycle of this file
        c = _raw_files(user)["cycles"]
        start = c[c["heartratevariabilityms"].notna()].iloc[5]["cyclestarttime"]
    raw = _raw_cycle(user, start)
    expected_day = pd.Timestamp(raw["wakeonset"]).normalize()
    if day is not None:
        assert expected_day == pd.Timestamp(day)
    row = _row(rows, user, str(expected_day.date()))
    assert row["hrv_rmssd_ms"] == float(raw["heartratevariabilityms"])
    assert row["rhr_bpm"] == float(raw["restingheartratebpm"])
    assert row["recovery_pct"] == float(raw["recoveryscore"])
    assert row["sleep_min"] == float(raw["asleepdurationmin"])
    assert row["rem_pct"] == pytest.approx(100 * float(raw["remdurationmin"])
                                           / float(raw["asleepdurationmin"]))
    assert row["skin_temp_c"] == pytest.approx(float(raw["skintempcelsius"]), nan_ok=True)


def test_two_cycles_on_one_date_keep_the_longer_sleep_and_its_own_strain(rows):
    # u02: 2025-01-09 22:41 (512 min asleep, recovery 67) and 2025-01-10 20:30 (121 min,
    # recovery 5) both wake on 2025-01-10.
    row = _row(rows, "u02", "2025-01-10")
    assert (row["recovery_pct"], row["hrv_rmssd_ms"], row["sleep_min"]) == (67, 41, 512)
    assert row["strain"] == 10.5  # not the other cycle's 7.1, not a sum
    # u13 (sleeps by day): 2024-05-12 13:31 wakes 05-13 00:02 (586 min) and 05-13 15:09 wakes
    # 05-13 19:49 (230 min).
    row = _row(rows, "u13", "2024-05-13")
    assert (row["hrv_rmssd_ms"], row["sleep_min"], row["strain"]) == (92, 586, 8.9)


def test_a_cycle_without_sleep_maps_to_its_midpoint(rows):
    # u06: 2025-01-20 23:45 → 2025-01-22 00:08, no sleep, strain 15.0: the day is 01-21, not
    # the start date 01-20 (which already holds the night of 2025-01-19 22:13).
    row = _row(rows, "u06", "2025-01-21")
    assert row["strain"] == 15.0 and np.isnan(row["hrv_rmssd_ms"])
    assert _row(rows, "u06", "2025-01-20")["hrv_rmssd_ms"] == 39


def test_non_wear_days_keep_strain_only(rows):
    raw = _raw_cycle("u04", "2025-03-25 00:00:00")
    assert pd.isna(raw["recoveryscore"])
    row = _row(rows, "u04", "2025-03-25")
    assert row["strain"] == float(raw["daystrain"]) == 4.5
    assert row[["recovery_pct", "hrv_rmssd_ms", "rhr_bpm", "sleep_min"]].isna().all()


def test_nap_scored_cycles_take_the_night_from_sleeps_and_drop_nap_recovery(table, rows):
    # u02 2026-07-09 20:41: the cycles file lists a 86-min nap (recovery 3 %, computed from the
    # nap); sleeps.csv holds the 486-min night that started the cycle.
    row = _row(rows, "u02", "2026-07-10")
    assert row["sleep_min"] == 486
    assert row[["recovery_pct", "hrv_rmssd_ms", "rhr_bpm"]].isna().all()
    # u11 2025-11-12 16:02: the listed sleep (387 min, recovery 63) is longer than the one at
    # the cycle start (192 min): it is the night, kept with its recovery.
    row = _row(rows, "u11", "2025-11-13")
    assert (row["recovery_pct"], row["hrv_rmssd_ms"], row["sleep_min"]) == (63, 90, 387)
    notes = [n for n in table.notes if "computed from a later nap" in n.message]
    assert {Path(n.path).parent.name: n.count for n in notes} == {"u02": 32, "u11": 25}


def test_sleeps_files_are_noted_as_used_or_not_needed(table, rows):
    sleeps_notes = {Path(n.path).parent.name: n.message for n in table.notes
                    if Path(n.path).stem.startswith("sleeps") and n.kind == "info"}
    assert "not needed" in sleeps_notes["u24"]
    assert "taken from the sleeps file" in sleeps_notes["u21"]
    # u21 2020-07-14 22:20: the cycles file has only strain; sleeps.csv has the 515-min night
    assert pd.isna(_raw_cycle("u21", "2020-07-14 22:20:21")["asleepdurationmin"])
    assert _row(rows, "u21", "2020-07-15")["sleep_min"] == 515


# ----------------------------------------------------------------------------- workouts

def test_zone_minutes_are_duration_times_zone_percent(rows):
    # u01 2022-10-24 17:30: Box Fitness, 59 min, zones 24/22/23/14/15 %: the day's only workout.
    row = _row(rows, "u01", "2022-10-24")
    expected = [59 * p / 100 for p in (24, 22, 23, 14, 15)]
    assert row[["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]].tolist() == \
        pytest.approx(expected)
    assert row["strength_min"] == 0
    # u02 2026-07-14: Spin 40 min (47/51/0/0/0 %) + Weightlifting 76 min (1/0/0/0/0 %).
    row = _row(rows, "u02", "2026-07-14")
    assert row["z1_min"] == pytest.approx(40 * 0.47 + 76 * 0.01)
    assert row["z2_min"] == pytest.approx(40 * 0.51)
    assert row["strength_min"] == 76


def test_days_without_workouts_are_zero_inside_the_span_and_missing_outside(rows):
    inside = _row(rows, "u01", "2022-10-20")  # strain 8.0, no workout, workouts to 2022-10-24
    assert inside[["z1_min", "z5_min", "strength_min"]].tolist() == [0, 0, 0]
    after = _row(rows, "u01", "2022-10-25")
    assert np.isnan(after["z1_min"]) and after["strain"] == 12.9
    # u17's workouts start 2025-05-18; earlier days have strain but unknown zones.
    u17 = rows.loc["whoop-u17"]
    assert u17.loc[:"2025-05-17", "z1_min"].isna().all()
    assert u17.loc[:"2025-05-17", "strain"].notna().any()
    # no workouts file at all (u07, u08, u12, u13): zones stay missing
    for user in ("u07", "u08", "u12", "u13"):
        assert rows.loc[f"whoop-{user}", "z1_min"].isna().all()


def test_a_workout_without_zone_percent_makes_the_day_zones_missing(rows):
    # u19 2022-12-21: Rowing 15 min + Cycling 60 min entered without HR data
    row = _row(rows, "u19", "2022-12-21")
    assert np.isnan(row["z1_min"]) and row["strength_min"] == 0


# ----------------------------------------------------------------------------- journal

def test_illness_questions():
    for q in ("Feeling sick or ill?", "Have an injury or wound", "Experiencing a fever",
              "Experiencing COVID-19 symptoms", "Experiencing COVID-19 symptoms?",
              "Fühlst du dich krank?", "Hast du eine Verletzung?"):
        assert is_illness_question(q), q
    for q in ("Receive dose #1 of COVID-19 vaccination?", "Have any alcoholic drinks?",
              "Experiencing menstrual cramps", "Feel generally positive about the future?",
              "Took an anti-inflammatory drug (NSAIDs)", "Spend time stretching?"):
        assert not is_illness_question(q), q


def test_journal_illness_answers_set_injury_on_the_cycle_date(rows):
    j = _raw_files("u03")["journal"]
    ill = j[j["questiontext"].str.contains("sick|injur", case=False)]
    yes = ill.groupby("cyclestarttime")["answeredyes"].agg(lambda s: (s == "true").any())
    assert yes["2024-03-15 02:51:22"] and not yes["2024-01-01 03:42:29"]
    assert _row(rows, "u03", "2024-03-15")["injury"] == 1  # that cycle woke on 2024-03-15
    assert _row(rows, "u03", "2024-01-01")["injury"] == 0
    # u02's and u04's journals ask no illness question: no injury values at all
    assert rows.loc["whoop-u02", "injury"].isna().all()
    assert rows.loc["whoop-u04", "injury"].isna().all()
    # u09: one yes per cycle with any illness/injury yes, counted from the raw journal
    j = _raw_files("u09")["journal"]
    ill = j[j["questiontext"].str.contains("sick|injur|fever|COVID-19 symptoms", case=False)]
    n_yes_cycles = ill.groupby("cyclestarttime")["answeredyes"].agg(
        lambda s: (s == "true").any()).sum()
    assert rows.loc["whoop-u09", "injury"].sum() == n_yes_cycles == 17


# ----------------------------------------------------------------------------- u15/whoop.csv

def test_api_daily_table_fills_after_the_export_and_loses_to_it(rows):
    api = pd.read_csv(DATA / "u15" / "whoop.csv")
    only_api = api[api["date"] == "2025-02-17"].iloc[0]  # the export ends 2025-02-16
    row = _row(rows, "u15", "2025-02-17")
    assert row["hrv_rmssd_ms"] == pytest.approx(only_api["hrv"])
    asleep_h = only_api["sleep_light"] + only_api["sleep_deep"] + only_api["sleep_rem"]
    assert row["sleep_min"] == pytest.approx(asleep_h * 60)  # hours → minutes, asleep only
    assert row["rem_pct"] == pytest.approx(100 * only_api["sleep_rem"] / asleep_h)
    # a shared date: the export's (rounded) value wins over the API table's float
    shared = api[api["date"] == "2024-03-17"].iloc[0]
    assert shared["hrv"] == pytest.approx(48.889313)
    assert _row(rows, "u15", "2024-03-17")["hrv_rmssd_ms"] == 48
    assert rows.loc["whoop-u15"].index.max() == pd.Timestamp("2025-03-27")


# ----------------------------------------------------------------------------- headers

@pytest.mark.parametrize("header, field", [
    ("Cycle start time", "cycle_start"), ("cycle_start_time", "cycle_start"),
    ("Zyklus Startzeit", "cycle_start"), ("Zyklusstartzeit", "cycle_start"),
    ("Startzeit des Zyklus", "cycle_start"), ("  CYCLE-START-TIME ", "cycle_start"),
    ("Erholungswert %", "recovery_pct"), ("recovery_score_%", "recovery_pct"),
    ("Ruhepuls (bpm)", "rhr_bpm"), ("Ruheherzfrequenz (Schläge pro Minute)", "rhr_bpm"),
    ("Herzfrequenzvariabilität (ms)", "hrv_ms"), ("Herzfrequenzvariabilitaet (ms)", "hrv_ms"),
    ("Tagesbelastung", "day_strain"), ("HF-Zone 3 %", "zone3_pct"),
    ("deep_sws_duration_min", "deep_min"), ("Dauer des Tiefschlafs (min.)", "deep_min"),
])
def test_header_synonyms(header, field):
    assert identify_fields([header]) == {field: header}


def test_normalize_header_ignores_case_space_punctuation_and_umlaut_spelling():
    assert normalize_header("Herzfrequenzvariabilität (ms)") == \
        normalize_header("herzfrequenzvariabilitaet_ms")
    assert normalize_header("Recovery score %") == normalize_header("recovery_score_%")


GERMAN = {
    "Cycle start time": "Startzeit des Zyklus", "Cycle end time": "Endzeit des Zyklus",
    "Cycle timezone": "Zeitzone des Zyklus", "Recovery score %": "Erholungswert %",
    "Resting heart rate (bpm)": "Ruheherzfrequenz (Schläge pro Minute)",
    "Heart rate variability (ms)": "Herzfrequenzvariabilität (ms)",
    "Skin temp (celsius)": "Hauttemperatur (Celsius)", "Blood oxygen %": "Blutsauerstoff %",
    "Day Strain": "Tagesbelastung", "Energy burned (cal)": "Verbrannte Energie (cal)",
    "Max HR (bpm)": "Max HF (Schläge pro Minute)",
    "Average HR (bpm)": "Durchschnittliche HF (Schläge pro Minute)",
    "Sleep onset": "Beginn des Schlafs", "Wake onset": "Beginn des Aufwachens",
    "Sleep performance %": "Schlafleistung %",
    "Respiratory rate (rpm)": "Atemfrequenz (Atemzüge/min.)",
    "Asleep duration (min)": "Schlafdauer (min.)", "In bed duration (min)": "Dauer im Bett (min.)",
    "Light sleep duration (min)": "Dauer des Leichtschlafs (min.)",
    "Deep (SWS) duration (min)": "Dauer des Tiefschlafs (min.)",
    "REM duration (min)": "Dauer des REM-Schlafs (min.)",
    "Awake duration (min)": "Dauer des Aufwachens (min.)",
    "Sleep need (min)": "Schlafbedarf (min.)", "Sleep debt (min)": "Schlafdefizit (min.)",
    "Sleep efficiency %": "Schlafeffizienz %", "Nap": "Nickerchen",
    "Workout start time": "Startzeit des Trainings", "Workout end time": "Endzeit des Trainings",
    "Duration (min)": "Dauer (min.)", "Activity name": "Name der Aktivität",
    "Activity Strain": "Aktivitätsbelastung", "GPS enabled": "GPS aktiviert",
    **{f"HR Zone {k} %": f"HF-Zone {k} %" for k in range(1, 6)},
    "Question text": "Fragetext", "Answered yes": "Mit Ja beantwortet", "Notes": "Notizen",
}
GERMAN_NAMES = {"physiological_cycles.csv": "physiologische_zyklen.csv", "sleeps.csv": "Schlaf.csv",
                "workouts.csv": "Trainings.csv", "journal_entries.csv": "Tagebuch.csv"}


def _germanize(src: Path, dst: Path, *, excel: bool) -> None:
    """Copy one export file with its header in German; `excel` also writes it the way a German
    Excel saves it: `;`-delimited, decimal commas, day-first dotted dates."""
    lines = src.read_text(encoding="utf-8").splitlines()
    header = [GERMAN.get(h, h) for h in lines[0].split(",")]
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    frame.columns = header
    if excel:
        for col in frame.columns:
            cells = frame[col]
            is_time = cells.str.match(r"^\d{4}-\d{2}-\d{2} ")
            stamps = pd.to_datetime(cells.where(is_time), errors="coerce")
            frame[col] = cells.where(~is_time, stamps.dt.strftime("%d.%m.%Y %H:%M:%S"))
            is_decimal = frame[col].str.match(r"^-?\d+\.\d+$")
            comma = frame[col].str.replace(".", ",", regex=False)
            frame[col] = frame[col].where(~is_decimal, comma)
        frame.to_csv(dst, sep=";", index=False, encoding="utf-8")
    else:
        frame.to_csv(dst, index=False, encoding="utf-8")


@pytest.mark.parametrize("excel", [False, True], ids=["german-header", "german-excel"])
def test_german_export_loads_identically_to_the_original(tmp_path, table, excel):
    folder = tmp_path / "u01"
    folder.mkdir()
    for src in sorted((DATA / "u01").glob("*.csv")):
        _germanize(src, folder / GERMAN_NAMES[src.name], excel=excel)
    assert "Erholungswert %" in (folder / "physiologische_zyklen.csv").read_text().splitlines()[0]
    german = load_exports([folder]).frame
    original = table.frame[table.frame["user_id"] == "whoop-u01"].reset_index(drop=True)
    assert len(original) == 78
    pd.testing.assert_frame_equal(german, original)


# ----------------------------------------------------------------------------- bad input

def test_missing_required_columns_are_listed(tmp_path):
    frame = pd.read_csv(DATA / "u01" / "physiological_cycles.csv", dtype=str)
    bad = tmp_path / "u99" / "physiological_cycles.csv"
    bad.parent.mkdir()
    frame.drop(columns=["Heart rate variability (ms)", "Wake onset"]).to_csv(bad, index=False)
    with pytest.raises(DataError) as err:
        load_exports([bad.parent])
    message = str(err.value)
    assert str(bad) in message
    assert "'Heart rate variability (ms)'" in message and "'Wake onset'" in message
    assert "Herzfrequenzvariabilität (ms)" in message  # the German name is offered too


def test_a_value_that_is_not_a_number_names_file_and_column(tmp_path):
    frame = pd.read_csv(DATA / "u12" / "physiological_cycles.csv", dtype=str)
    frame.loc[3, "Heart rate variability (ms)"] = "n/a ms"
    bad = tmp_path / "u12" / "physiological_cycles.csv"
    bad.parent.mkdir()
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"Heart rate variability \(ms\).*not numbers"):
        load_exports([bad.parent])


def test_bad_journal_answer_is_a_data_error(tmp_path):
    folder = tmp_path / "u03"
    shutil.copytree(DATA / "u03", folder)
    path = folder / "journal_entries.csv"
    frame = pd.read_csv(path, dtype=str)
    frame.loc[frame["Question text"] == "Feeling sick or ill?", "Answered yes"] = "maybe"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="not yes/no"):
        load_exports([folder])


def test_claims_only_whoop_export_files():
    for path in sorted(DATA.rglob("*.csv")):
        assert LOADER.claims(path), path
    others = [p for p in REAL.rglob("*") if p.is_file() and DATA not in p.parents]
    assert others  # whoop_api, garmin, ... are shipped next to it
    assert not [p for p in others if LOADER.claims(p)]


def test_a_non_wear_cycle_is_a_repair_only_when_it_had_physiology(tmp_path):
    cycles = pd.read_csv(DATA / "u01" / "physiological_cycles.csv")
    folder = tmp_path / "u01"
    folder.mkdir()
    cycles.to_csv(folder / "physiological_cycles.csv", index=False)
    notes = [n for n in load_exports([folder]).notes if "non-wear" in n.message]
    assert [(n.kind, n.count) for n in notes] == [("info", 1)]  # nothing to blank
    row = cycles.index[cycles["Cycle start time"].str.endswith("00:00:00")
                       & cycles["Recovery score %"].isna()][0]
    cycles.loc[row, "Heart rate variability (ms)"] = 80.0
    cycles.to_csv(folder / "physiological_cycles.csv", index=False)
    notes = [n for n in load_exports([folder]).notes if "non-wear" in n.message]
    assert [(n.kind, n.count) for n in notes] == [("repair", 1)]
    assert "(1 values)" in notes[0].message
