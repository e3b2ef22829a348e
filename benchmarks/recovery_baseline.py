"""Is a device's recovery score read against the athlete's recent baseline? (issue 24)

The world model links the recovery logit to the *predicted* ln HRV and RHR relative to the
athlete's fixed levels (`observation.observation_means`). A device computes its recovery score
from the morning's *measured* HRV and resting HR (and the night's sleep) relative to the
athlete's own recent baseline (WHOOP describes its recovery that way). If that is what the
exports show, the score's slow drift and its memory come from the baseline, not from a noise of
its own, and a simulator that generates recovery the way the device does would reproduce its
coupling with ln HRV and its short memory.

Data: the shipped exports (`load_exports(["data/real"])`), athletes with at least
`--min-days` mornings with recovery, HRV and RHR all measured and a baseline for each (in the
shipped data, WHOOP's). On a full daily calendar of each athlete, with r = the recovery logit
(`observation.recovery_to_logit`), h = ln RMSSD, c = RHR:

    fixed:       r_d = α + β·(h_d − mean_a h) + γ·(c_d − mean_a c) + e_d
    trailing W:  r_d = α + β·(h_d − B^h_{d,W}) + γ·(c_d − B^c_{d,W}) + e_d,
                 B_{d,W} = the mean of the W days before d (measured ones; needs
                 max(3, W // 3); `analysis.model_check.trailing_mean`)
    + night:     trailing 30 plus the night's sleep hours and sleeping respiratory rate, each
                 relative to its own trailing-30 mean

fitted by least squares per athlete on the same days for every model (days where every
regressor of every model exists). Reported per athlete and as medians over athletes: R² and the
lag-1 autocorrelation of the residual e on consecutive days; and the median over athletes of
R²(trailing 30) − R²(fixed) with a 95 % percentile bootstrap interval over athletes (seeded).

    python benchmarks/recovery_baseline.py --out benchmarks/results/recovery_baseline.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from run_record import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.model_check import reading_r2, trailing_mean
from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.observation import recovery_to_logit

WINDOWS = (7, 14, 30, 60)


def fit(recovery_logit: np.ndarray, ln_hrv: np.ndarray, rhr: np.ndarray,
        baselines: tuple[np.ndarray, np.ndarray] | None, use: np.ndarray, extra=()
        ) -> tuple[float, float]:
    """(R², lag-1 autocorrelation of the residual on consecutive days): `reading_r2`."""
    r2, residual, _ = reading_r2(recovery_logit, ln_hrv, rhr, baselines, use, extra)
    a, b = residual[:-1], residual[1:]
    pair = np.isfinite(a) & np.isfinite(b)
    return r2, float(np.corrcoef(a[pair], b[pair])[0, 1])


def athlete_rows(frame: pd.DataFrame, min_days: int) -> list[dict]:
    out = []
    for user, g in frame.groupby("user_id"):
        g = g.sort_values("date").set_index("date").asfreq("D")
        pct = g["recovery_pct"].to_numpy(float)
        h = np.log(g["hrv_rmssd_ms"].to_numpy(float))
        c = g["rhr_bpm"].to_numpy(float)
        measured = np.isfinite(pct) & np.isfinite(h) & np.isfinite(c)
        if measured.sum() < min_days:
            continue
        r = recovery_to_logit(pct)
        base = {w: (trailing_mean(h, w), trailing_mean(c, w)) for w in WINDOWS}
        sleep = g["sleep_min"].to_numpy(float) / 60.0
        resp = g["resp_rate_rpm"].to_numpy(float)
        night = [v - trailing_mean(v, 30) for v in (sleep, resp)]
        use = measured.copy()
        for bh, bc in base.values():
            use &= np.isfinite(bh) & np.isfinite(bc)
        with_night = use & np.isfinite(night[0]) & np.isfinite(night[1])
        if use.sum() < min_days:
            continue
        row = {"athlete": str(user), "days": int(use.sum()), "fixed": fit(r, h, c, None, use)}
        for w in WINDOWS:
            row[f"trailing_{w}"] = fit(r, h, c, base[w], use)
        if with_night.sum() >= min_days:
            row["trailing_30_night_same_days"] = fit(r, h, c, base[30], with_night)
            row["trailing_30_night"] = fit(r, h, c, base[30], with_night, night)
            row["night_days"] = int(with_night.sum())
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["data/real"])
    parser.add_argument("--min-days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/recovery_baseline.json")
    args = parser.parse_args()

    rows = athlete_rows(load_exports(args.data).frame, args.min_days)
    if len(rows) < 3:
        print(f"need at least 3 athletes with {args.min_days} days of recovery, HRV and RHR")
        return 2
    models = ["fixed", *(f"trailing_{w}" for w in WINDOWS)]
    night = [r for r in rows if "trailing_30_night" in r]
    summary = {m: {"median_r2": float(np.median([r[m][0] for r in rows])),
                   "median_residual_lag1": float(np.median([r[m][1] for r in rows])),
                   "athletes": len(rows)} for m in models}
    for m in ("trailing_30_night_same_days", "trailing_30_night"):
        if night:
            summary[m] = {"median_r2": float(np.median([r[m][0] for r in night])),
                          "median_residual_lag1": float(np.median([r[m][1] for r in night])),
                          "athletes": len(night)}
    gain = np.array([r["trailing_30"][0] - r["fixed"][0] for r in rows])
    rng = np.random.default_rng(args.seed)
    boot = np.median(gain[rng.integers(0, gain.size, (2000, gain.size))], axis=1)
    summary["r2_gain_trailing_30_over_fixed"] = {
        "median": float(np.median(gain)), "lo": float(np.quantile(boot, 0.025)),
        "hi": float(np.quantile(boot, 0.975)), "athletes_better": int((gain > 0).sum()),
        "athletes": int(gain.size)}
    for m, s in summary.items():
        print(m, {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()})
    write_result(args.out, "recovery_baseline", vars(args),
                 {"summary": summary, "athletes": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
