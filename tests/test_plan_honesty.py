"""Missing is not fine (issue 21, item 4): a plan never prints a filled value as a measurement,
says which rule cannot check what, flags a stale history and a last morning far from today, and
a missing yesterday makes the recovery rule more careful."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.plan_honesty import STALE_GAP_DAYS, careful_mask, morning_facts
from physiology_model.data.table import ACTIONS
from simulator.observation import observation_matrix, observations_from_table

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "shipped"
WHOOP_U01 = ROOT / "data" / "real" / "whoop" / "u01"
HARD = {"tempo_threshold", "hiit", "strength"}


def athlete(days: int = 40, start: str = "2024-03-01") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "user_id": "a", "date": pd.date_range(start, periods=days, freq="D"),
        "hrv_rmssd_ms": rng.normal(70, 6, days), "rhr_bpm": rng.normal(52, 2, days),
        "recovery_pct": rng.uniform(40, 90, days),
        "load_trimp": np.where(np.arange(days) % 4 == 0, 0.0, 120.0),
        "session": np.where(np.arange(days) % 4 == 0, "rest", "z2_aerobic")})


def facts_of(frame: pd.DataFrame, now: date | None = None):
    obs = observation_matrix(observations_from_table(frame))[-1]
    last = pd.Timestamp(frame["date"].iloc[-1]).date()
    return morning_facts(frame, obs, now=now or last)


def test_complete_data_reads_as_measured_with_no_notes() -> None:
    facts = facts_of(athlete())
    assert facts.notes == [] and facts.stale_break_days == 0
    assert facts.why.startswith("recovery ") and "HRV " in facts.why and " z " in facts.why
    assert "days since rest" in facts.why and "ATL" in facts.why
    assert facts.measured["recovery_pct"] == pytest.approx(athlete()["recovery_pct"].iloc[-1])


def test_a_device_without_recovery_is_not_shown_the_population_default() -> None:
    facts = facts_of(athlete().drop(columns="recovery_pct"))
    assert "recovery not measured" in facts.why and "%" not in facts.why.split(",")[0]
    assert any("no recovery score" in n and "recovery-floor rule cannot" in n
               for n in facts.notes)
    assert not facts.recovery_in_export and facts.measured["recovery_pct"] is None


def test_an_athlete_without_hrv_gets_no_hrv_z_and_a_note() -> None:
    frame = athlete()
    frame["hrv_rmssd_ms"] = np.nan
    facts = facts_of(frame)
    assert "no HRV" in facts.why and " z " not in facts.why
    assert any("HRV-drop rule cannot fire" in n for n in facts.notes)
    assert not facts.hrv_in_export


def test_hrv_this_morning_missing_or_baseline_short_is_said() -> None:
    frame = athlete()
    frame.loc[frame.index[-1], "hrv_rmssd_ms"] = np.nan
    assert any("no HRV this morning" in n for n in facts_of(frame).notes)
    short = athlete(days=5)
    assert any("baseline not established" in n for n in facts_of(short).notes)


def test_a_long_gap_before_the_last_morning_makes_the_history_stale() -> None:
    frame = athlete(days=200)
    frame = frame.drop(index=frame.index[20:-1])  # 179 days without data before the last
    facts = facts_of(frame)
    assert facts.stale_break_days == 179 >= STALE_GAP_DAYS
    assert "stale" in facts.why and "ATL" not in facts.why and "since rest" not in facts.why
    assert any("not shown" in n for n in facts.notes)
    mask = np.ones((1, 6), dtype=bool)
    careful, reason = careful_mask(mask, facts)
    assert reason and not any(careful[0, ACTIONS.index(a)] for a in HARD | {"hiit"})
    assert careful[0, ACTIONS.index("rest")] and careful[0, ACTIONS.index("z2_aerobic")]
    assert careful_mask(mask, facts_of(athlete()))[0] is mask


def test_the_date_the_plan_starts_from_is_checked_against_today() -> None:
    frame = athlete()
    last = pd.Timestamp(frame["date"].iloc[-1]).date()
    future = facts_of(frame, now=date(2024, 3, 20))
    assert any("after today" in n and "day/month" in n for n in future.notes)
    late = facts_of(frame, now=date(2026, 1, 1))
    assert any(f"ends on {last}" in n and "before today" in n for n in late.notes)
    assert facts_of(frame, now=last).notes == []


# -- whole plans on a real export (copied and damaged in tmp_path) ------------------------------


def _whoop_copy(tmp_path: Path, change) -> str:
    cycles = pd.read_csv(WHOOP_U01 / "physiological_cycles.csv")
    cycles = change(cycles)
    out = tmp_path / "u01"
    out.mkdir()
    cycles.to_csv(out / "physiological_cycles.csv", index=False)
    return str(out)


def test_one_bad_morning_after_a_missing_one_is_a_rest_day(tmp_path) -> None:
    from agents.recommend import plan_for_athlete

    def change(cycles):
        cycles.loc[0, "Recovery score %"] = 6  # this morning (rows are newest first)
        return cycles.drop(index=1)            # yesterday's cycle is missing

    data = _whoop_copy(tmp_path, change)
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=1, seed=0, now=date(2022, 11, 10))
    first = plan["days"][0]
    assert first["session"] == "rest"
    text = " ".join(first.get("rules_today", [])) + first.get("reason", "")
    assert "yesterday's recovery is missing" in text
    assert plan["today"] == "2022-11-10" and first["why"].startswith("recovery 6%")


def test_a_plan_after_a_two_month_gap_says_so_and_starts_easy(tmp_path) -> None:
    from agents.recommend import plan_for_athlete

    data = _whoop_copy(tmp_path, lambda c: c.drop(index=range(1, 60)))
    plan = plan_for_athlete(str(MODEL_DIR), [data], days=2, seed=0, now=date(2022, 11, 10))
    first = plan["days"][0]
    assert "stale" in first["why"] and "ATL" not in first["why"]
    assert first["session"] not in HARD
    assert any("days before this morning" in n for n in plan["notes"])


def test_fitbit_whole_day_zone_load_says_what_it_counts() -> None:
    frame = athlete().assign(source="lifesnaps", load_basis="hr_zones")
    assert any("whole-day heart-rate-zone minutes" in n and "70 %" in n
               for n in facts_of(frame).notes)
    whoop = athlete().assign(source="whoop", load_basis="hr_zones")
    assert facts_of(whoop).notes == []
