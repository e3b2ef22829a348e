"""The TrainingPeaks loader: a workouts export → daily load, rest days filled inside the log."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import _registry, load_exports
from physiology_model.errors import DataError

FOLDER = Path(__file__).resolve().parents[1] / "data" / "real" / "trainingpeaks" / "u01"
EXPORT = FOLDER / "workouts.csv"
HR_ZONES = [f"HRZone{i}Minutes" for i in range(1, 8)]
Z = ["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]
WEIGHTS = np.array([1, 2, 3, 4, 5])


@pytest.fixture(scope="module")
def table():
    return load_exports([FOLDER])


@pytest.fixture(scope="module")
def days(table) -> pd.DataFrame:
    return table.frame.set_index("date")


@pytest.fixture(scope="module")
def raw() -> list[dict[str, str]]:
    with EXPORT.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _done(row: dict[str, str]) -> bool:
    return any(row[c] for c in ("TimeTotalInHours", "TSS", "HRZone1Minutes"))


def _edwards(row: dict[str, str]) -> np.ndarray:
    z = np.array([float(row[c]) for c in HR_ZONES])
    return np.concatenate([z[:4], [z[4:].sum()]])


def test_one_load_only_user_with_unique_keys(table):
    f = table.frame
    assert table.users == ["trainingpeaks-u01"]
    assert set(f["source"]) == {"trainingpeaks"}
    assert not f.duplicated(["user_id", "date"]).any()
    for column in ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min", "readiness_self"):
        assert f[column].isna().all(), column


def test_rows_cover_the_span_of_completed_workouts(table, raw):
    assert len(raw) == 129
    done_days = sorted({r["WorkoutDay"] for r in raw if _done(r)})
    span = pd.date_range(done_days[0], done_days[-1], freq="D")
    assert len(table.frame) == len(span) == 73
    assert list(table.frame["date"]) == list(span)


def test_days_without_a_completed_workout_are_rest(days, raw):
    done_days = {r["WorkoutDay"] for r in raw if _done(r)}
    rest = [d for d in days.index.strftime("%Y-%m-%d") if d not in done_days]
    assert len(rest) == 8
    assert (days.loc[rest, "load_trimp"] == 0).all()
    assert (days.loc[rest, "load_basis"] == "no_activity").all()
    assert (days.loc[rest, "strength_min"] == 0).all()


def test_zone_day_maps_seven_zones_to_edwards(days, raw):
    rows = [r for r in raw if r["WorkoutDay"] == "2026-02-01"]
    assert len(rows) == 3 and all(r["HRZone1Minutes"] for r in rows)
    expected = sum(_edwards(r) for r in rows)
    np.testing.assert_allclose(days.loc["2026-02-01", Z].to_numpy(dtype=float), expected)
    assert days.loc["2026-02-01", "load_basis"] == "hr_zones"
    assert days.loc["2026-02-01", "load_trimp"] == pytest.approx(float(expected @ WEIGHTS))


def test_tss_only_workout_makes_a_mixed_day(days, raw):
    rows = [r for r in raw if r["WorkoutDay"] == "2026-03-05" and _done(r)]
    tss_only = [r for r in rows if not r["HRZone1Minutes"]]
    with_zones = [r for r in rows if r["HRZone1Minutes"]]
    assert len(tss_only) == 1 and tss_only[0]["WorkoutType"] == "Strength"
    expected = 2.5 * float(tss_only[0]["TSS"]) + sum(float(_edwards(r) @ WEIGHTS)
                                                       for r in with_zones)
    day = days.loc["2026-03-05"]
    assert day["load_trimp"] == pytest.approx(expected)
    assert day["load_basis"] == "hr_zones+tss"
    assert day[Z].isna().all()  # zones would describe only part of the day
    assert day["strength_min"] == pytest.approx(float(tss_only[0]["TimeTotalInHours"]) * 60)


def test_workout_without_any_load_measure_leaves_the_day_unknown(days):
    # rides with only a duration (no HR, power/TSS or RPE)
    assert np.isnan(days.loc["2026-03-13", "load_trimp"])
    assert np.isnan(days.loc["2026-04-04", "load_trimp"])
    assert days["load_trimp"].count() == 71


def test_reupload_on_the_next_day_is_dropped(table, days, raw):
    same = [r for r in raw if r["DistanceInMeters"] == "41001.98828125"]
    assert [r["WorkoutDay"] for r in same] == ["2026-03-13", "2026-03-14"]
    notes = [n for n in table.notes if "uploaded twice" in n.message]
    assert [n.count for n in notes] == [1]
    # without the copy, 2026-03-14 is fully measured
    assert days.loc["2026-03-14", "load_trimp"] > 0


def test_strength_minutes_from_workout_type(days, raw):
    expected: dict[str, float] = {}
    for r in raw:
        # type Strength, or a generic type whose title says so (misspelt in one workout)
        if _done(r) and (r["WorkoutType"] == "Strength"
                         or (r["WorkoutType"] == "Other" and "strenght" in r["Title"].lower())):
            expected[r["WorkoutDay"]] = (expected.get(r["WorkoutDay"], 0.0)
                                         + float(r["TimeTotalInHours"]) * 60)
    assert len(expected) == 13  # 14 strength workouts, two on one day
    got = days["strength_min"]
    assert got[got > 0].index.strftime("%Y-%m-%d").tolist() == sorted(expected)
    for day, minutes in expected.items():
        assert got[day] == pytest.approx(minutes)


def test_hebrew_titles_are_utf8(table, raw):
    assert any("שחייה" in r["Title"] for r in raw)
    assert not [n for n in table.notes if "cp1252" in n.message]


def test_only_the_trainingpeaks_loader_claims_it():
    assert [ld.source for ld in _registry() if ld.claims(EXPORT)] == ["trainingpeaks"]


HEADER = ("Title,WorkoutType,WorkoutDay,TimeTotalInHours,DistanceInMeters,TSS,Rpe,"
          "HRZone1Minutes,HRZone2Minutes,HRZone3Minutes,HRZone4Minutes,HRZone5Minutes,"
          "HRZone6Minutes")


def _write(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "workouts.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_srpe_fallback_planned_rows_and_five_zone_export(tmp_path):
    folder = tmp_path / "a7"
    _write(folder, [
        "Easy,Run,2024-05-01,0.5,5000,,,10,20,0,0,0,",
        "Gym,Other,2024-05-02,0.75,,,6,,,,,,",          # sRPE only, strength by title
        "Planned,Bike,2024-05-03,,,,,,,,,,",            # planned, not done
        "Hard,Run,2024-05-04,1,10000,80,,5,10,20,15,10,",
    ])
    days = load_exports([folder]).frame.set_index("date")
    assert list(days.index.strftime("%Y-%m-%d")) == ["2024-05-01", "2024-05-02", "2024-05-03",
                                                      "2024-05-04"]
    assert days.loc["2024-05-01", "load_trimp"] == 10 + 40
    assert days.loc["2024-05-02", "load_basis"] == "srpe"
    assert days.loc["2024-05-02", "load_trimp"] == pytest.approx(45 * 3)  # RPE 6 → zone 3
    assert days.loc["2024-05-02", "strength_min"] == pytest.approx(45)
    assert days.loc["2024-05-03", "load_trimp"] == 0  # the plan was not done: rest
    # five zones in this export (HRZone6 empty): 1:1
    np.testing.assert_allclose(days.loc["2024-05-04", Z].to_numpy(dtype=float),
                               [5, 10, 20, 15, 10])


def test_fewer_than_five_zones_is_an_error(tmp_path):
    path = _write(tmp_path / "a8", ["Easy,Run,2024-05-01,0.5,5000,,,10,20,5,,,"])
    with pytest.raises(DataError, match="cannot be mapped") as info:
        load_exports([path.parent])
    assert "workouts.csv" in str(info.value)


def test_unreadable_day_names_the_file(tmp_path):
    path = _write(tmp_path / "a9", ["Easy,Run,someday,0.5,5000,,,10,20,5,1,0,"])
    with pytest.raises(DataError, match="WorkoutDay") as info:
        load_exports([path.parent])
    assert "workouts.csv" in str(info.value)
