"""The Apple Health loader: a small export written here (SDNN, resting HR, sleep stages from two
sources, re-synced workouts with and without WorkoutStatistics), the shared real export.zip when
present, and bad files (truncated zip, a zip without export.xml, wrong XML, broken XML)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders.apple_health import LOADER
from physiology_model.errors import DataError

SHARED = Path("/work/shared/data/real/apple_health/u01/export.zip")


def rec(kind: str, start: str, end: str | None = None, value: str = "", unit: str = "") -> str:
    end = end or start
    return (f'<Record type="{kind}" sourceName="Watch" unit="{unit}" startDate="{start} +0100" '
            f'endDate="{end} +0100" value="{value}"/>')


SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
HR = "HKQuantityTypeIdentifierHeartRate"


def export_xml() -> str:
    body = [
        # SDNN: two readings in the night/morning of the 2nd, one in the evening
        rec("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "2024-03-02 03:00:00", value="60",
            unit="ms"),
        rec("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "2024-03-02 07:00:00", value="70",
            unit="ms"),
        rec("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "2024-03-02 21:00:00", value="20",
            unit="ms"),
        rec("HKQuantityTypeIdentifierRestingHeartRate", "2024-03-02 08:00:00", value="52",
            unit="count/min"),
        # the night to 2024-03-02: watch stages + phone "asleep" overlapping them
        rec(SLEEP, "2024-03-01 23:00:00", "2024-03-02 07:00:00",
            "HKCategoryValueSleepAnalysisInBed"),
        rec(SLEEP, "2024-03-01 23:30:00", "2024-03-02 01:30:00",
            "HKCategoryValueSleepAnalysisAsleepCore"),
        rec(SLEEP, "2024-03-02 01:30:00", "2024-03-02 03:00:00",
            "HKCategoryValueSleepAnalysisAsleepDeep"),
        rec(SLEEP, "2024-03-02 03:00:00", "2024-03-02 04:30:00",
            "HKCategoryValueSleepAnalysisAsleepREM"),
        rec(SLEEP, "2024-03-02 04:30:00", "2024-03-02 06:30:00",
            "HKCategoryValueSleepAnalysisAsleepCore"),
        rec(SLEEP, "2024-03-02 00:00:00", "2024-03-02 06:00:00",
            "HKCategoryValueSleepAnalysisAsleepUnspecified"),
    ]
    # heart rate every 2 min during a run on the 2nd, 10:00-10:30, at 150 bpm (max 170)
    for m in range(0, 31, 2):
        body.append(rec(HR, f"2024-03-02 10:{m:02d}:00", value="170" if m == 10 else "150",
                        unit="count/min"))
    workout = ('<Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="30" '
               'durationUnit="min" sourceName="Connect" startDate="2024-03-02 10:00:00 +0100" '
               'endDate="2024-03-02 10:30:00 +0100"><MetadataEntry key="k" value="0"/></Workout>')
    # a cycling workout with its own statistics (iOS 16+), 60 min at 140 (max 190)
    ride = ('<Workout workoutActivityType="HKWorkoutActivityTypeCycling" duration="1" '
            'durationUnit="hr" sourceName="Watch" startDate="2024-03-04 17:00:00 +0100" '
            'endDate="2024-03-04 18:00:00 +0100"><WorkoutStatistics '
            'type="HKQuantityTypeIdentifierHeartRate" average="140" maximum="190" '
            'unit="count/min"/></Workout>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE HealthData [\n'
            '<!ELEMENT HealthData (ExportDate,Me,(Record|Workout)*)>\n]>\n'
            '<HealthData locale="en_GB">\n <ExportDate value="2024-03-05 12:00:00 +0100"/>\n'
            ' <Me HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexNotSet"/>\n '
            + "\n ".join(body) + "\n " + workout + "\n " + workout + "\n " + ride
            + "\n</HealthData>\n")


def write_zip(path: Path, xml: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("apple_health_export/export.xml", xml)
        zf.writestr("apple_health_export/export_cda.xml", "<ClinicalDocument/>")
    return path


@pytest.fixture()
def table(tmp_path):
    return load_exports([write_zip(tmp_path / "u01" / "export.zip", export_xml())])


def test_sdnn_rhr_and_sleep(table):
    f = table.frame.set_index("date")
    day = f.loc["2024-03-02"]
    assert table.users == ["apple_health-u01"]
    # SDNN: median of the readings before noon (60, 70), the evening one left out
    assert day["hrv_sdnn_ms"] == 65
    # no RMSSD at all: SDNN stands in under its own source (loaders/_hrv.py)
    assert day["hrv_rmssd_ms"] == 65 and day["source"] == "apple_health_sdnn"
    assert day["rhr_bpm"] == 52
    # asleep = union of 23:30-06:30 (watch) and 00:00-06:00 (phone): 7 h, not 13 h
    assert day["sleep_min"] == pytest.approx(420)
    assert day["deep_pct"] == pytest.approx(90 / 420 * 100)
    assert day["rem_pct"] == pytest.approx(90 / 420 * 100)
    assert day["sleep_efficiency_pct"] == pytest.approx(420 / 480 * 100)


def test_workouts_counted_once_with_their_heart_rate(table):
    f = table.frame.set_index("date")
    # run: mean of the samples 150 (max 170 sets nothing: HRmax = highest workout max = 190)
    mean_hr = (150 * 15 + 170) / 16
    weight = np.clip(np.floor((mean_hr / 190 - 0.5) * 10) + 1, 0, 5)
    assert f.loc["2024-03-02", "load_trimp"] == pytest.approx(30 * weight)
    assert any("listed twice" in n.message and n.count == 1 for n in table.notes)
    # ride: WorkoutStatistics average 140 / 190 = 74 % → zone 3, 60 min (duration in hours)
    assert f.loc["2024-03-04", "load_trimp"] == pytest.approx(180)
    # the 3rd: no heart-rate samples (watch not worn), so not a measured rest day
    assert "2024-03-03" not in f.index.strftime("%Y-%m-%d")


def test_plain_export_xml_is_read_too(tmp_path):
    path = tmp_path / "u02" / "export.xml"
    path.parent.mkdir()
    path.write_text(export_xml(), encoding="utf-8")
    assert LOADER.claims(path)
    assert load_exports([path]).frame["rhr_bpm"].max() == 52


def test_truncated_zip(tmp_path):
    good = write_zip(tmp_path / "a" / "export.zip", export_xml())
    cut = tmp_path / "b" / "export.zip"
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert LOADER.claims(cut)
    with pytest.raises(DataError, match=r"b/export.zip: not a readable zip file.*truncated"):
        load_exports([cut])


def test_zip_without_export_xml_is_not_taken_for_apple_health(tmp_path):
    path = tmp_path / "c" / "photos.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", "hello")
    assert not LOADER.claims(path)
    named = tmp_path / "d" / "export.zip"
    named.parent.mkdir()
    with zipfile.ZipFile(named, "w") as zf:
        zf.writestr("a.txt", "hello")
    with pytest.raises(DataError, match=r"no recognised export format|no export.xml"):
        load_exports([named])


def test_wrong_format_xml(tmp_path):
    path = write_zip(tmp_path / "e" / "export.zip",
                     '<?xml version="1.0"?>\n<gpx><trk><name>run</name></trk></gpx>\n')
    with pytest.raises(DataError, match=r"export.zip: XML root is <gpx>, not <HealthData>"):
        load_exports([path])


def test_broken_xml_names_the_line(tmp_path):
    xml = export_xml()
    path = write_zip(tmp_path / "f" / "export.zip", xml[: len(xml) * 2 // 3])
    with pytest.raises(DataError, match=r"export.zip: not well-formed XML \(line \d+"):
        load_exports([path])


def test_entities_are_not_expanded(tmp_path):
    xml = export_xml().replace(
        "<!DOCTYPE HealthData [\n",
        '<!DOCTYPE HealthData [\n<!ENTITY secret SYSTEM "file:///etc/passwd">\n').replace(
        'locale="en_GB"', 'locale="&secret;"')
    path = write_zip(tmp_path / "g" / "export.zip", xml)
    # lxml neither fetches nor expands it: one clear error, nothing of the file read
    with pytest.raises(DataError, match=r"export.zip: not well-formed XML.*external entity") as e:
        load_exports([path])
    assert "root:" not in str(e.value)


@pytest.mark.skipif(not SHARED.exists(), reason="the real Apple Health export is not shipped")
def test_real_export_zip():
    table = load_exports([SHARED])
    f = table.frame
    assert f["hrv_rmssd_ms"].isna().all() and f["hrv_sdnn_ms"].isna().all()  # no HRV in it
    assert f["rhr_bpm"].count() == 76  # estimated from the night's samples (no RHR records)
    assert any("rhr_bpm estimated" in n.message for n in table.notes)
    assert f["sleep_min"].count() > 50
    assert any("listed twice" in n.message and n.count == 39 for n in table.notes)  # 60 → 21
    assert f["load_trimp"].gt(0).sum() == 20  # 21 workouts, one without heart rate


def test_dates_in_another_form_are_an_error(tmp_path):
    xml = export_xml().replace('startDate="2024-03-02 08:00:00 +0100"',
                               'startDate="02/03/2024 08:00"')
    path = write_zip(tmp_path / "h" / "export.zip", xml)
    with pytest.raises(DataError, match=r"export.zip: 1 records have a startDate .*'02/03/2024"):
        load_exports([path])
