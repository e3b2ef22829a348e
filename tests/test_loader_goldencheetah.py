"""The GoldenCheetah loader: OpenData metadata.csv and an athlete zip → daily rows."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import _registry, load_exports
from physiology_model.data.loaders.goldencheetah import infer_utc_offset_hours, short_ids
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parents[1] / "data" / "real" / "goldencheetah"
METADATA = ROOT / "all" / "metadata.csv"
ZIP = ROOT / "gc033874" / "033874ce-e20d-44ba-9cc9-125030b6662f.zip"
Z = ["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]

# UTC offsets the loader infers from activity start hours (checked below against the HRV days)
OFFSET_H = {"0031326c": 2, "2a890d47": 0, "87153177": 0, "d0a080a4": -6}


@pytest.fixture(scope="module")
def table():
    return load_exports([ROOT])


@pytest.fixture(scope="module")
def frame(table) -> pd.DataFrame:
    return table.frame


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """metadata.csv read independently: athlete, UTC start, zones, TSS, rest HRV."""
    with METADATA.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep = ["id", "date", "coggan_tss", "Rest_rMSSD", "Rest_HR", "Rest_SDNN",
            *[f"time_in_zone_H{i}" for i in range(1, 6)]]
    out = pd.DataFrame([{k: r[k] for k in keep} for r in rows])
    out["t"] = pd.to_datetime(out["date"].str.removesuffix(" UTC"), format="%Y/%m/%d %H:%M:%S")
    for k in keep[2:]:
        out[k] = pd.to_numeric(out[k].replace("", np.nan))
    return out


@pytest.fixture(scope="module")
def rides() -> list[dict]:
    with zipfile.ZipFile(ZIP) as archive:
        (name,) = archive.namelist()
        return json.loads(archive.read(name))["RIDES"]


def _user(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return frame[frame["user_id"] == f"goldencheetah-{prefix}"].set_index("date")


def test_users_are_the_four_metadata_athletes_plus_the_zip(table, raw):
    athletes = sorted(raw["id"].unique())
    assert len(athletes) == 4
    assert table.users == sorted([f"goldencheetah-{a[:8]}" for a in athletes]
                                 + ["goldencheetah-033874ce"])
    f = table.frame
    assert not f.duplicated(["user_id", "date"]).any()
    assert set(f["source"]) == {"goldencheetah"}


def test_row_count_per_athlete_is_distinct_local_activity_days(frame, raw):
    for athlete, group in raw.groupby("id"):
        prefix = athlete[:8]
        local = (group["t"] + pd.Timedelta(hours=OFFSET_H[prefix])).dt.normalize()
        assert len(_user(frame, prefix)) == local.nunique(), prefix
    assert len(frame[~frame["user_id"].str.endswith("033874ce")]) == 935


def test_zip_is_read_in_memory(frame, rides):
    assert len(rides) == 731
    days = pd.to_datetime([r["date"] for r in rides], format="%Y/%m/%d %H:%M:%S UTC").normalize()
    athlete = _user(frame, "033874ce")
    assert len(athlete) == days.nunique() == 664  # the inferred offset is 0 for this athlete
    assert athlete["sex"].eq("male").all()
    first = athlete.index[0]
    assert first == pd.Timestamp("2005-06-25")
    born_mid_1967 = pd.Timestamp("1967-07-02")  # yob 1967, birthday unknown
    assert athlete.loc[first, "age"] == pytest.approx((first - born_mid_1967).days / 365.25)
    hrv = athlete["hrv_rmssd_ms"].dropna()
    measured = [float(r["METRICS"]["Rest_rMSSD"]) for r in rides if "Rest_rMSSD" in r["METRICS"]]
    assert sorted(hrv) == sorted(measured) and len(hrv) == 5


def test_inferred_offsets_make_hrv_constant_within_local_days(raw):
    with_hrv = raw[raw["Rest_rMSSD"].notna()]
    for athlete, group in raw.groupby("id"):
        assert infer_utc_offset_hours(group["t"])[0] == OFFSET_H[athlete[:8]]
    for athlete, group in with_hrv.groupby("id"):
        local = (group["t"] + pd.Timedelta(hours=OFFSET_H[athlete[:8]])).dt.normalize()
        assert (group.groupby(local)["Rest_rMSSD"].nunique() == 1).all()


def test_rest_hrv_is_dated_and_carried_forward_copies_are_missing(frame, raw):
    d0 = _user(frame, "d0a080a4")
    assert d0.loc["2018-01-02", ["hrv_rmssd_ms", "rhr_bpm"]].tolist() == [109.7, 50.5]
    # 2018/01/04 00:08 UTC is the evening of 2018-01-03 locally and carries that morning's HRV
    assert d0.loc["2018-01-03", ["hrv_rmssd_ms", "rhr_bpm"]].tolist() == [124.6, 49.7]
    assert d0.loc["2018-01-04", "hrv_rmssd_ms"] == 107.4
    # 107.4 stays on every activity until May: GoldenCheetah repeats the latest measurement
    assert np.isnan(d0.loc["2018-01-05", "hrv_rmssd_ms"])
    for athlete, group in raw[raw["Rest_rMSSD"].notna()].groupby("id"):
        distinct = len(group[["Rest_rMSSD", "Rest_HR", "Rest_SDNN"]].drop_duplicates())
        assert _user(frame, athlete[:8])["hrv_rmssd_ms"].count() == distinct
    assert frame["hrv_rmssd_ms"].count() == 10 + 3 + 5


def test_zone_seconds_become_edwards_minutes_on_the_local_day(frame):
    d0 = _user(frame, "d0a080a4")
    # one activity, 2017/09/14 01:12:34 UTC = the evening of 2017-09-13 at UTC-6
    np.testing.assert_allclose(d0.loc["2017-09-13", Z].to_numpy(dtype=float),
                               np.array([1651, 1234, 2413, 107, 0]) / 60)
    assert d0.loc["2017-09-13", "load_trimp"] == pytest.approx(
        (1651 * 1 + 1234 * 2 + 2413 * 3 + 107 * 4) / 60)
    assert d0.loc["2017-09-13", "load_basis"] == "hr_zones"
    np.testing.assert_allclose(d0.loc["2017-09-14", Z].to_numpy(dtype=float),
                               np.array([1171, 800, 2247, 1397, 0]) / 60)


def test_power_only_activity_uses_tss(frame):
    d0 = _user(frame, "d0a080a4")
    assert d0.loc["2017-12-20", "load_basis"] == "tss"
    assert d0.loc["2017-12-20", "load_trimp"] == pytest.approx(2.5 * 52.04211)
    assert d0.loc["2017-12-20", Z].isna().all()


def test_activities_without_hr_power_or_rpe_leave_the_load_unknown(frame, raw):
    a2 = _user(frame, "2a890d47")
    assert a2["load_trimp"].count() == 114
    assert frame["load_trimp"].dropna().ge(0).all()


def test_impossible_year_of_birth_gives_no_age(table, frame):
    assert _user(frame, "0031326c")["age"].isna().all()
    assert any("2062" in n.message for n in table.notes)
    assert _user(frame, "d0a080a4")["age"].between(29, 32).all()


def test_only_the_goldencheetah_loader_claims_its_files():
    for path in (METADATA, ZIP):
        assert [ld.source for ld in _registry() if ld.claims(path)] == ["goldencheetah"]


def test_short_ids_grow_until_unique():
    a = "0031326c-e796-4f35-8f25-d3937edca90f"
    b = "0031326c-e796-4f35-8f25-000000000000"
    ids = short_ids([a, b])
    assert ids[a] != ids[b] and len(ids[a]) > 8
    assert short_ids([a]) == {a: "0031326c"}


def test_truncated_zip_is_a_data_error(tmp_path):
    bad = tmp_path / "g1" / ZIP.name
    bad.parent.mkdir()
    bad.write_bytes(ZIP.read_bytes()[: 200_000])
    with pytest.raises(DataError) as info:
        load_exports([bad.parent])
    assert ZIP.name in str(info.value) and "zip" in str(info.value)


def test_corrupted_member_is_a_data_error(tmp_path):
    data = bytearray(ZIP.read_bytes())
    data[50_000:50_200] = bytes(200)  # zero a stretch inside the compressed JSON
    bad = tmp_path / "g2" / ZIP.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_exports([bad.parent])
    assert ZIP.name in str(info.value)


def test_zip_without_json_and_bad_metric_are_data_errors(tmp_path):
    folder = tmp_path / "g3"
    folder.mkdir()
    empty = folder / "11111111-2222-3333-4444-555555555555.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("2017_01_01_10_00_00.csv", "secs,hr\n0,100\n")
    with pytest.raises(DataError, match="no athlete JSON"):
        load_exports([folder])

    doc = {"ATHLETE": {"id": "{11111111-2222-3333-4444-555555555555}", "yob": "1980",
                       "gender": "F"},
           "RIDES": [{"date": "2017/01/01 10:00:00 UTC", "sport": "Run",
                      "METRICS": {"workout_time": "fast"}}]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("{11111111-2222-3333-4444-555555555555}.json", json.dumps(doc))
    empty.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="workout_time is not a number"):
        load_exports([folder])


def test_a_small_athlete_zip_end_to_end(tmp_path):
    doc = {"ATHLETE": {"id": "{abcdef01-2222-3333-4444-555555555555}", "yob": "1980",
                       "gender": "F"},
           "RIDES": [
               {"date": "2017/01/01 10:00:00 UTC", "sport": "Run",
                "METRICS": {"workout_time": "3600.0", "time_in_zone_H2": "1800.0",
                            "time_in_zone_H3": ["1800.0", "1800.0"],
                            "Rest_rMSSD": "55.0", "Rest_HR": "48.0"}},
               {"date": "2017/01/02 10:00:00 UTC", "sport": "Strength",
                "METRICS": {"workout_time": "1800.0", "session_rpe": "210.0",
                            "Rest_rMSSD": "55.0", "Rest_HR": "48.0"}},
           ]}
    folder = tmp_path / "g4"
    folder.mkdir()
    with zipfile.ZipFile(folder / "abcdef01-2222-3333-4444-555555555555.zip", "w") as archive:
        archive.writestr("{abcdef01-2222-3333-4444-555555555555}.json", json.dumps(doc))
    days = load_exports([folder]).frame.set_index("date")
    assert list(days["user_id"].unique()) == ["goldencheetah-abcdef01"]
    np.testing.assert_allclose(days.loc["2017-01-01", Z].to_numpy(dtype=float), [0, 30, 30, 0, 0])
    assert days.loc["2017-01-01", "load_trimp"] == 150
    assert days.loc["2017-01-02", "load_basis"] == "srpe"  # RPE 7 × 30 min, zone 4
    assert days.loc["2017-01-02", "load_trimp"] == pytest.approx(4 * 30)
    assert days.loc["2017-01-02", "strength_min"] == 30
    assert days.loc["2017-01-01", "hrv_rmssd_ms"] == 55
    assert np.isnan(days.loc["2017-01-02", "hrv_rmssd_ms"])  # carried forward
    assert (days["sex"] == "female").all()


def test_unzipped_athlete_json_is_read_too(tmp_path, rides):
    folder = tmp_path / "g5"
    folder.mkdir()
    with zipfile.ZipFile(ZIP) as archive:
        (name,) = archive.namelist()
        (folder / name).write_bytes(archive.read(name))
    assert len(load_exports([folder]).frame) == 664
