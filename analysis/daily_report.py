"""What the daily log is for: `periodize daily --report` (DESIGN §10; seed TRD §15.2).

Per athlete, from the store alone (no model, no export):

- **Forecasts**: realised coverage of the next-morning 50 % and 90 % central intervals (the
  share of measured mornings inside them; a calibrated forecast covers about 50 and 90 %) and
  the CRPS of each forecast (`analysis.forecast_eval.crps_samples` on the stored samples), per
  target, over time. The forecast is for the recommended session; on a day the athlete did
  something else it answers a question that was not asked, so coverage is also given for the
  days done as recommended.
- **Adherence**: of the logged days whose training the export names, the share done as
  recommended (same session; rest counts when the load was at most the rest threshold), and
  the recommended and done loads (TRIMP).
- **Flags** a coach must see (seed §15.2 "flag anomalies for manual review" and the fail-safes
  of §15.2 and §6.3), each with its days:
  - `low_recovery`: recovery < 20 % on `LOW_RECOVERY_DAYS` (5) measured mornings in a row;
  - `hrv_crash`: a morning's ln HRV more than `HRV_CRASH_SD` (3) SDs below the athlete's 28-day
    baseline (the hard rule blocks zone 4-5 at 2 SD; beyond 3 SD a day is rare enough, under 0.2 %
    for a normal ln HRV, to ask a person to look);
  - `outside_99`: `OUTSIDE_99_COUNT` (3) measured mornings in any `OUTSIDE_99_WINDOW` (7)
    consecutive days outside the forecast's 99 % interval for some target (a calibrated forecast
    does that by chance about once in 10⁴ weeks: the model is wrong for this athlete, or the
    sensor is);
  - `missing_week`: `MISSING_DAYS` (7) consecutive days without HRV and without RHR.
  A flag is `active` when its last day is the athlete's last logged day.
- **A/B** (when the store has arms): per arm, the athletes and the mean of their per-athlete
  outcome scores (0.7 × next-morning ln HRV z + 0.3 × feel z, `analysis.daily`), and the
  difference agent − baseline with a Welch 95 % interval. The athlete is the unit (mornings of
  one athlete are not independent); with fewer than two athletes in an arm there is no interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.daily_store import TARGETS, DailyStore
from analysis.forecast_eval import crps_samples

LOW_RECOVERY_PCT = 20.0
LOW_RECOVERY_DAYS = 5
HRV_CRASH_SD = 3.0
OUTSIDE_99_COUNT = 3
OUTSIDE_99_WINDOW = 7
MISSING_DAYS = 7
Z_95 = 1.959963984540054


def _runs(flags: pd.Series, length: int) -> list[tuple[str, str]]:
    """(first, last) dates of each run of at least `length` consecutive True days."""
    out, start, prev, count = [], None, None, 0
    for day, flag in flags.items():
        if flag:
            start = day if count == 0 else start
            count += 1
        else:
            if count >= length:
                out.append((str(start.date()), str(prev.date())))
            count = 0
        prev = day
    if count >= length:
        out.append((str(start.date()), str(prev.date())))
    return out


def daily_series(store: DailyStore, athlete: str) -> pd.DataFrame:
    """One row per calendar day from the athlete's first to last logged morning (or measured
    morning after it): the readings seen that morning (a later export's fill where the morning
    had none) and the recommendation, if one was logged."""
    mornings = store.rows("mornings", athlete)
    outcomes = {o["date"]: o for o in store.rows("outcomes", athlete)}
    days = [m["date"] for m in mornings] + list(outcomes)
    index = pd.date_range(min(days), max(days), freq="D")
    bands = ("hrv_lo", "hrv_hi", "rhr_lo", "rhr_hi")
    frame = pd.DataFrame(index=index, columns=["hrv_ms", "rhr_bpm", "recovery_pct", "ln_hrv_z",
                                               "session", "feel", *bands], dtype=object)
    for day, o in outcomes.items():
        for key in ("hrv_ms", "rhr_bpm", "recovery_pct", "ln_hrv_z"):
            frame.loc[pd.Timestamp(day), key] = o[key]
    for m in mornings:
        day = pd.Timestamp(m["date"])
        for key in ("hrv_ms", "rhr_bpm", "recovery_pct", "ln_hrv_z"):
            if m["observation"].get(key) is not None:
                frame.loc[day, key] = m["observation"][key]
        for key, value in zip(bands, m["observation"].get("normal_band") or ()):
            frame.loc[day, key] = value
        frame.loc[day, "session"] = m["session"]
        frame.loc[day, "feel"] = m["feel"]
    for key in ("hrv_ms", "rhr_bpm", "recovery_pct", "ln_hrv_z", "feel", *bands):
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame


def forecast_scores(store: DailyStore, athlete: str) -> pd.DataFrame:
    """One row per scored forecast (a logged morning's forecast whose next morning was
    measured): target, dates, observed value, inside the 50/90/99 % intervals, CRPS."""

    outcomes = {o["date"]: o for o in store.rows("outcomes", athlete)}
    rows = []
    for f in store.rows("forecasts", athlete):
        y = (outcomes.get(f["for_date"]) or {}).get(f["target"])
        if y is None:
            continue
        rows.append({"date": f["date"], "for_date": f["for_date"], "target": f["target"],
                     "observed": y, "median": f["q50"],
                     "in50": f["q25"] <= y <= f["q75"], "in90": f["q05"] <= y <= f["q95"],
                     "in99": (None if f["q005"] is None or f["q995"] is None
                              else f["q005"] <= y <= f["q995"]),
                     "crps": float(crps_samples(np.asarray(f["samples"]), np.asarray(y)))})
    return pd.DataFrame(rows, columns=["date", "for_date", "target", "observed", "median",
                                       "in50", "in90", "in99", "crps"])


def _coverage(scores: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for target in TARGETS:
        s = scores[scores["target"] == target]
        out[target] = {"n": len(s),
                       "coverage50": float(s["in50"].mean()) if len(s) else None,
                       "coverage90": float(s["in90"].mean()) if len(s) else None,
                       "crps_mean": float(s["crps"].mean()) if len(s) else None,
                       "crps_by_date": {d: round(float(c), 4)
                                        for d, c in zip(s["for_date"], s["crps"])}}
    return out


def adherence(store: DailyStore, athlete: str) -> dict[str, Any]:
    """Recommended vs done (module docstring)."""
    done = {d["date"]: d for d in store.rows("done", athlete)}
    days = []
    for m in store.rows("mornings", athlete):
        d = done.get(m["date"])
        if d is None:
            continue
        days.append({"date": m["date"], "recommended": m["session"], "done": d["session"],
                     "recommended_trimp": m["load_trimp"], "done_trimp": d["load_trimp"],
                     "as_recommended": (None if d["session"] == "trained"
                                        else d["session"] == m["session"])})
    typed = [d for d in days if d["as_recommended"] is not None]
    loads = [(d["recommended_trimp"], d["done_trimp"]) for d in days
             if d["done_trimp"] is not None]
    return {"days_known": len(days), "days_session_known": len(typed),
            "share_as_recommended": (sum(d["as_recommended"] for d in typed) / len(typed)
                                     if typed else None),
            "recommended_trimp_mean": (float(np.mean([a for a, _ in loads])) if loads
                                       else None),
            "done_trimp_mean": float(np.mean([b for _, b in loads])) if loads else None,
            "days": days}


def flags(store: DailyStore, athlete: str, series: pd.DataFrame | None = None,
          scores: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """The coach's flags (module docstring) of one athlete of the store, oldest first."""
    series = daily_series(store, athlete) if series is None else series
    scores = forecast_scores(store, athlete) if scores is None else scores
    return compute_flags(series, scores)


def compute_flags(series: pd.DataFrame, scores: pd.DataFrame | None = None
                  ) -> list[dict[str, Any]]:
    """The flags of a daily series (a calendar `DatetimeIndex`; columns `hrv_ms`, `rhr_bpm`,
    `recovery_pct`, `ln_hrv_z`) and its scored forecasts (`forecast_scores`; None: no
    `outside_99` flag), oldest first."""
    scores = scores if scores is not None else pd.DataFrame(columns=["for_date", "in99"])
    last = series.index[-1]
    out = []

    def add(kind: str, first: str, last_day: str, detail: str) -> None:
        out.append({"flag": kind, "from": first, "to": last_day, "detail": detail,
                    "active": last_day == str(last.date())})

    low = series["recovery_pct"] < LOW_RECOVERY_PCT
    for a, b in _runs(low, LOW_RECOVERY_DAYS):
        add("low_recovery", a, b, f"recovery below {LOW_RECOVERY_PCT:g} % every morning "
                                  f"{a} to {b}")
    for day, z in series["ln_hrv_z"].items():
        if np.isfinite(z) and z < -HRV_CRASH_SD:
            add("hrv_crash", str(day.date()), str(day.date()),
                f"{day.date()}: HRV {series.loc[day, 'hrv_ms']:.0f} ms, {z:.1f} SD from the "
                f"28-day baseline")
    if len(scores) and scores["in99"].notna().any():
        outside = (scores[scores["in99"] == False]  # None is "not scored", not False
                   .groupby("for_date")["target"].apply(lambda t: ", ".join(sorted(t))))
        days = pd.Series(False, index=series.index)
        days[pd.DatetimeIndex(outside.index)] = True
        count = days.rolling(OUTSIDE_99_WINDOW, min_periods=1).sum()
        fired = count[count >= OUTSIDE_99_COUNT]
        reported_to = None
        for end in fired.index:
            start = end - pd.Timedelta(days=OUTSIDE_99_WINDOW - 1)
            window = [d for d in outside.index if start <= pd.Timestamp(d) <= end]
            if reported_to is not None and pd.Timestamp(window[0]) <= reported_to:
                out[-1]["to"] = str(end.date())
                out[-1]["active"] = end == last
                out[-1]["detail"] = "outside the 99 % forecast interval: " + "; ".join(
                    f"{d} ({outside[d]})" for d in outside.index
                    if pd.Timestamp(out[-1]["from"]) <= pd.Timestamp(d) <= end)
            else:
                add("outside_99", window[0], str(end.date()),
                    "outside the 99 % forecast interval: "
                    + "; ".join(f"{d} ({outside[d]})" for d in window))
            reported_to = end
    missing = series["hrv_ms"].isna() & series["rhr_bpm"].isna()
    for a, b in _runs(missing, MISSING_DAYS):
        add("missing_week", a, b, f"no HRV and no resting HR from {a} to {b}")
    return sorted(out, key=lambda f: (f["from"], f["flag"]))


def outcome_score(series: pd.DataFrame) -> float | None:
    """One athlete's A/B outcome: the mean over measured mornings after a logged one of
    0.7 × ln HRV z + 0.3 × feel z (the HRV term alone where no feel was given)."""
    logged = series["session"].notna()
    after = logged.shift(1, fill_value=False)
    z = series["ln_hrv_z"][after]
    feel = (series["feel"][after] - 3.0) / 1.0
    score = np.where(feel.notna(), 0.7 * z + 0.3 * feel, z)
    score = score[np.isfinite(score)]
    return float(score.mean()) if len(score) else None


def ab_comparison(per_athlete: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The running A/B comparison (module docstring), None when no athlete has an arm."""
    arms: dict[str, list[float]] = {"agent": [], "baseline": []}
    for r in per_athlete.values():
        if r["arm"] in arms and r["outcome_score"] is not None:
            arms[r["arm"]].append(r["outcome_score"])
    if not any(r["arm"] for r in per_athlete.values()):
        return None
    out: dict[str, Any] = {arm: {"athletes": len(v), "mean": float(np.mean(v)) if v else None}
                           for arm, v in arms.items()}
    a, b = arms["agent"], arms["baseline"]
    if len(a) >= 2 and len(b) >= 2:
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        diff = float(np.mean(a) - np.mean(b))
        se = math.sqrt(va + vb)
        out["difference"] = diff
        out["interval95"] = [diff - Z_95 * se, diff + Z_95 * se]
    else:
        out["difference"] = None
        out["note"] = "fewer than two athletes with outcomes in an arm: no interval yet"
    return out


def report(store: DailyStore) -> dict[str, Any]:
    """The report as a JSON-ready dict: per athlete, and the A/B comparison."""
    athletes = {}
    for uid in store.athletes():
        mornings = store.rows("mornings", uid)
        series = daily_series(store, uid)
        scores = forecast_scores(store, uid)
        adh = adherence(store, uid)
        followed = {d["date"] for d in adh["days"] if d["as_recommended"]}
        athletes[uid] = {
            "mornings": len(mornings), "first": mornings[0]["date"],
            "last": mornings[-1]["date"], "arm": mornings[-1]["arm"],
            "policy": mornings[-1]["policy"],
            "forecasts": _coverage(scores),
            "forecasts_when_followed": _coverage(scores[scores["date"].isin(followed)]),
            "adherence": adh, "flags": flags(store, uid, series, scores),
            "outcome_score": outcome_score(series),
            "feel_given": int(series["feel"].notna().sum()),
        }
    return {"store": str(store.path), "schema_version": store.version, "athletes": athletes,
            "ab": ab_comparison(athletes)}


def format_report(rep: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    lines = []
    for uid, r in rep["athletes"].items():
        lines.append(f"{uid}: {r['mornings']} mornings {r['first']} to {r['last']}, "
                     f"{r['policy']}" + (f", arm {r['arm']}" if r["arm"] else ""))
        for target, c in r["forecasts"].items():
            crps = "-" if c["crps_mean"] is None else f"{c['crps_mean']:.3g}"
            lines.append(f"  {target:13s} n={c['n']:3d}  coverage 50% {pct(c['coverage50']):>4s}"
                         f"  90% {pct(c['coverage90']):>4s}  CRPS {crps}")
        a = r["adherence"]
        lines.append(f"  adherence: {a['days_known']} days known, "
                     f"{a['days_session_known']} with a session type, "
                     f"{pct(a['share_as_recommended'])} as recommended; TRIMP recommended "
                     + ("-" if a["recommended_trimp_mean"] is None else
                        f"{a['recommended_trimp_mean']:.0f}, done {a['done_trimp_mean']:.0f}")
                     + " per day")
        if not r["flags"]:
            lines.append("  flags: none")
        for f in r["flags"]:
            lines.append(f"  FLAG {f['flag']}{' (active)' if f['active'] else ''}: "
                         f"{f['detail']}")
    ab = rep.get("ab")
    if ab:
        lines.append("A/B: " + ", ".join(
            f"{arm} {ab[arm]['athletes']} athletes"
            + ("" if ab[arm]["mean"] is None else f" (outcome {ab[arm]['mean']:+.2f})")
            for arm in ("agent", "baseline")))
        if ab.get("difference") is not None:
            lo, hi = ab["interval95"]
            lines.append(f"  agent − baseline {ab['difference']:+.2f} (95% {lo:+.2f} to "
                         f"{hi:+.2f})")
        else:
            lines.append(f"  {ab['note']}")
    return "\n".join(lines)
