"""A damaged key file of any export is named, never skipped in silence (issue 21, item 5).

Each export's files are copied from the shipped data and one of them is replaced by what a
failed download leaves (an HTML error page saved under the file's name, an empty file, binary
bytes). When the rest of the folder then gives no HRV or no resting heart rate, `data build`
and `plan` stop with one line naming the file; when the rest still has both, the table is
built and the file is named in a warning. UTF-16 copies of key files are read as they are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from physiology_model.data.loaders import load_exports
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "data" / "real"
MODEL_DIR = ROOT / "models" / "shipped"

DAMAGE = {
    "html": ((b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Session "
              b"expired</body></html>"), "HTML page"),
    "empty": (b"", "empty"),
    "binary": (b"\x00\x01\x02\x03binary" * 64, "binary"),
}

REFUSED = [  # (export folder, its key file, what the rest lacks)
    ("garmin_connect_csv/u01", "resting_heart_rate.csv", "HRV"),  # u01 has no HRV file
    ("welltory/all", "hrv_measurements.csv", "HRV"),
    ("welltory/all", "wearables.csv", "resting heart rate"),
    ("intervals_icu/u01", "wellness.csv", "HRV and no resting heart rate"),
    ("pmdata/p01", "resting_heart_rate.json", "HRV"),
    ("whoop_api/a02", "sleeps.csv", "HRV and no resting heart rate"),
    ("garmin/u15", "garmin_daily.csv", "HRV and no resting heart rate"),
]


def _copy(tmp_path: Path, folder: str) -> Path:
    out = tmp_path / Path(folder).name
    shutil.copytree(REAL / folder, out)
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("folder, name, lacking", REFUSED)
def test_a_damaged_key_file_is_named(tmp_path, one_error, folder, name, lacking, damage) -> None:
    export = _copy(tmp_path, folder)
    data, word = DAMAGE[damage]
    (export / name).write_bytes(data)
    with pytest.raises(DataError) as info:
        load_exports([export])
    message = str(info.value)
    assert message.startswith(str(export / name)), message
    assert word in message and f"has no {lacking} without it" in message
    out = tmp_path / "t.parquet"
    assert main(["data", "build", str(export), "--out", str(out)]) == 2
    assert name in one_error() and not out.exists()


def test_plan_names_the_damaged_key_file(tmp_path, one_error) -> None:
    export = _copy(tmp_path, "intervals_icu/u01")
    (export / "wellness.csv").write_bytes(DAMAGE["html"][0])
    rc = main(["plan", "--model", str(MODEL_DIR), "--data", str(export), "--days", "1"])
    assert rc == 2 and "wellness.csv" in one_error()


@pytest.mark.parametrize("folder, name", [("oura/u03", "oura.csv"),
                                          ("whoop/u01", "sleeps.csv"),
                                          ("couzens/u01", "model_data.csv")])
def test_a_damaged_file_beside_a_usable_table_is_a_warning(tmp_path, capsys, folder,
                                                           name) -> None:
    """The rest of the folder still has HRV and resting HR: built, and the file is named."""
    export = _copy(tmp_path, folder)
    (export / name).write_bytes(DAMAGE["html"][0])
    table = load_exports([export])
    assert table.frame["hrv_rmssd_ms"].notna().any() and table.frame["rhr_bpm"].notna().any()
    notes = [n for n in table.notes if n.kind == "ignored"]
    assert [Path(n.path).name for n in notes] == [name]
    assert "built without this file" in notes[0].message
    assert main(["data", "build", str(export), "--out", str(tmp_path / "t.parquet")]) == 0
    err = capsys.readouterr().err
    assert f"warning: not read: {export / name}" in err


def test_activity_only_exports_are_not_refused_for_a_damaged_file(tmp_path) -> None:
    export = _copy(tmp_path, "strava/u01")
    (export / "notes.csv").write_bytes(b"")
    table = load_exports([export])
    assert len(table.frame) and any(n.kind == "ignored" for n in table.notes)


def test_a_stray_non_data_file_is_not_a_damaged_export_file(tmp_path) -> None:
    export = _copy(tmp_path, "intervals_icu/u01")
    (export / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" * 10)
    assert len(load_exports([export]).frame)


@pytest.mark.parametrize("folder, name", [("garmin_connect_csv/u01", "resting_heart_rate.csv"),
                                          ("intervals_icu/u01", "wellness.csv"),
                                          ("welltory/all", "hrv_measurements.csv"),
                                          ("whoop/u01", "physiological_cycles.csv")])
def test_a_utf16_key_file_is_read_as_it_is(tmp_path, folder, name) -> None:
    """Excel's "Unicode text" (UTF-16 with a byte-order mark): decoded, the same rows."""
    expected = load_exports([REAL / folder]).frame.drop(columns="user_id")
    export = _copy(tmp_path, folder)
    text = (export / name).read_text(encoding="utf-8-sig")
    (export / name).write_bytes(text.encode("utf-16"))
    table = load_exports([export])
    pd.testing.assert_frame_equal(table.frame.drop(columns="user_id"), expected)
    assert any("UTF-16" in n.message for n in table.notes)
