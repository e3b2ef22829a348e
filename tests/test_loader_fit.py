"""The FIT loader on activity files written with the Garmin FIT SDK's own Encoder (and the
shared real files when present): zone minutes from the heart-rate records, the local day, and
bad files (bad CRC, not FIT, cut-short gzip, a non-activity FIT file)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.fit import LOADER
from physiology_model.errors import DataError

SHARED = Path("/work/shared/data/real/fit/u01")
FIT_EPOCH = datetime(1989, 12, 31, tzinfo=UTC)


def encode(hr: list[float | None], start: datetime, *, step_s: int = 1, utc_offset_h: int = 2,
           sport: str = "running", file_type: str = "activity") -> bytes:
    """An activity FIT file: one record per `step_s` seconds with the given heart rates."""
    from garmin_fit_sdk import Encoder, Profile

    n = Profile["mesg_num"]
    enc = Encoder()
    enc.write_mesg({"mesg_num": n["FILE_ID"], "type": file_type, "manufacturer": "development",
                    "product": 0, "time_created": start, "serial_number": 1})
    for i, h in enumerate(hr):
        rec = {"mesg_num": n["RECORD"], "timestamp": start + timedelta(seconds=i * step_s)}
        if h is not None:
            rec["heart_rate"] = h
        enc.write_mesg(rec)
    end = start + timedelta(seconds=len(hr) * step_s)
    total = float(len(hr) * step_s)
    enc.write_mesg({"mesg_num": n["SESSION"], "timestamp": end, "start_time": start,
                    "total_timer_time": total, "total_elapsed_time": total, "sport": sport,
                    "message_index": 0})
    local = int((end - FIT_EPOCH).total_seconds()) + utc_offset_h * 3600
    enc.write_mesg({"mesg_num": n["ACTIVITY"], "timestamp": end, "local_timestamp": local,
                    "num_sessions": 1, "total_timer_time": total})
    return enc.close()


@pytest.fixture()
def folder(tmp_path) -> Path:
    f = tmp_path / "u01"
    f.mkdir()
    day = datetime(2024, 6, 4, 16, 0, tzinfo=UTC)
    # 10 min at 150 bpm, then a 3-record spike to 230 (a strap artefact), then 2 min at 190
    (f / "a.fit").write_bytes(encode([150] * 600 + [230] * 2 + [190] * 120, day))
    # late evening UTC that is already the next local day (UTC+2)
    late = datetime(2024, 6, 5, 22, 30, tzinfo=UTC)
    with gzip.open(f / "b.fit.gz", "wb") as fh:
        fh.write(encode([100] * 1200, late))
    (f / "c.fit").write_bytes(encode([None] * 300, day + timedelta(days=3)))
    return f


def test_zone_minutes_from_the_heart_rate_stream(folder):
    table = load_exports([folder])
    f = table.frame.set_index("date")
    # HRmax = 190 (the 2-record spike to 230 does not survive a 5-record rolling median)
    assert any("190 bpm" in n.message for n in table.notes)
    day = f.loc["2024-06-04"]
    # 150/190 = 79 %: zone 3 for 600 s; 190/190: zone 5 for 120 s (and the spike, 2 s)
    assert day["z3_min"] == pytest.approx(10.0)
    assert day["z5_min"] == pytest.approx(2.0 + 2 / 60, abs=0.02)
    assert day["load_trimp"] == pytest.approx(10 * 3 + (2 + 2 / 60) * 5, abs=0.1)
    assert day["load_basis"] == "hr_zones"
    # 100/190 = 53 %: zone 1; 22:30 UTC at UTC+2 is 00:30 on the 6th
    assert "2024-06-05" not in f.index.strftime("%Y-%m-%d")
    assert f.loc["2024-06-06", "z1_min"] == pytest.approx(20.0, abs=0.02)
    # no heart rate at all: no load estimate, noted
    assert np.isnan(f.loc["2024-06-07", "load_trimp"])
    assert any("without heart-rate records" in n.message for n in table.notes)
    assert set(f["source"]) == {"fit"}


def test_pauses_do_not_count(tmp_path):
    f = tmp_path / "p"
    f.mkdir()
    start = datetime(2024, 6, 4, 8, 0, tzinfo=UTC)
    (f / "paused.fit").write_bytes(encode([160] * 60, start, step_s=60))  # 60 s apart: pauses
    (f / "hrmax.fit").write_bytes(encode([200] * 10, start + timedelta(days=1)))
    day = load_exports([f]).frame.set_index("date").loc["2024-06-04"]
    assert np.nansum(day[["z1_min", "z2_min", "z3_min", "z4_min", "z5_min"]]) == 0


def test_bad_crc_is_one_clear_error(tmp_path):
    data = bytearray(encode([150] * 100, datetime(2024, 6, 4, tzinfo=UTC)))
    data[-1] ^= 0xFF
    path = tmp_path / "bad.fit"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad.fit: FIT CRC check failed"):
        load_exports([path])


def test_not_fit_and_cut_gzip_and_other_fit_types(tmp_path):
    junk = tmp_path / "x" / "junk.fit"
    junk.parent.mkdir()
    junk.write_bytes(b"\x0e\x10" + b"not a fit file at all" * 4)
    with pytest.raises(DataError, match=r"junk.fit: not a FIT file"):
        load_exports([junk])
    cut = tmp_path / "y" / "cut.fit.gz"
    cut.parent.mkdir()
    cut.write_bytes(gzip.compress(encode([150] * 100, datetime(2024, 6, 4,
                                                              tzinfo=UTC)))[:60])
    with pytest.raises(DataError, match=r"cut.fit.gz: cannot be read"):
        load_exports([cut])
    course = tmp_path / "z" / "course.fit"
    course.parent.mkdir()
    course.write_bytes(encode([150] * 10, datetime(2024, 6, 4, tzinfo=UTC),
                              file_type="course"))
    with pytest.raises(DataError, match=r"course.fit: a FIT 'course' file, not an activity"):
        load_exports([course])
    assert LOADER.claims(junk) and LOADER.claims(cut)


@pytest.mark.skipif(not SHARED.exists(), reason="the real FIT files are not shipped (GPS)")
def test_real_strava_fit_files():
    table = load_exports([SHARED])
    f = table.frame
    assert len(f) == 19  # 20 files, two runs on 2024-06-06
    assert f["load_trimp"].notna().sum() == 17  # the first two runs have no heart rate
    assert any("193 bpm" in n.message for n in table.notes)  # HRmax, ignoring the no-HR files
    assert f["load_trimp"].max() < 1000
