"""PMData loader: every shipped participant folder, checked against the raw files.

Expected values are recomputed here with `json`/plain pandas, following the rules in
`physiology_model.data.loaders.pmdata`'s docstring (not with the loader's helpers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.pmdata import LOADER
from physiology_model.data.table import NUMERIC_COLUMNS, DailyTable
from physiology_model.errors import DataError

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "pmdata"
PARTICIPANTS = sorted(p.name for p in DATA.iterdir() if p.name.startswith("p"))
OSLO = "Europe/Oslo"


@pytest.fixture(scope="module")
def table() -> DailyTable:
    return load_exports([DATA])


@pytest.fixture(scope="module")
def frame(table: DailyTable) -> pd.DataFrame:
    return table.frame


def row_of(frame: pd.DataFrame, participant: str, day: str) -> pd.Series:
    rows = frame[(frame["user_id"] == f"pmdata-{participant}")
                 & (frame["date"] == pd.Timestamp(day))]
    assert len(rows) == 1, (participant, day)
    return rows.iloc[0]


# ----------------------------------------------------------------------------- raw helpers

def raw_json(participant: str, name: str) -> list[dict]:
    path = DATA / participant / name
    return json.loads(path.read_text()) if path.exists() else []


def raw_rhr(participant: str) -> dict[pd.Timestamp, float]:
    """Days with a non-zero resting heart rate in resting_heart_rate.json."""
    return {pd.Timestamp(r["dateTime"][:10]): r["value"]["value"]
            for r in raw_json(participant, "resting_heart_rate.json") if r["value"]["value"] > 0}


def raw_score_rhr(participant: str) -> dict[pd.Timestamp, float]:
    """sleep_score.csv's resting HR, on the day before the scored sleep ended."""
    path = DATA / participant / "sleep_score.csv"
    if not path.exists():
        return {}
    s = pd.read_csv(path).sort_values("timestamp")
    days = pd.to_datetime(s["timestamp"].str[:10]) - pd.Timedelta(days=1)
    return dict(zip(days, s["resting_heart_rate"]))  # later sleeps overwrite earlier ones


def local_days(path: Path, column: str) -> pd.Series:
    stamps = pd.to_datetime(pd.read_csv(path)[column], utc=True)
    return stamps.dt.tz_convert(OSLO).dt.tz_localize(None).dt.normalize()


def srpe_sessions(participant: str) -> pd.DataFrame:
    s = pd.read_csv(DATA / participant / "srpe.csv").dropna(subset=["duration_min"])
    end = pd.to_datetime(s["end_date_time"], utc=True).dt.tz_convert(OSLO).dt.tz_localize(None)
    s["date"] = (end - pd.to_timedelta(s["duration_min"], unit="min")).dt.normalize()
    return s


def expected_days(participant: str) -> set[pd.Timestamp]:
    """Every day on which some file gives the participant a canonical value."""
    days = set(raw_rhr(participant)) | set(raw_score_rhr(participant))
    days |= {pd.Timestamp(r["dateOfSleep"]) for r in raw_json(participant, "sleep.json")
             if r["mainSleep"]}
    for r in raw_json(participant, "time_in_heart_rate_zones.json"):
        zones = r["value"]["valuesInZones"]
        worn = sum(zones.get(k, 0) for k in ("BELOW_DEFAULT_ZONE_1", "IN_DEFAULT_ZONE_1",
                                              "IN_DEFAULT_ZONE_2", "IN_DEFAULT_ZONE_3"))
        if worn >= 600:
            days.add(pd.Timestamp(r["dateTime"][:10]))
    wellness = pd.read_csv(DATA / participant / "wellness.csv")
    answers = wellness[["fatigue", "mood", "readiness", "sleep_duration_h", "sleep_quality",
                        "soreness", "stress"]]
    days |= set(local_days(DATA / participant / "wellness.csv",
                           "effective_time_frame")[~(answers == 0).all(axis=1)])
    if (DATA / participant / "injury.csv").exists():
        days |= set(local_days(DATA / participant / "injury.csv", "effective_time_frame"))
    sessions = srpe_sessions(participant)
    if len(sessions):
        days |= set(pd.date_range(sessions["date"].min(), sessions["date"].max(), freq="D"))
    return days


# ----------------------------------------------------------------------------- tests

def test_every_participant_is_loaded_with_the_raw_days(frame: pd.DataFrame) -> None:
    assert len(PARTICIPANTS) == 16
    assert sorted(frame["user_id"].unique()) == [f"pmdata-{p}" for p in PARTICIPANTS]
    for p in PARTICIPANTS:
        got = set(frame.loc[frame["user_id"] == f"pmdata-{p}", "date"])
        assert got == expected_days(p), p


def test_no_duplicate_keys_and_ranges(frame: pd.DataFrame) -> None:
    assert not frame.duplicated(["user_id", "date"]).any()
    assert (frame["source"] == "pmdata").all()
    assert frame["hrv_rmssd_ms"].isna().all()  # PMData has no HRV
    for name, col in NUMERIC_COLUMNS.items():
        values = frame[name].dropna()
        if name == "load_trimp":
            continue  # derived centrally after validation
        assert ((values >= col.lo) & (values <= col.hi)).all(), name


def test_resting_hr_zero_means_missing(table: DailyTable, frame: pd.DataFrame) -> None:
    raw = {r["dateTime"][:10]: r["value"]["value"]
           for r in raw_json("p03", "resting_heart_rate.json")}
    assert raw["2019-11-03"] == 0
    assert pd.Timestamp("2019-11-03") not in raw_score_rhr("p03")
    assert np.isnan(row_of(frame, "p03", "2019-11-03")["rhr_bpm"])
    assert (frame["rhr_bpm"].dropna() > 0).all()
    # the zeros are blanked by the loader as "no reading", not as out-of-range values
    notes = [n for n in table.notes if n.path.endswith("p03/resting_heart_rate.json")
             and "no reading" in n.message]
    assert [n.count for n in notes] == [sum(v == 0 for v in raw.values())]
    assert not any("rhr_bpm: values outside" in n.message for n in table.notes)


def test_resting_hr_from_json_and_from_sleep_score(frame: pd.DataFrame) -> None:
    assert row_of(frame, "p01", "2019-11-01")["rhr_bpm"] == pytest.approx(53.74107360839844)
    # p02's JSON has 0 on 2020-01-01; the sleep ending 2020-01-02 carries that day's RHR, 45
    raw = {r["dateTime"][:10]: r["value"]["value"]
           for r in raw_json("p02", "resting_heart_rate.json")}
    assert raw["2020-01-01"] == 0
    assert row_of(frame, "p02", "2020-01-01")["rhr_bpm"] == 45
    n_expected = 0
    for p in PARTICIPANTS:
        from_json, from_score = raw_rhr(p), raw_score_rhr(p)
        n_expected += len(set(from_json) | set(from_score))
        rows = frame[frame["user_id"] == f"pmdata-{p}"].set_index("date")["rhr_bpm"]
        for day, value in from_json.items():
            assert rows[day] == pytest.approx(value)
    assert frame["rhr_bpm"].notna().sum() == n_expected
    assert sum(len(raw_rhr(p)) for p in PARTICIPANTS) == 1658  # README: 1,658 RHR-days


def test_srpe_day_load(frame: pd.DataFrame) -> None:
    # p01 2019-11-05T22:51Z, running, RPE 7, 30 min: CR-10 7 → Edwards weight 4 → 120
    row = row_of(frame, "p01", "2019-11-05")
    assert row["load_trimp"] == 120
    assert row["load_basis"] == "srpe"
    assert row["strength_min"] == 0
    # p02 2019-11-03: strength RPE 7 × 100 min (weight 4) + running RPE 6 × 90 min (weight 3)
    row = row_of(frame, "p02", "2019-11-03")
    assert row["load_trimp"] == 4 * 100 + 3 * 90
    assert row["strength_min"] == 100
    # p04 2020-02-07: ['individual', 'strength', 'running'], RPE 6, 30 min → 15 min strength
    row = row_of(frame, "p04", "2020-02-07")
    sessions = srpe_sessions("p04")
    assert (sessions["date"] == pd.Timestamp("2020-02-07")).sum() == 1
    assert row["load_trimp"] == 3 * 30
    assert row["strength_min"] == 15


def test_rest_days_inside_the_log_and_zone_days_outside(frame: pd.DataFrame) -> None:
    row = row_of(frame, "p01", "2019-11-07")  # no session logged; p01 logs 2019-11-05..03-14
    assert row["load_trimp"] == 0 and row["strength_min"] == 0
    assert row["load_basis"] == "no_activity"
    row = row_of(frame, "p01", "2020-03-20")  # after the last logged session
    assert row["load_basis"] == "hr_zones"
    zones = [row[f"z{i}_min"] for i in range(1, 6)]
    assert row["load_trimp"] == pytest.approx(float(np.dot(zones, [1, 2, 3, 4, 5])))
    for p in PARTICIPANTS:
        sessions = srpe_sessions(p)
        rows = frame[frame["user_id"] == f"pmdata-{p}"]
        if len(sessions):
            inside = rows["date"].between(sessions["date"].min(), sessions["date"].max())
            assert rows.loc[inside, "load_basis"].isin(["srpe", "no_activity"]).all(), p
            logged = rows["date"].isin(sessions["date"])
            assert (rows.loc[logged, "load_basis"] == "srpe").all(), p
            assert rows.loc[~inside, "load_basis"].isin(["hr_zones", None]).all(), p
        else:
            assert rows["load_basis"].isin(["hr_zones", None]).all(), p


def test_fitbit_zone_mapping(frame: pd.DataFrame) -> None:
    record = next(r for r in raw_json("p01", "time_in_heart_rate_zones.json")
                  if r["dateTime"].startswith("2019-11-05"))
    z = record["value"]["valuesInZones"]
    fat, cardio, peak = z["IN_DEFAULT_ZONE_1"], z["IN_DEFAULT_ZONE_2"], z["IN_DEFAULT_ZONE_3"]
    row = row_of(frame, "p01", "2019-11-05")
    # whole-day fat-burn minutes are everyday activity: not counted (_fitbit.TRAINING_ZONE_SHARES)
    assert fat > 0
    expected = [0, 0, cardio * 2 / 3, cardio / 3 + peak / 3, peak * 2 / 3]
    assert [row[f"z{i}_min"] for i in range(1, 6)] == pytest.approx(expected)


def test_sleep_from_main_sleep_with_stages(frame: pd.DataFrame) -> None:
    # p01 2019-11-02: 378 min asleep, efficiency 97, rem 83 min, deep 36 min
    row = row_of(frame, "p01", "2019-11-02")
    assert row["sleep_min"] == 378
    assert row["sleep_efficiency_pct"] == 97
    assert row["rem_pct"] == pytest.approx(100 * 83 / 378)
    assert row["deep_pct"] == pytest.approx(100 * 36 / 378)
    # p08 2020-03-29 (clocks went forward): Fitbit wrote efficiency 0 with 510 min asleep
    row = row_of(frame, "p08", "2020-03-29")
    assert row["sleep_min"] == 510 and np.isnan(row["sleep_efficiency_pct"])
    n_main_days = sum(len({r["dateOfSleep"] for r in raw_json(p, "sleep.json") if r["mainSleep"]})
                      for p in PARTICIPANTS)
    assert frame["sleep_min"].notna().sum() == n_main_days


def test_wellness_and_injury(frame: pd.DataFrame) -> None:
    assert row_of(frame, "p01", "2019-11-01")["readiness_self"] == 5  # 08:31Z, readiness 5
    assert row_of(frame, "p01", "2019-11-07")["injury"] == 0  # report "{}"
    assert row_of(frame, "p01", "2020-01-07")["injury"] == 1  # {'right_hand': 'minor'}
    assert frame["injury"].dropna().isin([0, 1]).all()


def test_demographics_from_the_overview_sheet(frame: pd.DataFrame) -> None:
    people = frame.groupby("user_id")[["age", "sex"]].agg(["min", "max"])
    assert (people[("age", "min")] == people[("age", "max")]).all()
    assert people.loc["pmdata-p01", ("age", "min")] == 48
    assert people.loc["pmdata-p01", ("sex", "min")] == "male"
    assert people.loc["pmdata-p04", ("age", "min")] == 26
    assert people.loc["pmdata-p04", ("sex", "min")] == "female"
    assert people.loc["pmdata-p06", ("sex", "min")] == "male"  # "male " in the sheet
    assert frame["age"].notna().all() and frame["sex"].notna().all()


def test_single_participant_folder_finds_the_sheet(tmp_path: Path) -> None:
    table = load_exports([DATA / "p03"])
    assert set(table.frame["user_id"]) == {"pmdata-p03"}
    assert (table.frame["age"] == 25).all()


def test_claims_only_pmdata_files(tmp_path: Path) -> None:
    for p in PARTICIPANTS:
        assert all(LOADER.claims(f) for f in (DATA / p).iterdir())
    assert LOADER.claims(DATA / "all" / "participant-overview.xlsx")
    other = tmp_path / "srpe.csv"
    other.write_text("date,rpe,minutes\n2020-01-01,5,30\n")
    assert not LOADER.claims(other)
    other = tmp_path / "sleep.json"
    other.write_text('[{"id": 1, "start": "2020-01-01"}]\n')
    assert not LOADER.claims(other)


def test_bad_srpe_value_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "p99"
    folder.mkdir()
    (folder / "srpe.csv").write_text(
        "end_date_time,activity_names,perceived_exertion,duration_min\n"
        "2019-11-05T22:51:54.710Z,\"['individual', 'running']\",seven,30\n")
    with pytest.raises(DataError, match=r"srpe\.csv.*perceived_exertion.*seven"):
        load_exports([folder])
