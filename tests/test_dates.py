"""Dates that lie (issue 21, item 2): day/month order is decided from the data, never guessed
per value; timestamps whose UTC offset changes with daylight saving are read at local time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders._io import day_first, to_datetime
from physiology_model.data.table import NoteLog
from physiology_model.errors import DataError

WHOOP_U01 = Path(__file__).resolve().parent.parent / "data" / "real" / "whoop" / "u01"
TIME_COLUMNS = ("Cycle start time", "Cycle end time", "Sleep onset", "Wake onset")


def _canonical(tmp_path: Path, dates: list[str]) -> Path:
    folder = tmp_path / "export"
    folder.mkdir(parents=True)
    rows = [f"{d},{60 + i % 5},{50 + i % 3},{55 + i % 20}" for i, d in enumerate(dates)]
    (folder / "daily.csv").write_text("date,hrv_rmssd_ms,rhr_bpm,recovery_pct\n"
                                      + "\n".join(rows) + "\n")
    return folder


def _iso_days(start: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D")


def test_a_day_above_12_settles_day_first_for_every_row(tmp_path) -> None:
    days = _iso_days("2024-03-01", 20)  # 01/03 .. 20/03: 1-12 alone would read as Jan-Dec
    folder = _canonical(tmp_path, [d.strftime("%d/%m/%Y") for d in days])
    table = load_exports([folder])
    assert list(table.frame["date"]) == list(days)


def test_a_second_field_above_12_settles_month_first(tmp_path) -> None:
    days = _iso_days("2024-03-01", 20)
    folder = _canonical(tmp_path, [d.strftime("%m/%d/%Y") for d in days])
    assert list(load_exports([folder]).frame["date"]) == list(days)


def test_both_orders_in_one_column_is_an_error_naming_both(tmp_path) -> None:
    folder = _canonical(tmp_path, ["25/03/2024", "03/26/2024", "01/02/2024"])
    with pytest.raises(DataError, match=r"daily.csv: column 'date' mixes day-first "
                                        r"\('25/03/2024'\) and month-first \('03/26/2024'\)"):
        load_exports([folder])


def test_ambiguous_dates_are_a_stated_assumption_or_an_error(tmp_path) -> None:
    # 2-12 February read day-first (consecutive days) or month-first (11 months apart)
    days = [f"{d:02d}/02/2024" for d in range(2, 13)]
    table = load_exports([_canonical(tmp_path, days)])
    assert table.frame["date"].min() == pd.Timestamp("2024-02-02")
    assert any("read as DD/MM" in n.message for n in table.notes)
    # one date alone cannot be told apart: an error asking for ISO dates
    with pytest.raises(DataError, match="YYYY-MM-DD"):
        load_exports([_canonical(tmp_path / "one", ["03/04/2024"])])
    with pytest.raises(DataError, match="cannot be told apart"):
        day_first(pd.Series(["02/03/2024", "03/02/2024"]), "d", Path("x.csv"), log=None)


def test_iso_dates_are_never_taken_for_numeric_ones() -> None:
    assert not day_first(pd.Series(["2024-03-04", "2024-12-25T07:00:00+01:00"]), "d",
                         Path("x.csv"))


def test_offsets_that_change_with_daylight_saving_are_read_at_local_time() -> None:
    frame = pd.DataFrame({"t": ["2024-03-30T07:00:00+01:00", "2024-03-31T07:05:00+02:00",
                                "2024-04-01T06:55:00+02:00"]})
    log = NoteLog()
    values = to_datetime(frame, "t", Path("x.csv"), log=log)
    assert list(values) == [pd.Timestamp("2024-03-30 07:00"), pd.Timestamp("2024-03-31 07:05"),
                            pd.Timestamp("2024-04-01 06:55")]
    assert any("2 different UTC offsets" in n.message for n in log.notes)


def _whoop_copy(tmp_path: Path, rewrite) -> Path:
    cycles = pd.read_csv(WHOOP_U01 / "physiological_cycles.csv", dtype=str)
    for column in TIME_COLUMNS:
        cycles[column] = cycles[column].map(
            lambda v: v if pd.isna(v) else rewrite(pd.Timestamp(v)))
    out = tmp_path / "u01"
    out.mkdir()
    cycles.to_csv(out / "physiological_cycles.csv", index=False)
    return out


@pytest.mark.parametrize("rewrite", [
    lambda t: t.strftime("%d/%m/%Y %H:%M:%S"),                         # day-first
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S")                          # DST offsets
    + ("+02:00" if t.month in (4, 5, 6, 7, 8, 9, 10) else "+01:00"),
], ids=["day_first", "dst_offsets"])
def test_a_whoop_export_reads_the_same_days_in_any_of_these_shapes(tmp_path, rewrite) -> None:
    original = load_exports([WHOOP_U01]).frame
    rewritten = load_exports([_whoop_copy(tmp_path, rewrite)]).frame
    assert list(rewritten["date"]) == list(original["date"])
    pd.testing.assert_series_equal(rewritten["hrv_rmssd_ms"], original["hrv_rmssd_ms"])


@pytest.mark.parametrize("bad", ["2264-04-13", "1970-01-01"])
def test_a_date_no_wearable_recorded_is_one_error_naming_the_row(tmp_path, bad) -> None:
    days = [str(d.date()) for d in _iso_days("2024-03-01", 5)] + [bad]
    with pytest.raises(DataError, match=rf"daily.csv: column 'date': 1 dates outside "
                                        rf"1990-2099 \(e.g. {bad} 00:00:00 in data row 6\)"):
        load_exports([_canonical(tmp_path, days)])


def test_to_numbers_is_to_number_of_each_column_and_names_the_first_bad_one():
    from physiology_model.data.loaders._io import to_number, to_numbers

    frame = pd.DataFrame({"a": ["45,3", "12%", None, "N/A"], "b": ["1.5", "--", "7", " 8 "],
                          "c": ["1", "x", "y", "2"], "d": ["3", "4", "zz", "5"]}, dtype=object)
    frame.attrs["decimal_comma"] = False
    both = to_numbers(frame, ["a", "b"], Path("f.csv"))
    for name in ("a", "b"):
        assert both[name].equals(to_number(frame, name, Path("f.csv")))
    assert both["a"].tolist()[:2] == [45.3, 12.0] and both["b"].tolist()[2:] == [7.0, 8.0]
    with pytest.raises(DataError, match=r"f.csv: column 'c': 2 values are not numbers "
                                        r"\(e.g. 'x' in data row 2\)"):
        to_numbers(frame, ["a", "c", "d"], Path("f.csv"))
    assert to_numbers(frame, [], Path("f.csv")) == {}
