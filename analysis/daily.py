"""The daily loop: `periodize daily` (DESIGN §10; seed TRD §14.2, §15.2).

Every morning, for each athlete of the export (or `--athlete`):

1. **What happened since the last logged morning** is read from today's export: for each logged
   day before today, what the athlete did (`done`: the session the export names, else rest when
   the load is at most the feature builder's rest threshold, else "trained" of unknown type, and
   the loads) and the morning after it (`outcomes`: HRV, RHR, recovery, and ln HRV against the
   athlete's 28-day baseline). Only what the export holds is written; a day it does not cover
   yet is filled by a later export.
2. **Today's recommendation** is made as `periodize plan` makes it (`agents.recommend`, the
   export cut at this morning with `--date`) and logged with this morning's observation, the
   7-day plan with its reasons, the rule that changed the choice, and the world model's forecast
   of tomorrow morning (quantiles and samples) for the recommended session.

A morning already in the store is not planned again: the first recommendation is the one the
athlete saw, and rerunning a morning changes nothing (`analysis.daily_store`).

**A/B** (`--ab`, seed §15.2 "50 % of users get the agent, 50 % the baseline"): an athlete's arm
is the parity of the first 8 bytes of SHA-256(salt + athlete id), the salt a store-wide setting
written on first use (default `AB_SALT`): stable for the life of the store and the same on every
machine. The baseline arm is the seed's rule (`agents.baselines.
SeedRulePolicy`: recovery > 70 % → intensity, else rest), under the same hard rules.

**"How do you feel today?"** (`--feel 1-5`, 1 worst) is stored with the morning. It does not
change the recommendation: the policies and the world model were trained in a simulator that has
no subjective feel, and none of the shipped exports carries one to calibrate how it should move
a plan; letting it in untested would be a rule nobody checked. It is used where seed §14.2 puts
it, in the outcome: the report's A/B comparison scores each logged morning by 0.7 × the next
morning's ln HRV z (against the athlete's 28-day baseline) + 0.3 × the next morning's feel
z ((feel − 3) / 1.0) where the feel was given, and by the HRV term alone where it was not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agents.baselines import SeedRulePolicy
from agents.recommend import MIN_DAYS, cut_at_morning, plan_details
from analysis.daily_store import QUANTILE_COLUMNS, DailyStore
from analysis.plan_page import normal_bands
from physiology_model.data.loaders import load_exports
from physiology_model.data.table import ACTIONS
from physiology_model.errors import DataError
from physiology_model.model.world_model import WorldModel
from simulator.constraints import REST, TRAINED_DAY, UNKNOWN_DAY, day_codes
from simulator.observation import FEATURE_INDEX, observations_from_table

AB_SALT = "periodize-ab-1"
"""Default salt of the A/B assignment (stored in the file's settings on first use)."""
FORECAST_SAMPLES_KEPT = 200
"""Predictive samples per target kept for the CRPS (evenly spaced order statistics of the 500
drawn; sorted, rounded to 3 decimals)."""
FEEL_WEIGHT = 0.3
"""Seed §14.2: reward = 0.7 × HRV + 0.3 × user feel (the A/B outcome)."""
FEEL_MID, FEEL_SCALE = 3.0, 1.0
"""Feel 1-5 as a z-like score: (feel − 3) / 1."""


def ab_arm(athlete: str, salt: str = AB_SALT) -> str:
    """"agent" or "baseline", stable per athlete (module docstring)."""
    digest = hashlib.sha256(f"{salt}:{athlete}".encode()).digest()
    return "agent" if int.from_bytes(digest[:8], "big") % 2 == 0 else "baseline"


def _float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _readings(row: pd.Series, features: pd.Series | None) -> dict[str, float | None]:
    """A morning's measured readings and ln HRV z against the 28-day baseline (None where
    unmeasured or the baseline is not established)."""
    hrv = _float(row.get("hrv_rmssd_ms"))
    out = {"hrv_ms": hrv, "rhr_bpm": _float(row.get("rhr_bpm")),
           "recovery_pct": _float(row.get("recovery_pct")), "ln_hrv_z": None}
    if hrv is not None and hrv > 0 and features is not None:
        base = _float(features.get("ln_hrv_baseline_28d"))
        sd = _float(features.get("ln_hrv_baseline_sd_28d"))
        if base is not None and sd is not None and sd > 0:
            out["ln_hrv_z"] = (float(np.log(hrv)) - base) / sd
    return out


def done_session(row: pd.Series) -> str | None:
    """What was done on a day (module docstring): an action name, "trained" (a load above the
    rest threshold, type unknown) or None (nothing known)."""

    code = int(day_codes(pd.Series([row.get("session")], dtype=object),
                         pd.Series([row.get("load_trimp")], dtype=float))[0])
    if code == UNKNOWN_DAY:
        return None
    if code == TRAINED_DAY:
        return "trained"
    return ACTIONS[REST if code == REST else code]


def backfill(store: DailyStore, athlete: str, history: pd.DataFrame,
             features: pd.DataFrame, today: pd.Timestamp) -> int:
    """Write what was done on, and the morning after, each logged day before `today` that the
    export covers (module docstring, step 1). Returns the rows added."""
    rows = history.assign(date=pd.to_datetime(history["date"]).dt.normalize()).set_index("date")
    feats = features.assign(date=pd.to_datetime(features["date"]).dt.normalize()
                            ).set_index("date")
    done, outcomes = [], []
    for m in store.rows("mornings", athlete):
        day = pd.Timestamp(m["date"])
        if day >= today:
            continue
        if day in rows.index:
            row = rows.loc[day]
            session = done_session(row)
            if session is not None:
                done.append({"athlete": athlete, "date": m["date"], "session": session,
                             **{c: _float(row.get(c)) for c in
                                ("load_trimp", "z4_min", "z5_min", "strength_min")}})
        after = day + pd.Timedelta(days=1)
        if after in rows.index:
            readings = _readings(rows.loc[after], feats.loc[after] if after in feats.index
                                 else None)
            if any(readings[k] is not None for k in ("hrv_ms", "rhr_bpm", "recovery_pct")):
                outcomes.append({"athlete": athlete, "date": str(after.date()), **readings})
    return store.log_after(done, outcomes)


def _forecast_rows(athlete: str, date: str, prediction) -> list[dict[str, Any]]:
    """The next morning's forecast per target (units shown to the athlete)."""
    samples = {"hrv_ms": np.exp(prediction.samples["hrv"][:, 0]),
               "rhr_bpm": prediction.samples["rhr"][:, 0],
               "recovery_pct": prediction.samples["recovery"][:, 0]}
    for_date = str((pd.Timestamp(date) + pd.Timedelta(days=1)).date())
    out = []
    for target, s in samples.items():
        s = np.sort(np.asarray(s, dtype=float))
        keep = s[np.linspace(0, len(s) - 1, min(FORECAST_SAMPLES_KEPT, len(s))).round()
                 .astype(int)]
        out.append({"athlete": athlete, "date": date, "target": target, "for_date": for_date,
                    **{c: float(np.quantile(s, q)) for c, q in QUANTILE_COLUMNS.items()},
                    "samples": [round(float(x), 3) for x in keep]})
    return out


@dataclass
class DailyResult:
    """One athlete's morning: what `periodize daily` did."""

    athlete: str
    date: str
    logged: bool
    """False when the morning was already in the store (nothing planned or written)."""
    filled: int
    """Rows of done/outcomes added from the export."""
    plan: dict[str, Any] | None
    arm: str | None


def _athletes(frame: pd.DataFrame, athlete: str | None) -> list[str]:

    if athlete is not None:
        if athlete not in set(frame["user_id"]):
            raise DataError("(data)", f"no athlete {athlete!r} in the exports")
        return [athlete]
    counts = (frame.assign(obs=frame["hrv_rmssd_ms"].notna() | frame["rhr_bpm"].notna())
              .groupby("user_id")["obs"].sum())
    ok = sorted(str(u) for u in counts[counts >= MIN_DAYS].index)
    if not ok:
        raise DataError("(data)", f"no athlete has {MIN_DAYS} days of HRV or RHR to plan from")
    return ok


def run_daily(model_dir: str, data: Sequence[str], db: str, *, policy_dir: str | None = None,
              date: str | None = None, feel: int | None = None, athlete: str | None = None,
              ab: bool = False, seed: int = 0, days: int = 7) -> list[DailyResult]:
    """One morning of the daily loop for each athlete (module docstring)."""

    if feel is not None and not (isinstance(feel, int) and 1 <= feel <= 5):
        raise DataError("--feel", f"{feel!r} is not a whole number from 1 (worst) to 5")
    table = load_exports(data)
    frame = cut_at_morning(table.frame, date)
    today = (pd.Timestamp(date).normalize() if date is not None
             else pd.to_datetime(frame["date"]).max().normalize())
    day = str(today.date())
    model = None
    results = []
    with DailyStore(db) as store:
        salt = store.setting("ab_salt", AB_SALT) if ab else None
        for uid in _athletes(frame, athlete):
            history = frame[frame["user_id"] == uid].sort_values("date")
            features = observations_from_table(history)
            filled = backfill(store, uid, history, features, today)
            if store.has_morning(uid, day):
                results.append(DailyResult(uid, day, False, filled, None, None))
                continue
            arm = ab_arm(uid, salt) if salt is not None else None
            policy = SeedRulePolicy() if arm == "baseline" else None
            model = model or WorldModel.load(model_dir)
            details = plan_details(model_dir, data, athlete=uid, days=days,
                                   policy_dir=None if policy is not None else policy_dir,
                                   policy=policy, seed=seed, today=day, table=table,
                                   model=model)
            plan = details.plan
            first = plan["days"][0]
            feats = dict(zip(FEATURE_INDEX, details.observation.tolist()))
            band = normal_bands(details.history).iloc[-1]
            observation = {**_readings(details.history.iloc[-1], pd.Series(feats)),
                           "normal_band": [_float(band[k]) for k in
                                           ("hrv_lo", "hrv_hi", "rhr_lo", "rhr_hi")],
                           "features": {k: round(float(v), 6) for k, v in feats.items()},
                           "rules_today": details.mask.explain(0),
                           "data_notes": plan.get("notes", [])}
            morning = {"athlete": uid, "date": day, "observation": observation,
                       "policy": plan["planner"], "session": first["session"],
                       "load_trimp": first["load_trimp"], "plan": plan,
                       "rule_changed": first.get("reason"), "feel": feel, "arm": arm}
            logged = store.log_morning(morning, _forecast_rows(uid, day, details.prediction))
            results.append(DailyResult(uid, day, logged, filled, plan, arm))
    return results


def format_results(results: Sequence[DailyResult]) -> str:
    """What `periodize daily` prints: one block per athlete."""
    lines = []
    for r in results:
        filled = f"; {r.filled} rows of done/outcomes added" if r.filled else ""
        if not r.logged:
            lines.append(f"{r.athlete} {r.date}: already logged, nothing changed{filled}")
            continue
        first = r.plan["days"][0]
        lines.append(f"{r.athlete} {r.date}: {first['session']} ({first['load_trimp']:.0f} TRIMP)"
                     f", planner {r.plan['planner']}" + (f", arm {r.arm}" if r.arm else "")
                     + filled)
        if first.get("why"):
            lines.append(f"  this morning: {first['why']}")
        if first.get("reason"):
            lines.append(f"  rule: {first['reason']}")
        lo, hi = first["recovery_pct_interval"]
        lines.append(f"  tomorrow: recovery {first['recovery_pct']:.0f}% [{lo:.0f}-{hi:.0f}], "
                     f"HRV {first['hrv_ms']:.0f} ms, RHR {first['rhr_bpm']:.0f} bpm")
        lines.append("  week: " + ", ".join(d["session"] for d in r.plan["days"]))
    return "\n".join(lines)
