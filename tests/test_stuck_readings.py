"""Stuck readings (`loaders/_stuck.py`): a value repeated 7+ days in a row is blanked, said so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from physiology_model.data.loaders import load_exports
from physiology_model.data.loaders._stuck import STUCK_RUN_DAYS, stuck_runs

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def test_rule_on_its_own():
    dates = pd.Series(pd.date_range("2025-01-01", periods=30))
    rhr = pd.Series(50.0 + (np.arange(30) % 3))
    assert not stuck_runs(dates, rhr).any()
    stuck = rhr.copy()
    stuck[10:10 + STUCK_RUN_DAYS] = 48.0
    assert stuck_runs(dates, stuck).tolist() == [10 <= i < 10 + STUCK_RUN_DAYS for i in range(30)]
    # one day short of the rule: kept (five or six equal mornings happen in real series)
    short = rhr.copy()
    short[10:10 + STUCK_RUN_DAYS - 1] = 48.0
    assert not stuck_runs(dates, short).any()
    # a gap in the calendar breaks the run: the same value a week apart is not "in a row"
    gapped = pd.Series(pd.date_range("2025-01-01", periods=30, freq="2D"))
    assert not stuck_runs(gapped, stuck).any()
    # missing days are never flagged
    missing = stuck.copy()
    missing[12] = np.nan
    assert not stuck_runs(dates, missing).any()


def test_carried_forward_resting_hr_is_blanked_and_noted():
    table = load_exports([REAL / "intervals_section11" / "u25"])
    f = table.frame
    assert f["rhr_bpm"].notna().sum() == 4  # of 88: 84 mornings of exactly 48 bpm in a row
    assert (f["rhr_bpm"].dropna() != 48).sum() == 3
    notes = [n for n in table.notes if "repeats the same value (48)" in n.message]
    assert len(notes) == 1 and notes[0].kind == "repair" and notes[0].count == 84
    assert f["hrv_rmssd_ms"].notna().sum() == 63  # the other channels are untouched


def test_real_series_keep_their_days(shipped_table):
    # WHOOP's longest run of equal resting HR is 5 days: nothing is blanked. Read from the
    # session's read of all the shipped data (conftest.py), whose WHOOP rows and notes are
    # those of load_exports([REAL / "whoop"]); the rule did run in that read (section11 u25).
    blanked = {Path(n.path).relative_to(REAL).parts[0] for n in shipped_table.notes
               if "repeats the same value" in n.message}
    assert "whoop" not in blanked and "intervals_section11" in blanked
