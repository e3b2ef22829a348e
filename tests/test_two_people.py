"""Two people in one folder (issue 21, item 3): two WHOOP exports whose cycles interleave are
refused with a message naming the files, not merged into one athlete."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.loaders import load_exports
from physiology_model.errors import DataError

WHOOP = Path(__file__).resolve().parent.parent / "data" / "real" / "whoop"
CYCLES = "physiological_cycles.csv"


def _cycles(user: str) -> pd.DataFrame:
    return pd.read_csv(WHOOP / user / CYCLES, dtype=str)


def test_two_peoples_cycles_files_in_one_folder_are_refused(tmp_path, capsys) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copy(WHOOP / "u02" / CYCLES, folder / CYCLES)
    shutil.copy(WHOOP / "u07" / CYCLES, folder / "physiological_cycles (1).csv")  # overlaps
    with pytest.raises(DataError) as info:
        load_exports([folder])
    message = str(info.value)
    assert CYCLES in message and "physiological_cycles (1).csv" in message
    assert "two people" in message and "its own folder" in message
    out = tmp_path / "table.parquet"
    assert main(["data", "build", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "two people" in err and not out.exists()


def test_two_people_concatenated_in_one_file_are_refused(tmp_path) -> None:
    folder = tmp_path / "merged"
    folder.mkdir()
    pd.concat([_cycles("u02"), _cycles("u07")]).to_csv(folder / CYCLES, index=False)
    with pytest.raises(DataError, match=rf"{CYCLES} holds cycles that overlap in time"):
        load_exports([folder])


def test_one_person_exported_twice_is_still_one_athlete(tmp_path) -> None:
    folder = tmp_path / "twice"
    folder.mkdir()
    cycles = _cycles("u02")
    cycles.to_csv(folder / CYCLES, index=False)
    cycles.iloc[100:].to_csv(folder / "physiological_cycles (1).csv", index=False)
    table = load_exports([folder])
    assert table.frame["user_id"].nunique() == 1
    assert len(table.frame) == len(load_exports([WHOOP / "u02"]).frame)


def test_a_few_clock_changes_are_not_two_people(tmp_path) -> None:
    """Travel across time zones makes a cycle overlap the next now and then: not refused."""
    folder = tmp_path / "travel"
    folder.mkdir()
    cycles = _cycles("u02")
    starts = pd.to_datetime(cycles["Cycle start time"])
    for i in (10, 50, 90):  # the next cycle starts 5 h before this one's end, three times
        cycles.loc[i, "Cycle end time"] = str(starts[i - 1] + pd.Timedelta(hours=5))
    cycles.to_csv(folder / CYCLES, index=False)
    assert load_exports([folder]).frame["user_id"].nunique() == 1


# -- histories that do not overlap: the level test at a junction (loaders/_people.py) ----------

TIME_COLUMNS = ("Cycle start time", "Cycle end time", "Sleep onset", "Wake onset")


def _shifted(cycles: pd.DataFrame, days: float) -> pd.DataFrame:
    out = cycles.copy()
    for column in TIME_COLUMNS:
        out[column] = (pd.to_datetime(out[column]) + pd.Timedelta(days=days)).dt.strftime(
            "%Y-%m-%d %H:%M:%S")
    return out


def _end(cycles: pd.DataFrame) -> pd.Timestamp:
    return pd.to_datetime(cycles["Cycle start time"]).max()


def _start(cycles: pd.DataFrame) -> pd.Timestamp:
    return pd.to_datetime(cycles["Cycle start time"]).min()


def _back_to_back(first: pd.DataFrame, second: pd.DataFrame, gap_days: float) -> pd.DataFrame:
    """`first` moved to end `gap_days` before `second` starts."""
    return _shifted(first, (_start(second) - _end(first)).days - gap_days)


@pytest.mark.parametrize("gap_days", [1, 150])
def test_two_peoples_files_of_separate_dates_are_refused(tmp_path, capsys, gap_days) -> None:
    """u21 (HRV ~140 ms, RHR ~41) up to the day before (or months before) u02 (HRV ~45 ms,
    RHR ~57) starts: no cycle overlaps, but both levels jump at the junction."""
    folder = tmp_path / "shared"
    folder.mkdir()
    u02 = _cycles("u02")
    _back_to_back(_cycles("u21"), u02, gap_days).to_csv(folder / "lena.csv", index=False)
    u02.to_csv(folder / CYCLES, index=False)
    with pytest.raises(DataError) as info:
        load_exports([folder])
    message = str(info.value)
    assert "lena.csv" in message and CYCLES in message and "separate dates" in message
    assert "two people" in message and "resting HR" in message
    assert main(["data", "build", str(folder), "--out", str(tmp_path / "t.parquet")]) == 2
    assert "lena.csv" in capsys.readouterr().err


def test_two_people_one_after_the_other_in_one_file_are_refused(tmp_path) -> None:
    folder = tmp_path / "merged"
    folder.mkdir()
    u02 = _cycles("u02")
    pd.concat([_back_to_back(_cycles("u21"), u02, 60), u02]).to_csv(folder / CYCLES,
                                                                    index=False)
    with pytest.raises(DataError, match=r"across the \d+-day gap .* two people") as info:
        load_exports([folder])
    assert str(info.value).startswith(str(folder / CYCLES))


def test_one_person_after_a_long_gap_is_one_athlete(tmp_path) -> None:
    """A six-month break in the middle of u02's history (same person, same levels)."""
    folder = tmp_path / "break"
    folder.mkdir()
    cycles = _cycles("u02")
    starts = pd.to_datetime(cycles["Cycle start time"])
    middle = starts.min() + (starts.max() - starts.min()) / 2
    later = starts > middle
    moved = pd.concat([_shifted(cycles[later], 180), cycles[~later]])
    moved.to_csv(folder / CYCLES, index=False)
    table = load_exports([folder])
    assert table.frame["user_id"].nunique() == 1


def test_one_persons_history_in_two_files_is_read_with_a_warning(tmp_path, capsys) -> None:
    """Never merged in silence: the note names both files, data build prints it, and the
    plan lists it."""
    folder = tmp_path / "parts"
    folder.mkdir()
    cycles = _cycles("u02")
    starts = pd.to_datetime(cycles["Cycle start time"])
    middle = starts.min() + (starts.max() - starts.min()) / 2
    cycles[starts > middle].to_csv(folder / "cycles_2025.csv", index=False)
    cycles[starts <= middle].to_csv(folder / "cycles_2024.csv", index=False)
    table = load_exports([folder])
    assert table.frame["user_id"].nunique() == 1
    warnings = [n.message for n in table.notes if n.kind == "warning"]
    assert len(warnings) == 1 and "cycles_2024.csv" in warnings[0]
    assert "cycles_2025.csv" in warnings[0] and "two people" in warnings[0]
    assert main(["data", "build", str(folder), "--out", str(tmp_path / "t.parquet")]) == 0
    assert "warning:" in capsys.readouterr().err

    from agents.recommend import _data_notes

    assert any("cycles_2024.csv" in n for n in _data_notes(table.notes))


def test_the_level_rule_both_ways() -> None:
    from physiology_model.data.loaders._people import Levels, two_people

    one = Levels(hrv_ms=60.0, rhr_bpm=50.0, mornings=28)
    # a layoff or an illness: HRV down a quarter, RHR up 6 bpm: one person
    assert not two_people(one, Levels(45.0, 56.0, 28))
    # only one of the two moves far: one person (fitness, a new strap's HRV algorithm)
    assert not two_people(one, Levels(30.0, 52.0, 28))
    assert not two_people(one, Levels(58.0, 62.0, 28))
    # both move far together: two people
    assert two_people(one, Levels(40.0, 59.0, 28))
    assert two_people(one, Levels(90.0, 41.0, 28))
    assert not two_people(one, None)


def test_two_people_one_after_the_other_in_a_canonical_csv_are_refused(tmp_path) -> None:
    """The gap rule is the same for every source: here the canonical daily CSV, no user_id
    column (one athlete, named by the folder)."""
    first = load_exports([WHOOP / "u21"]).frame
    second = load_exports([WHOOP / "u02"]).frame
    first = first.assign(date=first["date"] - (first["date"].max() - second["date"].min())
                         - pd.Timedelta(days=30))
    columns = ["date", "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min"]
    folder = tmp_path / "athlete"
    folder.mkdir()
    pd.concat([first[columns], second[columns]]).to_csv(folder / "daily.csv", index=False)
    with pytest.raises(DataError, match=r"3\d-day gap") as info:
        load_exports([folder])
    assert str(info.value).startswith(str(folder))
    second[columns].to_csv(folder / "daily.csv", index=False)  # one person: read
    assert len(load_exports([folder]).frame) == len(second)
