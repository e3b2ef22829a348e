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
