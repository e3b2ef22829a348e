"""Which Banister parameters do the wearable series identify? Per-athlete profile likelihoods.

For every athlete the world model uses (kept by `preprocess.assess_athletes` and with at least
28 days of HRV), fits ln HRV = μ + a·G − b·H, −RHR = −μ + c·G − d·H and (where there are 28
days of it) logit recovery = μ + e·G − f·H by least squares with
non-negative loadings and (τ_fit, τ_fat) on a grid (`performance.fit_banister_series`, the same
machinery as the Couzens check), and reports per athlete: the best τ's, their 95 %
profile-likelihood regions (with the sample size shrunk for the residuals' lag-1
autocorrelation), whether a region runs into the grid's edge (= not identified within
0.3-40 d / 5-200 d), and the likelihood-ratio statistic of the load terms against a constant.
Loads: w = load_trimp/100, unknown days inside the span filled with the athlete's median
known load (the project convention); states start at the steady state of the mean load.
Fixed-effects, per athlete, no partial pooling: this measures what one athlete's data say on
their own, which is what `personalize` and the priors have to work with. Writes one JSON.

    .venv/bin/python benchmarks/identifiability_profile.py [--data data/real] \
        [--out benchmarks/results/identifiability_profile.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2

from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.params import LOAD_SCALE_TRIMP, RECOVERY_CLIP_PCT
from physiology_model.dynamics.performance import fit_banister_series
from physiology_model.features.preprocess import assess_athletes

TAU_FIT_GRID = np.round(np.geomspace(5.0, 200.0, 30), 2)
TAU_FAT_GRID = np.round(np.geomspace(0.3, 40.0, 30), 2)
MIN_HRV_DAYS = 28


def athlete_series(g: pd.DataFrame) -> dict[str, np.ndarray]:
    """Calendar-filled load (w, median-filled), ln HRV, RHR and logit recovery (NaN where
    missing)."""
    g = g.sort_values("date").set_index("date")
    g = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq="D"))
    w = g["load_trimp"].to_numpy(float) / LOAD_SCALE_TRIMP
    known = ~np.isnan(w)
    w = np.where(known, w, np.median(w[known]) if known.any() else 0.0)
    return {"load": w, "load_known_share": float(known.mean()),
            "hrv": np.log(g["hrv_rmssd_ms"].to_numpy(float)),
            "rhr": g["rhr_bpm"].to_numpy(float),
            "recovery_logit": _logit_pct(g["recovery_pct"].to_numpy(float))}


def _logit_pct(recovery_pct: np.ndarray) -> np.ndarray:
    """logit(recovery/100) after clipping to `params.RECOVERY_CLIP_PCT` (the model's scale)."""
    lo, hi = RECOVERY_CLIP_PCT
    p = np.clip(recovery_pct, lo, hi) / 100.0
    return np.log(p) - np.log1p(-p)


def profile_one(y: np.ndarray, load: np.ndarray) -> dict:
    """Banister fit of one series (NaN = missing) and its identifiability summary."""
    days = np.flatnonzero(~np.isnan(y))
    fit = fit_banister_series(y, load, days, tau_fit_grid=TAU_FIT_GRID,
                              tau_fat_grid=TAU_FAT_GRID)
    yc = y[days] - y[days].mean()
    sse0 = float(yc @ yc)
    lr = fit.n_eff * np.log(sse0 / fit.sse) if fit.sse > 0 else float("inf")
    p = fit.params
    return {
        "n_days": int(days.size), "n_eff": round(fit.n_eff, 1),
        "tau_fit_days": float(p.tau_fit_days), "tau_fat_days": float(p.tau_fat_days),
        "fitness_loading": float(p.fitness_gain), "fatigue_loading": float(p.fatigue_gain),
        "r2": 1.0 - fit.sse / sse0,
        "mean": float(np.mean(y[days])),
        "resid_sd": float(np.sqrt(fit.sse / days.size)),
        # SE of the athlete's level: residual SD over the autocorrelation-corrected sample size
        "baseline_se": float(np.sqrt(fit.sse / days.size / fit.n_eff)),
        "lr_vs_constant": float(lr),
        # 4 extra parameters (2 loadings, 2 τ) against the constant: a rough χ² reference
        "load_effect_significant": bool(lr > chi2.ppf(0.95, 4)),
        "profile_95": {k: {"low": v[0], "high": v[1], "at_grid_edge": v[2]}
                       for k, v in fit.profile.items()},
    }


def summarise_target(rows: list[dict]) -> dict:
    """Across athletes: how often each τ is bounded, typical region widths, significance."""
    out: dict = {"n_athletes": len(rows),
                 "load_effect_significant": int(sum(r["load_effect_significant"] for r in rows)),
                 "median_r2": float(np.median([r["r2"] for r in rows])),
                 "median_baseline_se": float(np.median([r["baseline_se"] for r in rows])),
                 "between_athlete_sd_of_mean": float(np.std([r["mean"] for r in rows], ddof=1)),
                 "median_resid_sd": float(np.median([r["resid_sd"] for r in rows])),
                 "resid_sd_quartiles": [float(v) for v in np.percentile(
                     [r["resid_sd"] for r in rows], [25, 75])],
                 "median_n_eff_over_n": float(np.median([r["n_eff"] / r["n_days"]
                                                         for r in rows]))}
    for tau, grid in (("tau_fit_days", TAU_FIT_GRID), ("tau_fat_days", TAU_FAT_GRID)):
        lows = np.array([r["profile_95"][tau]["low"] for r in rows])
        highs = np.array([r["profile_95"][tau]["high"] for r in rows])
        edge = np.array([r["profile_95"][tau]["at_grid_edge"] for r in rows])
        out[tau] = {
            "grid": [float(grid[0]), float(grid[-1])],
            "bounded_both_sides": int(np.sum(~edge)),
            "bounded_above": int(np.sum(highs < grid[-1])),
            "bounded_below": int(np.sum(lows > grid[0])),
            "median_region_high": float(np.median(highs)),
            "median_region_low": float(np.median(lows)),
            "median_region_ratio_high_over_low": float(np.median(highs / lows)),
            "median_best": float(np.median([r[tau] for r in rows])),
            "best_quartiles": [float(v) for v in np.percentile([r[tau] for r in rows],
                                                               [25, 75])],
        }
    return out


def run(data: list[Path], out: Path) -> dict:
    start = time.perf_counter()
    table = load_exports(data)
    kept = assess_athletes(table)
    kept_ids = set(kept.loc[kept["kept"], "user_id"])
    frame = table.frame
    athletes = {}
    for user_id, g in frame.groupby("user_id", sort=True):
        if user_id not in kept_ids or g["hrv_rmssd_ms"].notna().sum() < MIN_HRV_DAYS:
            continue
        if g["load_trimp"].notna().sum() < MIN_HRV_DAYS:
            continue
        s = athlete_series(g)
        result = {"source": str(g["source"].dropna().iloc[0]),
                  "load_known_share": round(s["load_known_share"], 3),
                  "hrv": profile_one(s["hrv"], s["load"])}
        if np.sum(~np.isnan(s["rhr"])) >= MIN_HRV_DAYS:
            result["rhr"] = profile_one(-s["rhr"], s["load"])
        if np.sum(~np.isnan(s["recovery_logit"])) >= MIN_HRV_DAYS:
            result["recovery"] = profile_one(s["recovery_logit"], s["load"])
        athletes[user_id] = result
    summary = {"hrv": summarise_target([a["hrv"] for a in athletes.values()]),
               "rhr": summarise_target([a["rhr"] for a in athletes.values() if "rhr" in a]),
               "recovery_logit": summarise_target([a["recovery"] for a in athletes.values()
                                                   if "recovery" in a])}
    record = {
        "benchmark": "identifiability_profile",
        "command": "python benchmarks/identifiability_profile.py " + " ".join(sys.argv[1:]),
        "data": [str(p) for p in data],
        "wall_s": round(time.perf_counter() - start, 2),
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "config": {"tau_fit_grid": TAU_FIT_GRID.tolist(), "tau_fat_grid": TAU_FAT_GRID.tolist(),
                   "min_hrv_days": MIN_HRV_DAYS, "seed": None,
                   "note": "deterministic (grid least squares), no randomness"},
        "summary": summary,
        "athletes": athletes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/real")])
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/identifiability_profile.json"))
    args = parser.parse_args(argv)
    record = run(args.data, args.out)
    print(json.dumps(record["summary"], indent=1))
    print(f"wrote {args.out} ({record['wall_s']} s)")


if __name__ == "__main__":
    main()
