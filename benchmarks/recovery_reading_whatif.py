"""What if the simulator read recovery the way the device does? (issue 24, before building it)

`benchmarks/recovery_baseline.py` finds that a device's recovery score is the morning's
measured ln HRV and RHR read against the athlete's trailing 30-day means. The world model links
recovery to the predicted HRV and RHR against fixed levels instead. Before changing the fit,
the personalisation, the forecasts and the simulator, this measures what the change would buy
on the model check's recovery statistics, on the same athletes, days and replicates:

1. The reading's parameters, from the athletes *in* the fit that have recovery (≥ 60 days):
   per athlete, the least squares of `model_check.reading_r2` against the trailing
   `model_check.BASELINE_DAYS`-day means; the medians over athletes of the two gains, of the
   residual SD and of its lag-1 autocorrelation.
2. Each athlete *outside* the fit with recovery is checked as `periodize model check` does
   (`model_check.check_athlete`, the same seeds). Its reading's intercept is the mean over its
   conditioning days of the recovery logit minus the gains' part (the pooled median where fewer
   than 5 such days).
3. `reading`: each replicate's recovery is replaced by intercept + g_hrv·(ln HRV − B_hrv) +
   g_rhr·(RHR − B_rhr) + ε, with the replicate's own simulated (unrounded) ln HRV and RHR, B
   their trailing means over the measured conditioning days followed by the replicate's future,
   and ε an AR(1) of the pooled SD and lag-1; then missing and rounded as measured.
4. The check's per-athlete and pooled recovery records (`model_check.athlete_records`,
   `pooled_records`, the C2ST with its interval) for the model's recovery (`model`) and for the
   reading (`reading`).

A projection, not the model: the reading's gains come from a regression on the fit's athletes,
not from the hierarchical fit, and nothing but the check's recovery is changed.

    python benchmarks/recovery_reading_whatif.py --out benchmarks/results/recovery_reading_whatif.json
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from run_record import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.model_check import (
    BASELINE_DAYS,
    CheckConfig,
    athlete_records,
    check_athlete,
    measure,
    pooled_records,
    reading_r2,
    trailing_mean,
    unseen_athletes,
)
from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.observation import logit_to_recovery
from physiology_model.model.forecast import series_from_frame
from physiology_model.model.world_model import WorldModel

MIN_DAYS = 60


def _arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recovery logit, ln HRV, RHR) on the athlete's full calendar (`series_from_frame`)."""
    series = series_from_frame(rows.sort_values("date"))
    return series.recovery_logit, series.hrv, series.rhr


def reading_parameters(model, frame: pd.DataFrame) -> dict:
    """Step 1 of the module docstring."""
    per = []
    for user, rows in frame.groupby("user_id"):
        if user not in model.athletes_:
            continue
        r, h, c = _arrays(rows)
        baselines = trailing_mean(h, BASELINE_DAYS), trailing_mean(c, BASELINE_DAYS)
        use = (np.isfinite(r) & np.isfinite(h) & np.isfinite(c)
               & np.isfinite(baselines[0]) & np.isfinite(baselines[1]))
        if use.sum() < MIN_DAYS:
            continue
        r2, residual, coef = reading_r2(r, h, c, baselines, use)
        a, b = residual[:-1], residual[1:]
        pair = np.isfinite(a) & np.isfinite(b)
        per.append({"athlete": str(user), "days": int(use.sum()), "r2": r2,
                    "intercept": float(coef[0]), "g_hrv": float(coef[1]),
                    "g_rhr": float(coef[2]), "sd": float(np.nanstd(residual)),
                    "lag1": float(np.corrcoef(a[pair], b[pair])[0, 1])})
    if len(per) < 3:
        raise SystemExit("need at least 3 athletes in the fit with 60 days of recovery")
    return {k: float(np.median([p[k] for p in per]))
            for k in ("intercept", "g_hrv", "g_rhr", "sd", "lag1")} | {"athletes": per}


def read_recovery(check, rows: pd.DataFrame, reading: dict, n_cond: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Steps 2-3 of the module docstring: (simulated recovery as measured, (R, T), the same
    before rounding, the athlete's intercept)."""
    r, h, c = _arrays(rows)
    t_future = check.measured["recovery"].size
    head = slice(0, n_cond)
    g_h, g_r = reading["g_hrv"], reading["g_rhr"]
    bh, bc = trailing_mean(h, BASELINE_DAYS)[head], trailing_mean(c, BASELINE_DAYS)[head]
    part = g_h * (h[head] - bh) + g_r * (c[head] - bc)
    own = r[head] - part
    intercept = float(np.nanmean(own)) if np.isfinite(own).sum() >= 5 else reading["intercept"]
    sims_h, sims_c = check.bands["hrv"], check.bands["rhr"]  # unrounded, missing as measured
    n_rep = sims_h.shape[0]
    phi, sd = reading["lag1"], reading["sd"]
    eps = np.empty((n_rep, t_future))
    eps[:, 0] = sd * rng.standard_normal(n_rep)
    for t in range(1, t_future):
        eps[:, t] = phi * eps[:, t - 1] + sd * np.sqrt(1 - phi ** 2) * rng.standard_normal(n_rep)
    logit = np.empty((n_rep, t_future))
    for k in range(n_rep):
        hk = np.concatenate([h[head], sims_h[k]])
        ck = np.concatenate([c[head], sims_c[k]])
        base_h = trailing_mean(hk, BASELINE_DAYS)[n_cond:]
        base_c = trailing_mean(ck, BASELINE_DAYS)[n_cond:]
        logit[k] = intercept + g_h * (sims_h[k] - base_h) + g_r * (sims_c[k] - base_c) + eps[k]
    pct = logit_to_recovery(logit)
    measured = check.measured["recovery"]
    return (measure("recovery", pct, measured, check.whole["recovery"]),
            measure("recovery", pct, measured, False), intercept)


def recovery_records(records: list[dict]) -> list[dict]:
    return [x for x in records if x["target"] == "recovery"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--data", nargs="+", default=["data/real"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/recovery_reading_whatif.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    model = WorldModel.load(args.model)
    frame = load_exports(args.data).frame
    frame = frame.assign(user_id=frame["user_id"].astype(str))
    reading = reading_parameters(model, frame)
    print("reading (medians over the fit's athletes):",
          {k: round(v, 3) for k, v in reading.items() if k != "athletes"})
    config = CheckConfig(seed=args.seed)
    model_checks, reading_checks, intercepts = [], [], {}
    for athlete in unseen_athletes(model, frame):
        rows = frame[frame["user_id"] == athlete]
        if rows["recovery_pct"].notna().sum() < 28:
            continue
        check = check_athlete(model, rows, config)
        if check is None or np.isfinite(check.measured["recovery"]).sum() < 7:
            continue
        rng = np.random.default_rng([args.seed, len(model_checks)])
        simulated, bands, intercepts[athlete] = read_recovery(
            check, rows, reading, config.condition_days, rng)
        model_checks.append(check)
        reading_checks.append(replace(check, simulated={**check.simulated,
                                                        "recovery": simulated},
                                      bands={**check.bands, "recovery": bands}))
        print(f"{athlete}: checked")
    result = {}
    for name, checks in (("model", model_checks), ("reading", reading_checks)):
        per = [r for c in checks for r in athlete_records(c)]
        result[name] = recovery_records(per + pooled_records(checks, per, config))
        pooled = {x["statistic"]: x for x in result[name] if x["athlete"] == "all"}
        print(name, {s: (round(pooled[s]["measured"], 3), round(pooled[s]["simulated"], 3))
                     for s in ("lag1", "hard_day_effect", "coupling", "baseline_reading",
                               "band90_coverage", "c2st_auc") if s in pooled},
              "c2st interval", (pooled["c2st_auc"]["lo"], pooled["c2st_auc"]["hi"]))
    write_result(args.out, "recovery_reading_whatif", vars(args),
                 {"reading": reading, "intercepts": intercepts, "records": result,
                  "wall_s": time.perf_counter() - started},
                 allow_nan=False, default=lambda v: None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
