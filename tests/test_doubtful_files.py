"""Doubtful files and arguments (issue 21, items 5-9): a key file that cannot be read is named,
UTF-16 and HTML-as-CSV are recognised, a WHOOP zip is read as delivered, `N/A`/`--` cells are
missing values, a huge CSV field is data, bad `--out` paths and files too large for memory are
one clear error, and an unknown `--athlete` lists the nearest names."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.loaders import _io, load_exports
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
WHOOP_U01 = ROOT / "data" / "real" / "whoop" / "u01"
MODEL_DIR = ROOT / "models" / "shipped"
CYCLES = "physiological_cycles.csv"


def _u01(tmp_path: Path, name: str = "u01") -> Path:
    out = tmp_path / name
    shutil.copytree(WHOOP_U01, out)
    return out


# -- item 5: the key file ---------------------------------------------------------------------


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(b"\x00\x01\x02binary" * 50), ("binary",)),
    (lambda p: p.write_text("<!DOCTYPE html><html><head><title>Sign in</title></head>"
                            "<body>Session expired</body></html>"), ("HTML page",)),
    (lambda p: p.write_text(""), ("empty",)),
])
def test_an_unreadable_cycles_file_is_named_not_skipped(tmp_path, one_error, damage, words) -> None:
    export = _u01(tmp_path)
    damage(export / CYCLES)
    with pytest.raises(DataError) as info:
        load_exports([export])
    message = str(info.value)
    assert message.startswith(str(export / CYCLES)) and "cycles file" in message
    for word in words:
        assert word in message
    out = tmp_path / "t.parquet"
    assert main(["data", "build", str(export), "--out", str(out)]) == 2
    assert CYCLES in one_error() and not out.exists()


def test_a_utf16_export_is_read_as_text(tmp_path) -> None:
    export = _u01(tmp_path)
    text = (export / CYCLES).read_text(encoding="utf-8")
    (export / CYCLES).write_bytes(text.encode("utf-16"))  # with a byte-order mark
    table = load_exports([export])
    original = load_exports([WHOOP_U01]).frame
    pd.testing.assert_series_equal(table.frame["hrv_rmssd_ms"], original["hrv_rmssd_ms"])
    assert any("UTF-16" in n.message for n in table.notes)
    assert _io.utf16_encoding(text.encode("utf-16-le")) == "utf-16-le"  # no mark
    assert _io.utf16_encoding(text.encode("utf-8")) is None


# -- item 6: real-world shapes ------------------------------------------------------------------


def test_a_whoop_zip_is_read_as_delivered(tmp_path) -> None:
    archive = tmp_path / "my_whoop_data_2022_11_10.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(WHOOP_U01.iterdir()):
            z.write(f, f"my_whoop_data/{f.name}")
        z.writestr("__MACOSX/._physiological_cycles.csv", b"\x00\x05junk")
    table = load_exports([archive])
    original = load_exports([WHOOP_U01]).frame
    assert len(table.frame) == len(original)
    assert all(str(archive) in n.path for n in table.notes if "physiological" in n.path)


@pytest.mark.parametrize("member", ["../evil.csv", "/etc/evil.csv"])
def test_a_zip_member_outside_the_archive_is_refused(tmp_path, member) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(member, "date,hrv_rmssd_ms\n2024-01-01,50\n")
    with pytest.raises(DataError, match="outside the archive"):
        load_exports([archive])
    assert not (tmp_path / "evil.csv").exists()


def test_a_zip_bomb_is_refused(tmp_path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("daily.csv", b"0" * (40 << 20))  # 40 MiB of zeros pack to ~40 KiB
    with pytest.raises(DataError, match="zip bomb"):
        load_exports([archive])
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="bad.zip: not a readable zip"):
        load_exports([tmp_path / "bad.zip"])


def test_na_and_dashes_in_number_cells_are_missing(tmp_path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "daily.csv").write_text(
        "date,hrv_rmssd_ms,rhr_bpm,recovery_pct\n2024-01-01,50,52,N/A\n2024-01-02,--,53,61\n"
        "2024-01-03,#N/A,—,62\n2024-01-04,55,n/a,63\n")
    frame = load_exports([folder]).frame
    assert frame["hrv_rmssd_ms"].isna().tolist() == [False, True, True, False]
    assert frame["rhr_bpm"].isna().tolist() == [False, False, True, True]
    assert frame["recovery_pct"].isna().tolist() == [True, False, False, False]


def test_a_journal_note_longer_than_the_csv_field_limit_is_read(tmp_path) -> None:
    import csv

    export = _u01(tmp_path)
    journal = pd.read_csv(export / "journal_entries.csv", dtype=str)
    column = next(c for c in journal.columns if "notes" in c.lower()) \
        if any("notes" in c.lower() for c in journal.columns) else journal.columns[-1]
    journal.loc[0, column] = "x" * 200_000
    journal.to_csv(export / "journal_entries.csv", index=False)
    limit = csv.field_size_limit()
    assert len(load_exports([export]).frame) == len(load_exports([WHOOP_U01]).frame)
    assert csv.field_size_limit() == limit  # restored


# -- item 7: --out -------------------------------------------------------------------------------


@pytest.mark.parametrize("out, words", [
    ("{tmp}", "is a directory"),
    ("{tmp}/file.txt/table.parquet", "is a file, not a folder"),
])
def test_an_unusable_out_path_is_one_error_before_any_work(tmp_path, one_error, out, words) -> None:
    (tmp_path / "file.txt").write_text("x")
    out = out.format(tmp=tmp_path)
    assert main(["data", "build", str(WHOOP_U01), "--out", out]) == 2
    line = one_error()
    assert words in line and out in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_out_path_without_write_permission_is_one_error(tmp_path, one_error) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["data", "build", str(WHOOP_U01), "--out", str(locked / "t.parquet")]) == 2
    assert "no write permission" in one_error()


def test_an_out_directory_that_is_a_file_is_refused_for_directory_outputs(tmp_path,
                                                                          one_error) -> None:
    (tmp_path / "run").write_text("x")
    rc = main(["train", "--agent", "sac", "--model", str(MODEL_DIR), "--cohort", "nothing.npz",
               "--out", str(tmp_path / "run")])
    assert rc == 2 and "is a file; --out takes a directory" in one_error()


# -- item 8: memory ------------------------------------------------------------------------------


def _repeated_cycles(export: Path, copies: int) -> Path:
    """u01's cycles file written `copies` times over (repeated exports in one file), with a
    wide column no loader reads (a long free-text note on every row)."""
    cycles = pd.read_csv(export / CYCLES, dtype=str)
    cycles["Notes"] = "x" * 500
    pd.concat([cycles] * copies, ignore_index=True).to_csv(export / CYCLES, index=False)
    return export / CYCLES


def test_a_large_file_of_repeated_rows_is_read_in_little_memory(tmp_path, monkeypatch) -> None:
    """The cycles file is streamed: repeated rows and unread columns are never held, so a file
    4x the memory left is read (the whole-file reader needed ~30x the file)."""
    small, export = tmp_path / "small", tmp_path / "u01"
    small.mkdir(), export.mkdir()
    shutil.copy(WHOOP_U01 / CYCLES, small / CYCLES)
    shutil.copy(WHOOP_U01 / CYCLES, export / CYCLES)
    expected = load_exports([small]).frame
    path = _repeated_cycles(export, 40)
    size = path.stat().st_size
    monkeypatch.setattr(_io, "CHUNK_ROWS", 500)  # several chunks, each checked
    monkeypatch.setattr(_io, "available_memory_bytes", lambda: size // 4)
    table = load_exports([export])
    got = table.frame.drop(columns="user_id")
    pd.testing.assert_frame_equal(got, expected.drop(columns="user_id"))
    assert any("exactly repeat" in n.message for n in table.notes)


def test_chunked_reading_gives_the_same_frame(tmp_path, monkeypatch) -> None:
    from physiology_model.data.table import NoteLog

    path = tmp_path / "t.csv"
    rows = [f"2024-01-{d:02d},{d}, {d * 2} ,x" for d in range(1, 29)]
    rows += rows[:3]  # repeats across chunk boundaries
    path.write_text("date;a;b;c\n".replace(";", ",") + "\n".join(rows) + "\n2024-02-01,1")
    whole = _io.read_csv(path, NoteLog())
    monkeypatch.setattr(_io, "CHUNK_ROWS", 4)
    log = NoteLog()
    chunked = _io.read_csv(path, log, usecols=lambda header: ["date", "b"])
    pd.testing.assert_frame_equal(chunked, whole[["date", "b"]])
    assert len(whole) == 28 and whole["b"].iloc[0] == "2"  # stripped, cut-short line dropped
    assert chunked.attrs["header"] == ["date", "a", "b", "c"]
    kinds = [n.message for n in log.notes]
    assert any("cut short" in m for m in kinds) and any("exactly repeat" in m for m in kinds)


def test_a_table_too_large_for_the_memory_left_is_refused(tmp_path, monkeypatch) -> None:
    """Distinct rows are kept, and what is kept is checked against the memory left as it is
    read: refused with one error naming the file, not killed halfway."""
    export = tmp_path / "u01"
    export.mkdir()
    shutil.copy(WHOOP_U01 / CYCLES, export / CYCLES)
    size = (export / CYCLES).stat().st_size
    monkeypatch.setattr(_io, "CHUNK_ROWS", 100)
    monkeypatch.setattr(_io, "available_memory_bytes", lambda: size)
    with pytest.raises(DataError, match="split the export by date") as info:
        load_exports([export])
    assert str(info.value).startswith(str(export / CYCLES)) and "rows" in str(info.value)
    monkeypatch.setattr(_io, "available_memory_bytes", lambda: None)  # unknown: no guard
    assert len(load_exports([export]).frame) > 0


def test_a_whole_file_read_too_large_for_the_memory_left_is_refused(tmp_path,
                                                                    monkeypatch) -> None:
    """JSON (and the other whole-file reads) cannot be streamed: refused from the size."""
    from physiology_model.data.table import NoteLog

    path = tmp_path / "x.json"
    path.write_text("[" + ",".join(["1"] * 1000) + "]")
    monkeypatch.setattr(_io, "available_memory_bytes", lambda: path.stat().st_size * 10)
    with pytest.raises(DataError, match="split the export by date"):
        _io.read_json(path, NoteLog())


# -- item 9: nearest names ----------------------------------------------------------------------


def test_an_unknown_athlete_lists_the_nearest_names() -> None:
    from physiology_model.data.names import nearest_names

    known = ["lifesnaps-4003096d", "lifesnaps-4012e179", "whoop-u01", "whoop-u02"]
    assert nearest_names("621e2f91a8b74003096d", known) == ["lifesnaps-4003096d"]
    assert nearest_names("whoop-u1", known)[0] == "whoop-u01"
    assert nearest_names("zzz", known) == []


def test_plan_with_a_raw_id_says_which_athlete_was_meant(tmp_path, one_error) -> None:
    export = _u01(tmp_path)
    rc = main(["plan", "--model", str(MODEL_DIR), "--data", str(export), "--athlete", "U01",
               "--days", "1"])
    line = one_error()
    assert rc == 2 and "did you mean whoop-u01" in line


def test_no_plannable_athlete_names_the_skipped_files(tmp_path) -> None:
    from agents.recommend import _pick_athlete
    from physiology_model.data.table import Note

    frame = pd.DataFrame({"user_id": ["a"], "hrv_rmssd_ms": [float("nan")],
                          "rhr_bpm": [float("nan")]})
    skipped = [Note("x/physiological_cycles.csv", "ignored", "binary file")]
    with pytest.raises(DataError, match="skipped x/physiological_cycles.csv: binary file"):
        _pick_athlete(frame, None, skipped)


# -- a folder whose recognised files give no daily rows -----------------------------------------


def test_a_folder_with_only_the_pmdata_overview_says_what_it_found(tmp_path, one_error) -> None:
    folder = tmp_path / "all"
    folder.mkdir()
    shutil.copy(ROOT / "data" / "real" / "pmdata" / "all" / "participant-overview.xlsx", folder)
    with pytest.raises(DataError) as info:
        load_exports([folder])
    message = str(info.value)
    assert "participant-overview.xlsx" in message and "no daily data" in message
    assert "()" not in message
    assert main(["data", "build", str(folder), "--out", str(tmp_path / "t.parquet")]) == 2
    assert "participant-overview.xlsx" in one_error()


def test_an_empty_folder_says_so(tmp_path) -> None:
    (tmp_path / "README.md").write_text("notes")
    with pytest.raises(DataError, match="no files here"):
        load_exports([tmp_path])


def test_a_history_too_long_to_personalise_in_the_memory_left_is_refused(tmp_path, monkeypatch,
                                                                         one_error) -> None:
    """`plan` takes memory with the days of history (proposals × days arrays): refused with
    one error, not killed halfway. (A new athlete: one in the fit is not personalised.)"""
    from physiology_model.model import world_model

    export = _u01(tmp_path, "newcomer")
    monkeypatch.setattr(world_model, "PERSONALIZE_BYTES_PER_PROPOSAL_DAY", 10**12)
    rc = main(["plan", "--model", str(MODEL_DIR), "--data", str(export), "--days", "1"])
    line = one_error()
    assert rc == 2 and "days of history" in line and "shorter export" in line
