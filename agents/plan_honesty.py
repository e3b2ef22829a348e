"""What a plan may claim about this morning: measured values, filled ones, rules that cannot
check, and the date the plan starts from (DESIGN §7: missing or extreme readings degrade to a
safe recommendation with a reason; docs/untrusted_input.md).

The policy's observation fills every missing input (`physiology_model.features.batch`): a Fitbit user
has no recovery score and sees the population's, an athlete without HRV sees an HRV z-score of
0, and after a long break ATL, CTL and days-since-rest still describe the last day with data. A
filled value is fine as an input to a planner trained on the same fills, but it is not a
measurement and must not be printed as one. `morning_facts` reads the athlete's raw rows (not the
features) and returns:

- `why`: this morning in words, measured values only (what is missing says so);
- `notes`: what was filled, which safety rule cannot check what, how stale the history is, and
  whether the export's last morning is far from today's date (or in the future);
- `stale_break_days`: the length of the data gap right before the last morning when it is at
  least `STALE_GAP_DAYS` (else 0). The plan then allows no hard session on its first day
  (`careful_mask`): the load history that the hard-streak and rest rules read is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from physiology_model.data.table import ACTIONS
from physiology_model.features.batch import FeatureConfig
from simulator.constraints import DEFAULT_SAFETY_CONFIG
from simulator.observation import FEATURE_INDEX as F

STALE_GAP_DAYS = 14
"""A gap in the data at least this long right before the last morning makes the training
history (ATL, CTL, days since rest) stale: it describes the day before the gap."""
LATE_DAYS = 3
"""The export's last morning more than this many days before today's date gets a warning."""
PHYSIOLOGY = ("hrv_rmssd_ms", "rhr_bpm", "recovery_pct")
WHOLE_DAY_ZONE_SOURCES = ("lifesnaps", "pmdata")
"""Sources whose `hr_zones` load comes from whole-day heart-rate-zone minutes (Fitbit): only the
minutes >= 70 % HRmax count, so easy sessions below that are missed (loaders/_fitbit.py,
`TRAINING_ZONE_SHARES`)."""


@dataclass
class MorningFacts:
    today: str
    """The morning the plan starts from (the export's last day), ISO date."""
    why: str
    notes: list[str] = field(default_factory=list)
    stale_break_days: int = 0
    measured: dict[str, float | None] = field(default_factory=dict)
    """This morning's raw readings (None: not measured)."""
    hrv_in_export: bool = True
    recovery_in_export: bool = True


def _value(row: pd.Series, name: str) -> float | None:
    if name not in row.index:
        return None
    v = pd.to_numeric(pd.Series([row[name]]), errors="coerce").iloc[0]
    return None if pd.isna(v) else float(v)


def _has(history: pd.DataFrame, name: str) -> pd.Series:
    if name not in history.columns:
        return pd.Series(False, index=history.index)
    return pd.to_numeric(history[name], errors="coerce").notna()


def morning_facts(history: pd.DataFrame, obs: np.ndarray, *, now: date | None = None,
                  config: FeatureConfig | None = None) -> MorningFacts:
    """The facts of the last row of one athlete's `history` (daily-table rows sorted by date);
    `obs` is the policy's observation of that morning (48 features) for the load figures;
    `now`: today's calendar date (default: UTC today)."""

    config = config or FeatureConfig()
    rows = history.reset_index(drop=True)
    dates = pd.to_datetime(rows["date"]).dt.normalize()
    today = dates.iloc[-1]
    last = rows.iloc[-1]
    notes: list[str] = []
    measured = {name: _value(last, name) for name in PHYSIOLOGY}
    hrv_any, rec_any = _has(rows, "hrv_rmssd_ms"), _has(rows, "recovery_pct")
    facts = MorningFacts(today=str(today.date()), why="", measured=measured,
                         hrv_in_export=bool(hrv_any.any()),
                         recovery_in_export=bool(rec_any.any()))
    parts: list[str] = []

    # recovery
    if measured["recovery_pct"] is not None:
        parts.append(f"recovery {measured['recovery_pct']:.0f}%")
    elif not facts.recovery_in_export:
        parts.append("recovery not measured (no recovery score in this export)")
        notes.append("no recovery score in the export: the planner's input is a filled value "
                     f"(the population's {config.reference['recovery_pct']:.0f} %), not a "
                     "measurement, and the recovery-floor rule cannot check this athlete; the "
                     "recovery forecasts are the model's, with no reading to anchor them")
    else:
        parts.append("recovery not measured this morning")
        notes.append("no recovery this morning: the planner's input is filled (last value or "
                     "the athlete's mean) and the recovery-floor rule cannot check today")

    # HRV and its baseline
    window = (dates < today) & (dates >= today - pd.Timedelta(days=config.baseline_days))
    baseline_days = int((hrv_any & window).sum())
    if not facts.hrv_in_export:
        parts.append("no HRV in this export")
        notes.append("no HRV in the export: the HRV-drop rule cannot fire, the planner's HRV "
                     "inputs are filled values (HRV z 0), and the HRV forecasts are the model's "
                     "population-based guess, not the athlete's")
    elif measured["hrv_rmssd_ms"] is None:
        parts.append("HRV not measured this morning")
        notes.append("no HRV this morning: the HRV-drop rule cannot check today")
    elif baseline_days < config.min_baseline_days:
        parts.append(f"HRV {measured['hrv_rmssd_ms']:.0f} ms (no 28-day baseline yet)")
        notes.append(f"HRV baseline not established ({baseline_days} of the "
                     f"{config.min_baseline_days} HRV mornings it needs in the last "
                     f"{config.baseline_days} days): the HRV-drop rule cannot fire")
    else:
        parts.append(f"HRV {measured['hrv_rmssd_ms']:.0f} ms, z {obs[F['ln_hrv_z_28d']]:+.1f}")
    if measured["rhr_bpm"] is None and measured["hrv_rmssd_ms"] is None:
        parts.append("no resting HR either")

    # staleness of the training history
    known = _has(rows, "load_trimp") | rows.get("session", pd.Series(index=rows.index)).isin(
        ["rest", "active_recovery", "z2_aerobic", "strength", "tempo_threshold", "hiit"])
    for name in PHYSIOLOGY:
        known |= _has(rows, name)
    before = dates[:-1][known.iloc[:-1].to_numpy()]
    gap = (int((today - before.iloc[-1]).days) - 1) if len(before) else None
    if gap is None:
        parts.append("no earlier data: days since rest, ATL and CTL unknown")
        notes.append("this morning is the only day with data: the training history (ATL, CTL, "
                     "days since rest) is unknown and the plan's first day allows no hard "
                     "session")
        facts.stale_break_days = -1
    elif gap >= STALE_GAP_DAYS:
        last_day = before.iloc[-1].date()
        parts.append(f"training history stale ({gap} days without data before today)")
        notes.append(f"no data for the {gap} days before this morning (last: {last_day}): "
                     f"days since rest, ATL and CTL describe {last_day}, not today, and are not "
                     f"shown; the plan's first day allows no hard session")
        facts.stale_break_days = gap
    else:
        parts.append(f"{obs[F['days_since_rest']]:.0f} days since rest, ATL "
                     f"{obs[F['atl_trimp']]:.0f} / CTL {obs[F['ctl_trimp']]:.0f} TRIMP/day")
        share = float(obs[F["load_known_share"]])
        if share < 0.5:
            notes.append(f"the training load is known on only about {share:.0%} of recent days: "
                         f"ATL and CTL rest on that part")
        recent = (dates < today) & (dates >= today - pd.Timedelta(days=42))
        if "load_basis" in rows.columns and "source" in rows.columns:
            whole_day = (rows["load_basis"].eq("hr_zones")
                         & rows["source"].isin(WHOLE_DAY_ZONE_SOURCES) & recent)
            if whole_day.any():
                notes.append(f"the training load of {int(whole_day.sum())} of the last 42 days "
                             f"comes from whole-day heart-rate-zone minutes (Fitbit), counting "
                             f"only the minutes at 70 % of maximum heart rate or more (below that "
                             f"is everyday activity): an easy session below it counts as rest, "
                             f"so ATL and CTL may understate the training done")
        week = (dates < today) & (dates >= today - pd.Timedelta(days=6))
        unknown = 6 - int((known & week).sum())
        if unknown:
            notes.append(f"{unknown} of the 6 days before today have no record: the "
                         f"hard-streak and rest rules cannot count them")

    # the date the plan starts from
    now = now or datetime.now(UTC).date()
    lag = (pd.Timestamp(now) - today).days
    if lag < 0:
        notes.append(f"the export's last morning ({today.date()}) is {-lag} day(s) after today "
                     f"({now}): check the export's dates (day/month order, time zone)")
    elif lag > LATE_DAYS:
        notes.append(f"the export ends on {today.date()}, {lag} days before today ({now}): this "
                     f"plan is for the days from {today.date()}; export recent data for a plan "
                     f"from today")
    facts.why = ", ".join(parts)
    facts.notes = notes
    return facts


def careful_mask(mask: np.ndarray, facts: MorningFacts) -> tuple[np.ndarray, str | None]:
    """The first day's mask with hard sessions removed when the training history is unknown or
    stale (`MorningFacts.stale_break_days`), and the reason; unchanged otherwise."""

    if facts.stale_break_days == 0:
        return mask, None
    demanding = set(DEFAULT_SAFETY_CONFIG.hard_actions) | set(DEFAULT_SAFETY_CONFIG.z45_actions)
    out = mask.copy()
    out[:, [ACTIONS.index(a) for a in demanding]] = False
    reason = ("the training history before this morning is unknown or stale: no hard session "
              "today")
    return out, reason
