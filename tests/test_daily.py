"""The daily loop: its store (versions, migration, concurrent writers), the loop on a shipped
athlete (a scripted run of mornings, reruns that change nothing) and the report (coverage,
adherence, flags, A/B)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from daily_rows import forecasts as _forecasts
from daily_rows import morning as _morning
from daily_rows import writer as _writer

from analysis.cli import main
from analysis.daily import ab_arm, run_daily
from analysis.daily_report import (
    ab_comparison,
    adherence,
    flags,
    forecast_scores,
    report,
)
from analysis.daily_store import SCHEMA_VERSION, DailyStore, create_v1
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "shipped"
U01 = ROOT / "data" / "real" / "whoop" / "u01"


# -- the store ---------------------------------------------------------------------------------
def test_a_new_store_is_at_the_current_version_in_wal_mode(tmp_path):
    with DailyStore(tmp_path / "s.db") as store:
        assert store.version == SCHEMA_VERSION
        assert [v for v, _ in store.versions()] == list(range(1, SCHEMA_VERSION + 1))
        assert store.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    create_v1(path)
    con = sqlite3.connect(path)
    con.execute("INSERT INTO mornings VALUES ('a', '2024-01-01', '{}', 'mpc', 'rest', 0.0, "
                "'{}', NULL)")
    con.execute("INSERT INTO forecasts VALUES ('a', '2024-01-01', 'hrv_ms', '2024-01-02', "
                "1, 2, 3, 4, 5, '[3.0]')")
    con.commit()
    con.close()
    with DailyStore(path) as store:
        assert store.version == SCHEMA_VERSION
        assert [v for v, _ in store.versions()] == [1, 2]
        (m,) = store.rows("mornings")
        assert m["session"] == "rest" and m["feel"] is None and m["arm"] is None
        (f,) = store.rows("forecasts")
        assert f["q50"] == 3 and f["q005"] is None and f["samples"] == [3.0]
        # the migrated file takes the new columns
        assert store.log_morning(_morning("b", "2024-01-02", feel=4, arm="agent"),
                                 _forecasts("b", "2024-01-02"))
        assert store.rows("mornings", "b")[0]["feel"] == 4
    with DailyStore(path) as store:  # opening again migrates nothing twice
        assert [v for v, _ in store.versions()] == [1, 2]


def test_unusable_store_files_are_one_clear_error(tmp_path):
    newer = tmp_path / "newer.db"
    con = sqlite3.connect(newer)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DataError, match="newer than this program"):
        DailyStore(newer)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(DataError, match="not a daily-loop store"):
        DailyStore(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all, not even close" * 100)
    with pytest.raises(DataError, match="junk.db"):
        DailyStore(junk)
    assert main(["daily", "--db", str(tmp_path / "absent.db"), "--report"]) == 2


def test_a_morning_is_written_once(tmp_path):
    with DailyStore(tmp_path / "s.db") as store:
        assert store.log_morning(_morning("a", "2024-01-01"), _forecasts("a", "2024-01-01"))
        before = store.content()
        assert not store.log_morning(_morning("a", "2024-01-01", session="hiit"),
                                     _forecasts("a", "2024-01-01", spread=9.0))
        assert store.log_after([], [{"athlete": "a", "date": "2024-01-02", "hrv_ms": 61.0}]) == 1
        after_one = store.content()
        assert store.log_after([], [{"athlete": "a", "date": "2024-01-02", "hrv_ms": 99.0}]) == 0
        assert store.content() == after_one and after_one != before


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "busy.db")
    DailyStore(path).close()
    workers, mornings = 4, 25
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, mornings)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    with DailyStore(path) as store:
        by = pd.DataFrame(store.rows("mornings")).groupby("athlete").size().to_dict()
        assert by == {**{f"w{w}": mornings for w in range(workers)}, "shared": mornings}
        assert len(store.rows("forecasts")) == 3 * mornings * (workers + 1)
        assert len(store.rows("done")) == workers * mornings
        assert store.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- the report on a hand-made store -------------------------------------------------------------
def _fill(store: DailyStore, athlete: str, days: int, recovery=None, hrv_z=None, observed=None,
          arm=None, done=None, missing=()):
    """`days` logged mornings from 2024-01-01; each morning's forecast is N(center, 1); the
    next morning's measured values are `observed(i)` (default: the centers)."""
    center = {"hrv_ms": 60.0, "rhr_bpm": 50.0, "recovery_pct": 60.0}
    for i in range(days):
        date = str((pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)).date())
        if i in missing:
            continue
        extra = {"arm": arm}
        if recovery is not None:
            extra["recovery_pct"] = recovery(i)
        if hrv_z is not None:
            extra["ln_hrv_z"] = hrv_z(i)
        store.log_morning(_morning(athlete, date, **extra), _forecasts(athlete, date, center))
        nxt = str((pd.Timestamp(date) + pd.Timedelta(days=1)).date())
        y = observed(i) if observed else center
        store.log_after(
            [{"athlete": athlete, "date": date, "session": done(i) if done else "z2_aerobic",
              "load_trimp": 100.0}],
            [{"athlete": athlete, "date": nxt, **y,
              "ln_hrv_z": hrv_z(i + 1) if hrv_z else 0.0}])


def test_coverage_and_crps_are_read_from_the_forecasts(tmp_path):
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(400, 3))
    with DailyStore(tmp_path / "s.db") as store:
        _fill(store, "calibrated", 400, observed=lambda i: {
            "hrv_ms": 60 + draws[i, 0], "rhr_bpm": 50 + draws[i, 1],
            "recovery_pct": 60 + draws[i, 2]})
        _fill(store, "overconfident", 60, observed=lambda i: {
            "hrv_ms": 60 + 3 * draws[i, 0], "rhr_bpm": 50 + 3 * draws[i, 1],
            "recovery_pct": 60 + 3 * draws[i, 2]})
        rep = report(store)["athletes"]
    for target in ("hrv_ms", "rhr_bpm", "recovery_pct"):
        good = rep["calibrated"]["forecasts"][target]
        assert good["n"] == 400
        assert abs(good["coverage50"] - 0.5) < 0.08 and abs(good["coverage90"] - 0.9) < 0.05
        bad = rep["overconfident"]["forecasts"][target]
        assert bad["coverage90"] < 0.7 and bad["crps_mean"] > good["crps_mean"]
        assert len(good["crps_by_date"]) == 400
    # the overconfident athlete's misses are flagged
    assert any(f["flag"] == "outside_99" for f in rep["overconfident"]["flags"])


def test_flags_fire_on_the_seeds_fail_safes_and_only_there(tmp_path):
    with DailyStore(tmp_path / "s.db") as store:
        _fill(store, "quiet", 30)
        _fill(store, "low", 12, recovery=lambda i: 15.0 if 3 <= i <= 7 else 50.0)
        _fill(store, "four_low", 12, recovery=lambda i: 15.0 if 3 <= i <= 6 else 50.0)
        _fill(store, "crash", 10, hrv_z=lambda i: -3.5 if i == 4 else 0.0)
        _fill(store, "misses", 10, observed=lambda i: (
            {"hrv_ms": 90.0, "rhr_bpm": 50.0, "recovery_pct": 60.0} if i in (2, 4, 7)
            else {"hrv_ms": 60.0, "rhr_bpm": 50.0, "recovery_pct": 60.0}))
        _fill(store, "spread_misses", 20, observed=lambda i: (
            {"hrv_ms": 90.0, "rhr_bpm": 50.0, "recovery_pct": 60.0} if i in (1, 9, 17)
            else {"hrv_ms": 60.0, "rhr_bpm": 50.0, "recovery_pct": 60.0}))
        _fill(store, "gone", 20, missing=range(5, 13))
        got = {uid: flags(store, uid) for uid in store.athletes()}
    kinds = {uid: [f["flag"] for f in fs] for uid, fs in got.items()}
    assert kinds["quiet"] == [] and kinds["four_low"] == [] and kinds["spread_misses"] == []
    assert kinds["low"] == ["low_recovery"]
    assert (got["low"][0]["from"], got["low"][0]["to"]) == ("2024-01-04", "2024-01-08")
    assert kinds["crash"] == ["hrv_crash"] and got["crash"][0]["from"] == "2024-01-05"
    assert kinds["misses"] == ["outside_99"]
    assert got["misses"][0]["from"] == "2024-01-04" and "hrv_ms" in got["misses"][0]["detail"]
    # days 5-12 unlogged: the outcome of day 4 is day 5; days 6-13 have no reading at all
    assert kinds["gone"] == ["missing_week"]
    assert (got["gone"][0]["from"], got["gone"][0]["to"]) == ("2024-01-07", "2024-01-13")


def test_adherence_counts_sessions_done_as_recommended(tmp_path):
    with DailyStore(tmp_path / "s.db") as store:
        _fill(store, "a", 10, done=lambda i: "z2_aerobic" if i < 6 else
              ("trained" if i == 6 else "rest"))
        adh = adherence(store, "a")
    assert adh["days_known"] == 10 and adh["days_session_known"] == 9
    assert adh["share_as_recommended"] == pytest.approx(6 / 9)
    assert adh["recommended_trimp_mean"] == 135.0 and adh["done_trimp_mean"] == 100.0


def test_ab_arms_are_stable_and_balanced_and_compared_with_an_interval(tmp_path):
    ids = [f"athlete-{i}" for i in range(2000)]
    arms = [ab_arm(a) for a in ids]
    assert arms == [ab_arm(a) for a in ids]
    assert 0.46 < np.mean([a == "agent" for a in arms]) < 0.54
    assert ab_arm("x", "salt-1") in ("agent", "baseline")
    with DailyStore(tmp_path / "s.db") as store:
        for k in range(6):
            arm = "agent" if k < 3 else "baseline"
            z = 1.0 + 0.1 * k if arm == "agent" else -0.1 * k
            _fill(store, f"{arm}{k}", 5, arm=arm, hrv_z=lambda i, z=z: z)
        rep = report(store)
    ab = rep["ab"]
    assert ab["agent"]["athletes"] == 3 and ab["baseline"]["athletes"] == 3
    assert ab["difference"] == pytest.approx(1.1 - (-0.4))
    lo, hi = ab["interval95"]
    assert lo < ab["difference"] < hi and lo > 0
    assert ab_comparison({"a": {"arm": None, "outcome_score": 1.0}}) is None


# -- the loop on a shipped athlete -----------------------------------------------------------
def _run_mornings(db: Path, dates: list[str]) -> None:
    for day in dates:
        assert main(["daily", "--model", str(MODEL_DIR), "--data", str(U01), "--db", str(db),
                     "--date", day, "--feel", "4"]) == 0


def _check_loop(db: Path, dates: list[str]) -> None:
    with DailyStore(db) as store:
        mornings = store.rows("mornings")
        assert [m["date"] for m in mornings] == dates
        assert all(m["athlete"] == "whoop-u01" and m["feel"] == 4 for m in mornings)
        first = mornings[0]
        assert first["plan"]["days"][0]["date"] == dates[0] and len(first["plan"]["days"]) == 7
        assert first["observation"]["hrv_ms"] is not None
        assert first["session"] == first["plan"]["days"][0]["session"]
        # the export cut at each morning: yesterday's training is back-filled, today's is not
        assert [d["date"] for d in store.rows("done")] == dates[:-1]
        assert [o["date"] for o in store.rows("outcomes")] == dates[1:]
        scores = forecast_scores(store, "whoop-u01")
        assert len(scores) == 3 * (len(dates) - 1)
        # the measured morning matches the export's reading for it
        export = pd.read_csv(U01 / "physiological_cycles.csv")
        assert set(scores["observed"]).issubset(
            set(export["Heart rate variability (ms)"].dropna().astype(float))
            | set(export["Resting heart rate (bpm)"].dropna().astype(float))
            | set(export["Recovery score %"].dropna().astype(float)))
        before = store.content()
    _run_mornings(db, dates)  # the same mornings again: nothing changes
    with DailyStore(db) as store:
        assert store.content() == before


def test_a_scripted_week_on_a_shipped_athlete_fills_the_store_and_a_rerun_changes_nothing(
        tmp_path, capsys):
    """Seven consecutive mornings, each with the export cut at that morning (~1 min)."""
    dates = [str(d.date()) for d in pd.date_range("2022-11-03", "2022-11-09")]
    db = tmp_path / "week.db"
    _run_mornings(db, dates)
    _check_loop(db, dates)
    assert main(["daily", "--db", str(db), "--report"]) == 0
    out = capsys.readouterr().out
    assert "already logged, nothing changed" in out
    assert "whoop-u01: 7 mornings 2022-11-03 to 2022-11-09" in out and "coverage 50%" in out
    assert "adherence: 6 days known" in out
    page = tmp_path / "report.html"
    assert main(["daily", "--db", str(db), "--report", "--html", str(page)]) == 0
    text = page.read_text()
    assert "<h2>whoop-u01</h2>" in text and "7 mornings 2022-11-03 to 2022-11-09" in text
    assert text.count('src="data:image/png;base64,') == 3 and "http" not in text


def test_daily_refuses_a_bad_date_and_a_bad_feel(tmp_path, capsys):
    db = str(tmp_path / "d.db")
    base = ["daily", "--model", str(MODEL_DIR), "--data", str(U01), "--db", db]
    assert main([*base, "--date", "2023-01-01"]) == 2
    assert "days after the export" in capsys.readouterr().err
    assert main([*base, "--date", "yesterday"]) == 2
    with pytest.raises(SystemExit):
        main([*base, "--feel", "7"])
    with pytest.raises(DataError, match="--feel"):
        run_daily(str(MODEL_DIR), [str(U01)], db, feel=0)


def test_a_baseline_arm_gets_the_seed_rule_under_the_same_rules(tmp_path):
    salt = next(f"s{i}" for i in range(100) if ab_arm("whoop-u01", f"s{i}") == "baseline")
    db = tmp_path / "ab.db"
    with DailyStore(db) as store:
        store.setting("ab_salt", salt)  # as if the store had been made with this salt
    (result,) = run_daily(str(MODEL_DIR), [str(U01)], str(db), date="2022-11-08", ab=True)
    assert result.arm == "baseline" and result.plan["planner"] == "baseline seed_rule"
    with DailyStore(db) as store:
        (m,) = store.rows("mornings")
        assert m["arm"] == "baseline" and m["policy"] == "baseline seed_rule"
        # recovery 77 % > 70 %: the seed's rule asks for intensity (HIIT unless a rule blocks it)
        assert m["observation"]["recovery_pct"] == 77.0
        assert m["session"] == "hiit" or m["rule_changed"]


def test_a_morning_without_readings_is_logged_with_a_safe_session_and_its_reason(tmp_path):
    import shutil

    export = tmp_path / "u01"
    shutil.copytree(U01, export)
    cycles = export / "physiological_cycles.csv"
    lines = cycles.read_text().splitlines(keepends=True)
    assert lines[1].startswith("2022-11-10")
    cycles.write_text("".join([lines[0], *lines[2:]]))  # this morning's cycle not synced yet
    db = tmp_path / "d.db"
    (result,) = run_daily(str(MODEL_DIR), [str(export)], str(db), date="2022-11-10")
    assert result.logged and result.date == "2022-11-10"
    with DailyStore(db) as store:
        (m,) = store.rows("mornings")
    assert m["observation"]["hrv_ms"] is None and m["observation"]["rhr_bpm"] is None
    assert m["session"] in ("rest", "active_recovery")
    assert any("no HRV and no resting heart rate" in r for r in m["observation"]["rules_today"])
