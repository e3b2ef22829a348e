"""The Couzens loader: four files of one athlete → one daily series, fills blanked, the
performance series kept apart."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physiology_model.data.loaders import _registry, couzens, load_exports, trainingpeaks
from physiology_model.data.loaders.couzens import load_couzens_performance
from physiology_model.data.table import NUMERIC_COLUMNS
from physiology_model.errors import DataError

FOLDER = Path(__file__).resolve().parents[1] / "data" / "real" / "couzens" / "u01"
MODEL = FOLDER / "model_data.csv"
OPTIMIZATION = FOLDER / "model_data_optimization.csv"
PERFORMANCE = FOLDER / "performance_model_data - Copy.csv"
WORKOUTS = FOLDER / "workouts.csv"

RMSSD_FILL = 41.61121857


def _raw(path: Path) -> pd.DataFrame:
    """A Couzens table read independently of the loader, indexed by its m/d/Y date."""
    frame = pd.read_csv(path, index_col=0)
    frame.index = pd.to_datetime(frame.index, format="%m/%d/%Y")
    return frame


@pytest.fixture(scope="module")
def table():
    return load_exports([FOLDER])


@pytest.fixture(scope="module")
def days(table) -> pd.DataFrame:
    return table.frame.set_index("date")


@pytest.fixture(scope="module")
def model() -> pd.DataFrame:
    return _raw(MODEL)


def test_one_user_unique_sorted_keys(table):
    f = table.frame
    assert table.users == ["couzens-u01"]
    assert set(f["source"]) == {"couzens"}
    assert not f.duplicated(["user_id", "date"]).any()
    assert f["date"].is_monotonic_increasing


def test_row_count_is_union_of_table_days_and_the_2020_log_span(table):
    table_days = (set(_raw(PERFORMANCE).index) | set(_raw(MODEL).index)
                  | set(_raw(OPTIMIZATION).index))
    workouts = pd.read_csv(WORKOUTS)
    done = workouts[workouts["TimeTotalInHours"].notna() | workouts["TSS"].notna()]
    day = pd.to_datetime(done["WorkoutDay"])
    log_span = pd.date_range(day.min(), day.max(), freq="D")
    assert len(table_days) == 2362
    assert len(table.frame) == len(table_days | set(log_span)) == 2362 + 113


def test_mean_imputed_fills_are_missing(days, model):
    fill_days = model.index[(model["RMSSD"] - RMSSD_FILL).abs() < 1e-6]
    assert len(fill_days) == 983
    # the same days carry the RHR and sleep fills
    assert (model.loc[fill_days, "RHR_lying"].round(6) == 54.553191).all()
    assert (model.loc[fill_days, "SLEEP"].round(6) == 8.783756).all()
    for column in ("hrv_rmssd_ms", "rhr_bpm", "sleep_min", "readiness_self"):
        assert days.loc[fill_days, column].isna().all(), column
    # before the model tables start, the performance table's RMSSD is all fill
    early = days.loc[: "2014-03-11"]
    assert len(early) == 345 and early["hrv_rmssd_ms"].isna().all()


def test_fill_repair_note_counts_match_the_raw_file(table, model):
    notes = [n for n in table.notes if n.path == str(MODEL) and n.kind == "repair"]
    by_column = {n.message.split(" ")[0]: n.count for n in notes if "imputation" in n.message}
    assert by_column == {
        "RMSSD": int(((model["RMSSD"] - RMSSD_FILL).abs() < 1e-6).sum()),
        "RHR_lying": int(((model["RHR_lying"] - 54.55319149).abs() < 1e-6).sum()),
        "SLEEP": int(((model["SLEEP"] - 8.783755677).abs() < 1e-6).sum()),
    }


def test_hrv_days_are_the_measured_ones(table, days, model):
    rmssd = model["RMSSD"]
    zero = rmssd == 0
    assert int(zero.sum()) == 31
    assert days.loc[model.index[zero], "hrv_rmssd_ms"].isna().all()
    measured = ~zero & ((rmssd - RMSSD_FILL).abs() >= 1e-6) & rmssd.between(3, 300)
    # the isolated mornings the artefact rule (loaders/_hrv.py) sets to missing are the rest
    flagged = sum(n.count for n in table.notes if "artefact" in n.message)
    assert 0 < flagged < 50
    assert days["hrv_rmssd_ms"].count() + flagged == int(measured.sum()) == 1002
    assert days["hrv_rmssd_ms"].dropna().between(3, 300).all()
    # 303 ms is outside the physiological range: blanked by the central check, with a note
    assert np.isnan(days.loc["2017-03-17", "hrv_rmssd_ms"])
    assert days.loc["2017-03-16", "hrv_rmssd_ms"] == 48.0


def test_units_sleep_hours_to_minutes_and_readiness_rescaled(days, model):
    day = pd.Timestamp("2016-06-16")
    assert (model.loc[day, "MOOD"], model.loc[day, "MOTIVATION"]) == (4, 2)
    assert days.loc[day, "sleep_min"] == pytest.approx(model.loc[day, "SLEEP"] * 60)
    assert days.loc[day, "rhr_bpm"] == model.loc[day, "RHR_lying"] == 58
    assert days.loc[day, "readiness_self"] == pytest.approx(5.0)  # mean 3 on 1-5 → 5 of 10
    assert days["readiness_self"].dropna().between(0, 10).all()
    # SLEEP 88.98 h is out of range after conversion
    assert np.isnan(days.loc["2019-02-24", "sleep_min"])


def test_tss_day_uses_the_performance_table(days):
    perf = _raw(PERFORMANCE)
    opt = _raw(OPTIMIZATION)
    day = pd.Timestamp("2014-03-12")
    # the optimization table misses a session that day; the performance table is complete
    assert (perf.loc[day, "TSS"], opt.loc[day, "TSS"]) == (61, 44)
    assert days.loc[day, "load_trimp"] == pytest.approx(2.5 * 61)
    assert days.loc[day, "load_basis"] == "tss"
    assert np.isnan(days.loc[day, "z1_min"])  # zones cover only 66 of 101 minutes


def test_full_zone_day_maps_seven_zones_onto_five(days):
    perf = _raw(PERFORMANCE)
    day = pd.Timestamp("2016-05-18")
    raw = perf.loc[day, [f"HRZone{i}Minutes" for i in range(1, 8)]].to_numpy(dtype=float)
    assert raw.sum() >= 0.9 * perf.loc[day, "Duration"] * 60
    expected = list(raw[:4]) + [raw[4:].sum()]
    got = days.loc[day, ["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]].to_numpy(dtype=float)
    np.testing.assert_allclose(got, expected)
    assert days.loc[day, "load_basis"] == "hr_zones"
    assert days.loc[day, "load_trimp"] == pytest.approx(np.dot(expected, [1, 2, 3, 4, 5]))


def test_every_table_day_has_load_and_zero_tss_is_rest(days):
    tables = days.loc[:"2019-09-18"]
    # every day has a load, except where it exceeds the table's range (an Ironman day, 2013-08-04,
    # is 2,021 Edwards TRIMP) and the central check blanks it
    unknown = tables[tables["load_trimp"].isna()]
    zone_trimp = unknown[["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]] @ [1, 2, 3, 4, 5]
    assert (zone_trimp > NUMERIC_COLUMNS["load_trimp"].hi).all()
    assert len(unknown) <= 1
    perf = _raw(PERFORMANCE)
    zones = perf[[f"HRZone{i}Minutes" for i in range(1, 8)]].sum(axis=1)
    rest = perf.index[(perf["TSS"] == 0) & (zones == 0)]
    assert len(rest) == 519
    assert (days.loc[rest, "load_trimp"] == 0).all()


def test_2020_workouts_are_read_with_trainingpeaks_rules(days):
    log = days.loc["2020-01-01":]
    assert len(log) == 113
    assert log.index.min() == pd.Timestamp("2020-01-01")
    assert log.index.max() == pd.Timestamp("2020-04-22")
    # 2020-01-03 has only "Travel to San Fran" (no duration, TSS or zones): a rest day
    assert days.loc["2020-01-03", "load_trimp"] == 0
    assert days.loc["2020-01-03", "load_basis"] == "no_activity"
    workouts = pd.read_csv(WORKOUTS)
    jan2 = workouts[workouts["WorkoutDay"] == "2020-01-02"]
    zones = jan2[[f"HRZone{i}Minutes" for i in range(1, 8)]].sum().to_numpy()
    expected = list(zones[:4]) + [zones[4:].sum()]
    got = days.loc["2020-01-02", ["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]]
    np.testing.assert_allclose(got.to_numpy(dtype=float), expected)
    strength = workouts[workouts["WorkoutType"] == "Strength"]
    day = strength["WorkoutDay"].iloc[0]
    hours = workouts.loc[(workouts["WorkoutDay"] == day)
                         & (workouts["WorkoutType"] == "Strength"), "TimeTotalInHours"].sum()
    assert days.loc[day, "strength_min"] == pytest.approx(hours * 60)


def test_exactly_one_loader_claims_each_file():
    for path in (MODEL, OPTIMIZATION, PERFORMANCE, WORKOUTS):
        claimers = [ld.source for ld in _registry() if ld.claims(path)]
        assert claimers == ["couzens"], (path.name, claimers)
    assert not trainingpeaks.LOADER.claims(WORKOUTS)


def test_a_trainingpeaks_export_alone_is_not_couzens(tmp_path):
    lone = tmp_path / "someone"
    lone.mkdir()
    shutil.copy(WORKOUTS, lone / "workouts.csv")
    assert not couzens.LOADER.claims(lone / "workouts.csv")
    assert trainingpeaks.LOADER.claims(lone / "workouts.csv")


def test_performance_series():
    perf = load_couzens_performance(FOLDER)
    raw = _raw(PERFORMANCE)
    assert list(perf.columns) == ["date", "tss", "ctl", "tsb", "duration_h", "swim_h", "bike_h",
                                  "run_h", "run_ef"]
    assert len(perf) == len(raw) == 2362
    assert perf["date"].is_unique and perf["date"].is_monotonic_increasing
    run_ef = perf["run_ef"].dropna()
    assert len(run_ef) == int((raw["Run EF"] > 0).sum()) == 539
    assert run_ef.between(0.3, 2.0).all()
    first = perf.set_index("date").loc["2013-04-01"]
    assert first["run_ef"] == pytest.approx(1.403225806)
    assert first["tss"] == 54
    # the performance table's CTL is continuous from 2013 (the model tables restart it at 0)
    assert perf.set_index("date").loc["2014-03-12", "ctl"] == pytest.approx(72.991468, abs=1e-5)


def test_performance_series_needs_a_table(tmp_path):
    shutil.copy(MODEL, tmp_path / "model_data.csv")
    with pytest.raises(DataError, match="no Couzens performance"):
        load_couzens_performance(tmp_path)


def test_text_in_a_number_column_names_the_file(tmp_path):
    folder = tmp_path / "u09"
    folder.mkdir()
    lines = MODEL.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "n/a?"  # RMSSD
    lines[5] = ",".join(cells)
    (folder / "model_data.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"model_data\.csv.*'RMSSD'"):
        load_exports([folder])
