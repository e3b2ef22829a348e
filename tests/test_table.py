"""The canonical daily table: validation, round trip, and the CLI summary on a small export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.table import ALL_COLUMNS, DailyTable, Note, NoteLog, validate_frame
from physiology_model.errors import DataError


def _frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"user_id": ["a"] * n, "date": pd.date_range("2024-01-01", periods=n)}
    return pd.DataFrame({**base, **columns})


def test_validate_orders_columns_types_and_rows():
    raw = _frame(rhr_bpm=[50, 51, 52]).iloc[::-1]
    log = NoteLog()
    out = validate_frame(raw, "x.csv", log)
    assert list(out.columns) == list(ALL_COLUMNS)
    assert out["date"].is_monotonic_increasing
    assert out["rhr_bpm"].dtype == np.float64
    assert out["hrv_rmssd_ms"].isna().all()
    assert log.notes == []


def test_out_of_range_is_blanked_and_counted():
    log = NoteLog()
    out = validate_frame(_frame(rhr_bpm=[50, 51, 300, 52]), "x.csv", log)
    assert out["rhr_bpm"].isna().sum() == 1
    (note,) = log.notes
    assert note.kind == "repair" and note.count == 1 and "rhr_bpm" in note.message


def test_mostly_out_of_range_is_a_unit_error():
    with pytest.raises(DataError, match="x.csv: column rhr_bpm.*another unit"):
        validate_frame(_frame(rhr_bpm=[500, 510, 520, 52]), "x.csv", NoteLog())


def test_duplicate_keys_are_an_error_naming_the_day():
    raw = pd.concat([_frame(rhr_bpm=[50, 51]), _frame(rhr_bpm=[50])])
    with pytest.raises(DataError, match="2024-01-01"):
        validate_frame(raw, "x.csv", NoteLog())


def test_unknown_session_value_is_a_loader_bug():
    with pytest.raises(ValueError, match="session"):
        validate_frame(_frame(session=["jogging"]), "x.csv", NoteLog())


def test_parquet_round_trip(tmp_path):
    table = DailyTable(validate_frame(_frame(rhr_bpm=[50, 51], session=["rest", None]),
                                      "x", NoteLog()))
    table.to_parquet(tmp_path / "t.parquet")
    back = DailyTable.from_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back.frame, table.frame)
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_from_parquet_of_garbage_names_the_file(tmp_path):
    bad = tmp_path / "t.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="t.parquet: not a readable parquet"):
        DailyTable.from_parquet(bad)


def test_summary_json_counts_days(tmp_path, capsys):
    days = pd.date_range("2024-01-01", periods=20)
    export = tmp_path / "me"
    export.mkdir()
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"),
                  # varying values: a constant series is a stuck reading (loaders/_stuck.py)
                  "hrv_rmssd_ms": [50.0 + i % 3 for i in range(18)] + [np.nan] * 2,
                  "rhr_bpm": [55.0 + i % 2 for i in range(20)]}).to_csv(export / "daily.csv",
                                                                     index=False)
    assert main(["data", "summary", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (athlete,) = payload["athletes"]
    assert athlete["user_id"] == "me"
    assert (athlete["days"], athlete["hrv_days"], athlete["rhr_days"]) == (20, 18, 20)
    assert athlete["kept"] is True
    assert athlete["first_date"] == "2024-01-01" and athlete["last_date"] == "2024-01-20"
    assert payload["totals"][-1]["source"] == "all"


def test_notes_for_an_athlete_are_its_files_and_the_general_ones():
    notes = (Note("exports/a/sleep.json", "repair", "a's repair", 2),
             Note("exports/b", "repair", "b's repair", 1),
             Note("exports/readme.txt", "ignored", "not an export"),
             Note("(combined)", "info", "combined"))
    table = DailyTable(pd.DataFrame(), notes, (("a", "exports/a"), ("b", "exports/b")))
    assert [n.message for n in table.notes_for("a")] == ["a's repair", "not an export",
                                                          "combined"]
    assert [n.message for n in table.notes_for("b")] == ["b's repair", "not an export",
                                                          "combined"]
    assert DailyTable(pd.DataFrame(), notes).notes_for("a") == list(notes)  # origins unknown


def test_validate_sorts_by_user_then_date_and_converts_each_dtype():
    raw = pd.DataFrame({
        "user_id": pd.Series(["b", "a", "b", "a"], dtype="str"),
        "date": pd.to_datetime(["2024-01-02 07:30", "2024-01-03", "2024-01-01",
                                "2024-01-01"], format="mixed").astype("datetime64[us]"),
        "rhr_bpm": pd.Series(["50", "51", None, "52"], dtype=object),
        "session": pd.Series(["rest", None, "hiit", "rest"], dtype="str"),
    }).set_axis([7, 3, 5, 1])
    out = validate_frame(raw, "x.csv", NoteLog())
    assert out["user_id"].tolist() == ["a", "a", "b", "b"]
    assert out["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-03",
                                                             "2024-01-01", "2024-01-02"]
    assert out["date"].dtype == "datetime64[ns]" and (out["date"].dt.hour == 0).all()
    assert out["rhr_bpm"].tolist()[:2] == [52.0, 51.0] and out["rhr_bpm"].tolist()[3] == 50.0
    assert np.isnan(out["rhr_bpm"][2])
    assert out["session"].dtype == object
    assert out["session"].tolist() == ["rest", None, "hiit", "rest"]
    assert out["load_basis"].tolist() == [None] * 4
    assert list(out.index) == [0, 1, 2, 3]


def test_duplicate_keys_are_counted_and_the_first_in_frame_order_named():
    raw = pd.DataFrame({"user_id": ["b", "a", "b", "a", "a"],
                        "date": pd.to_datetime(["2024-01-05", "2024-01-02", "2024-01-05",
                                                "2024-01-01", "2024-01-02"])})
    with pytest.raises(DataError, match=r"x.csv: 4 rows share a \(user, date\) key, "
                                        r"e.g. b on 2024-01-05"):
        validate_frame(raw, "x.csv", NoteLog())


def test_athlete_rows_are_each_users_rows_in_date_order():
    from physiology_model.data.table import athlete_rows

    frame = pd.DataFrame({"user_id": ["b", "a", "b", "a", "c"],
                          "date": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-01",
                                                  "2024-01-02", "2024-01-01"])})
    rows = [(user, positions.tolist()) for user, positions in athlete_rows(frame)]
    assert rows == [("b", [2, 0]), ("a", [1, 3]), ("c", [4])]
    assert athlete_rows(frame.iloc[:0]) == []
