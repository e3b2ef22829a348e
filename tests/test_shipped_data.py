"""The shipped real data: every file listed in MANIFEST.csv, unchanged, and read by a loader."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from physiology_model.features.summary import summarize_table, totals_by_source

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def _manifest() -> list[dict[str, str]]:
    with (REAL / "MANIFEST.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def table(shipped_table):
    return shipped_table  # load_exports([REAL]), read once per session (conftest.py)


def test_manifest_lists_every_file_with_its_hash():
    rows = _manifest()
    listed = {r["file"] for r in rows}
    on_disk = {str(p.relative_to(REAL)) for p in REAL.rglob("*")
               if p.is_file() and p.name not in ("MANIFEST.csv", "README.md")}
    assert listed == on_disk
    for r in rows:
        assert hashlib.sha256((REAL / r["file"]).read_bytes()).hexdigest() == r["sha256"], r["file"]


def test_pmdata_is_marked_non_commercial():
    for r in _manifest():
        if r["source"] == "pmdata":
            assert "CC BY-NC 4.0" in r["license_if_stated"], r["file"]


def test_every_shipped_file_is_read(table):
    ignored = [str(n) for n in table.notes if n.kind == "ignored"]
    assert ignored == []


def test_shipped_totals(table):
    summary = summarize_table(table)
    totals = totals_by_source(summary).set_index("source")
    assert set(totals.index) == {"all", "couzens", "garmin", "goldencheetah", "lifesnaps", "oura",
                                 "pmdata", "trainingpeaks", "welltory", "whoop", "whoop_api",
                                 "intervals_icu", "intervals_icu_sdnn", "section11",
                                 "garmin_connect", "strava"}
    assert totals.loc["all", "athletes"] == 318
    assert totals.loc["section11", "athletes"] == 28
    assert totals.loc["section11", "hrv_days"] == 2410
    assert totals.loc["all", "user_days"] > 20_000
    assert totals.loc["all", "hrv_days"] > 12_000
    assert not table.frame.duplicated(["user_id", "date"]).any()
