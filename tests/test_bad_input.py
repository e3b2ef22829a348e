"""Every malformed fixture gives one clear error naming the file and the problem, or a
documented repair; the CLI leaves no partial output file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.loaders import load_exports
from physiology_model.data.table import DailyTable
from physiology_model.errors import DataError

BAD = Path(__file__).parent / "fixtures" / "bad"

# fixture folder -> words the error message must contain (besides the file name)
ERRORS: dict[str, tuple[str, ...]] = {
    "empty_file": ("daily.csv", "empty"),
    "whitespace_only": ("daily.csv", "empty"),
    "header_only": ("daily.csv", "header only"),
    "whoop_header_only": ("physiological_cycles.csv", "header only"),
    "duplicated_days_conflicting": ("daily.csv", "2024-01-04"),
    "hrv_in_seconds": ("daily.csv", "hrv_rmssd_ms", "seconds"),
    "whoop_hrv_in_seconds": ("physiological_cycles.csv", "hrv_rmssd_ms", "seconds"),
    "recovery_as_ratio": ("daily.csv", "recovery_pct", "ratio"),
    "sleep_in_hours": ("daily.csv", "sleep_min", "hours"),
    "unknown_format": ("export.csv", "no recognised export format", "foo, bar"),
    "nothing_readable": ("nothing_readable", "no recognised export", "notes.txt", "binary"),
    "binary_as_csv": ("daily.csv", "binary"),
    "text_in_number_column": ("daily.csv", "hrv_rmssd_ms", "'high'"),
    "unreadable_dates": ("daily.csv", "2024-13-45"),
    "misspelt_column": ("daily.csv", "hrv_rmsd_ms"),
    "extra_fields_in_row": ("daily.csv", "line 6"),
    "whoop_missing_hrv_column": ("physiological_cycles.csv", "Heart rate variability"),
}

# fixture folder -> a word that one of the notes must contain
REPAIRS: dict[str, str] = {
    "wrong_delimiter_tab": "",  # tab, semicolon, comma and pipe are all read
    "decimal_commas": "decimal commas",
    "duplicated_rows_exact": "exactly repeat",
    "shuffled_rows": "",  # rows are sorted by date
    "hrv_zero": "hrv_rmssd_ms: values outside",
    "hrv_3000": "hrv_rmssd_ms: values outside",
    "rhr_5_and_250": "rhr_bpm: values outside",
    "mixed_timezones": "different UTC offsets",
    "non_utf8_bytes": "cp1252",
    "truncated_last_line": "cut short",
    "negative_load": "load_trimp: values outside",
    "whoop_truncated_last_line": "cut short",
}


def test_there_are_at_least_20_fixtures_and_each_has_an_expectation():
    folders = {p.name for p in BAD.iterdir() if p.is_dir()}
    assert len(folders) >= 20
    assert folders == set(ERRORS) | set(REPAIRS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_names_file_and_problem_and_leaves_no_output(name, tmp_path, capsys):
    out = tmp_path / "table.parquet"
    rc = main(["data", "build", str(BAD / name), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in ERRORS[name]:
        assert word in lines[0], (word, lines[0])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_library_raises_data_error(name):
    with pytest.raises(DataError) as info:
        load_exports([BAD / name])
    assert ERRORS[name][0] in str(info.value)


@pytest.mark.parametrize("name", sorted(REPAIRS))
def test_repair_is_documented_in_a_note(name, tmp_path):
    out = tmp_path / "table.parquet"
    assert main(["data", "build", str(BAD / name), "--out", str(out)]) == 0
    table = load_exports([BAD / name])
    messages = [n.message for n in table.notes]
    if REPAIRS[name]:
        assert any(REPAIRS[name] in m for m in messages), messages
    pd.testing.assert_frame_equal(DailyTable.from_parquet(out).frame, table.frame)


def _single(name: str) -> pd.DataFrame:
    return load_exports([BAD / name]).frame


def test_out_of_range_values_become_missing_not_dropped():
    frame = _single("rhr_5_and_250")
    assert len(frame) == 20
    assert frame["rhr_bpm"].isna().sum() == 2
    assert frame["hrv_rmssd_ms"].notna().all()
    assert _single("hrv_zero")["hrv_rmssd_ms"].isna().sum() == 2
    assert _single("hrv_3000")["hrv_rmssd_ms"].isna().sum() == 1


def test_decimal_commas_and_tabs_read_the_same_values():
    commas = _single("decimal_commas")
    tabs = _single("wrong_delimiter_tab")
    np.testing.assert_allclose(commas["hrv_rmssd_ms"], tabs["hrv_rmssd_ms"] + 0.5)
    np.testing.assert_allclose(commas["rhr_bpm"], tabs["rhr_bpm"])


def test_shuffled_rows_come_back_sorted_and_equal():
    shuffled = _single("shuffled_rows")
    tabs = _single("wrong_delimiter_tab")
    assert shuffled["date"].is_monotonic_increasing
    cols = ["date", "hrv_rmssd_ms", "rhr_bpm", "recovery_pct", "sleep_min"]
    pd.testing.assert_frame_equal(shuffled[cols], tabs[cols])


def test_exact_duplicate_rows_are_dropped_once():
    assert len(_single("duplicated_rows_exact")) == 20


def test_mixed_timezones_keep_the_local_date():
    frame = _single("mixed_timezones")
    assert list(frame["date"].dt.day) == list(range(1, 21))


def test_truncated_last_line_drops_only_that_line():
    assert len(_single("truncated_last_line")) == 20
