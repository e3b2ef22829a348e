"""Does the night before help the world model's next-day forecast? (issue 24, item 1)

`night_covariates.py` measures that a morning's ln HRV and RHR move with the night that ended
on it (sleep, respiratory rate, skin temperature). A forecast of tomorrow morning is made
today, before tonight: it can use the nights up to today's morning only. This asks whether
the night before the *last observed* morning (the forecast's origin) explains the world
model's next-day forecast error, beyond what the model's filtered noise already carries
forward, and, for comparison, how much the night before the *forecast* morning explains (not
known when the forecast is made).

For every training athlete of the model (its own posterior, on the rows it was fitted on):
the standardised one-step-ahead errors z of ln HRV and RHR (`coupling.one_step_errors`: the
Banister mean with the weekday offsets plus the filtered noise, the equal mixture of up to 100
draws), and each night covariate as its deviation from the athlete's trailing 28-day mean
(≥ 7 nights; `night_covariates.py`'s). Within-athlete pooled regression of z on the
covariate (both centred within athlete), slope per unit and R², with 95 % percentile intervals
from resampling athletes.

    .venv/bin/python benchmarks/night_forecast.py [--model models/shipped] [--data data/real]
        [--n-boot 1000] [--seed 0] [--out benchmarks/results/night_forecast.json]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from night_covariates import _trailing_mean
from run_record import write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COVARIATES = {"sleep_h": (("sleep_min",), 1.0 / 60.0),
              "resp_rate_rpm": (("resp_rate_rpm",), 1.0),
              "skin_temp_c": (("skin_temp_dev_c", "skin_temp_c"), 1.0)}
"""Night covariate → (daily-table columns, the first an athlete has is used; factor to the
unit reported). Skin temperature: the deviation where the export gives it, else the absolute
value (after the trailing mean is taken off, the same deviation)."""
MIN_DAYS = 28
"""Fewest usable mornings for an athlete to enter a regression."""


def panel(model, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per athlete and calendar day: z of ln HRV and RHR, and each covariate's
    deviation on that morning ("_night") and on the morning before ("_origin")."""
    from physiology_model.model.coupling import one_step_errors

    parts = []
    for uid, rows in frame.groupby(frame["user_id"].astype(str), sort=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = one_step_errors(model, rows)
        if z is None:
            continue
        days = rows.sort_values("date").set_index("date")
        days = days.reindex(pd.date_range(days.index.min(), days.index.max(), freq="D"))
        out = pd.DataFrame({"athlete": uid, "z_hrv": z[:, 0], "z_rhr": z[:, 1]})
        for name, (columns, factor) in COVARIATES.items():
            x = pd.Series(np.nan, index=days.index)
            for column in columns:
                if column in days and days[column].notna().any():
                    x = pd.to_numeric(days[column], errors="coerce") * factor
                    break
            deviation = x - _trailing_mean(x, 28, 7)
            out[f"{name}_night"] = deviation.to_numpy()
            out[f"{name}_origin"] = deviation.shift(1).to_numpy()
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def regression(data: pd.DataFrame, outcome: str, covariate: str, rng: np.random.Generator,
               n_boot: int) -> dict | None:
    """Within-athlete slope and R² of `outcome` on `covariate`, bootstrap over athletes."""
    d = data[["athlete", outcome, covariate]].dropna()
    d = d[d.groupby("athlete")["athlete"].transform("size") >= MIN_DAYS]
    if d["athlete"].nunique() < 3:
        return None
    centred = d[[outcome, covariate]] - d.groupby("athlete")[[outcome, covariate]].transform("mean")
    y, x = centred[outcome].to_numpy(), centred[covariate].to_numpy()
    athletes, index = np.unique(d["athlete"].to_numpy(), return_inverse=True)
    sums = np.stack([np.bincount(index, x * x), np.bincount(index, x * y),
                     np.bincount(index, y * y)], axis=1)  # per athlete: Σx², Σxy, Σy²

    def fit(s: np.ndarray) -> tuple[float, float]:
        sxx, sxy, syy = s
        return float(sxy / sxx), float(sxy ** 2 / (sxx * syy))

    slope, r2 = fit(sums.sum(axis=0))
    boot = np.array([fit(sums[rng.integers(0, len(athletes), len(athletes))].sum(axis=0))
                     for _ in range(n_boot)])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {"slope": slope, "slope_ci": [float(lo[0]), float(hi[0])], "r2": r2,
            "r2_ci": [float(lo[1]), float(hi[1])], "athletes": len(athletes),
            "days": len(d)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "shipped"))
    parser.add_argument("--data", default=str(ROOT / "data" / "real"))
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "night_forecast.json"))
    args = parser.parse_args(argv)
    from physiology_model.data.loaders import load_exports
    from physiology_model.model.fitting import (
        calibration_rows,
        fitted_rows,
        split_for_forecasting,
    )
    from physiology_model.model.world_model import WorldModel

    started = time.perf_counter()
    model = WorldModel.load(args.model)
    split = split_for_forecasting(load_exports([args.data]).frame,
                                  seed=int(model.split_.get("seed", 0)))
    data = panel(model, calibration_rows(model, fitted_rows(split, bool(model.split_.get("all")))))
    rng = np.random.default_rng(args.seed)
    results = []
    nights = {"origin": "the night before the last observed morning (known when the forecast "
                        "is made)",
              "night": "the night before the forecast morning (not known when the forecast "
                       "is made)"}
    for outcome in ("z_hrv", "z_rhr"):
        for name in COVARIATES:
            for when, meaning in nights.items():
                r = regression(data, outcome, f"{name}_{when}", rng, args.n_boot)
                if r is None:
                    continue
                results.append({"outcome": outcome, "covariate": name, "night": when,
                                "meaning": meaning, **r})
                print(f"{outcome} on {name} ({when}): slope {r['slope']:+.4f} "
                      f"[{r['slope_ci'][0]:+.4f}, {r['slope_ci'][1]:+.4f}], R² {r['r2']:.4f} "
                      f"[{r['r2_ci'][0]:.4f}, {r['r2_ci'][1]:.4f}], {r['athletes']} athletes, "
                      f"{r['days']} days")
    write_result(args.out, "night_forecast", vars(args),
                 {"wall_s": round(time.perf_counter() - started, 1), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
