"""The next-morning RHR response to the day's load: measured against the world model's twins.

`periodize model check` finds the simulated RHR hard-day effect about a third of the measured
one (`hard_day_effect`, athletes outside the fit). This separates the model's response per
unit of load from the statistic: on the athletes *in* the fit (their own posterior, so a twin
has every advantage), each source's within-athlete regression

    y[t] = β·y[t−1] + γ·load[t−1]/100 (+ δ·hard[t−1])        (athlete means removed)

with y the morning RHR (bpm), load the day before's TRIMP and hard the check's hard-day flag
(`model_check.day_groups`), fitted on the measured series and on the twins' (each athlete's
calendar simulated under its own loads from `--draws` posterior draws, missing and rounded as
measured); and the check's `hard_day_effect` per athlete, medians over athletes. 95 %
intervals: athletes resampled with replacement (the twins of an athlete go with it), seeded.

    python benchmarks/rhr_load_response.py --out benchmarks/results/rhr_load_response.json
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from run_record import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.model_check import day_groups, hard_day_effect
from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.step import simulate_observations
from physiology_model.model.forecast import series_from_frame
from physiology_model.model.world_model import WorldModel


def design(y: np.ndarray, load: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """Rows (y[t], y[t−1], load[t−1]/100, hard[t−1]) where all are known, athlete means removed:
    the cross-product sums of these rows are what the pooled regression needs."""
    rows = np.column_stack([y[1:], y[:-1], load[:-1] / 100.0, hard[:-1].astype(float)])
    rows = rows[np.isfinite(rows).all(axis=1)]
    return rows - rows.mean(axis=0) if len(rows) else rows


def coefficients(cross: np.ndarray, columns: list[int]) -> np.ndarray:
    """Least squares of column 0 on `columns` from the summed cross-product matrix."""
    xx = cross[np.ix_(columns, columns)]
    return np.linalg.solve(xx, cross[columns, 0])


def athlete_parts(model, frame: pd.DataFrame, source: str, draws: int, seed: int) -> list[dict]:
    out = []
    for user, g in frame.groupby("user_id"):
        if not str(user).startswith(source + "-") or user not in model.athletes_:
            continue
        g = g.sort_values("date")
        series = series_from_frame(g)
        calendar = g.set_index("date").reindex(
            pd.DatetimeIndex(series.dates.astype("datetime64[ns]")))
        trimp = pd.to_numeric(calendar["load_trimp"], errors="coerce").to_numpy(dtype=float)
        hard, rest = day_groups(trimp, np.isfinite(trimp))
        y = series.rhr
        if np.isfinite(y).sum() < 40:
            continue
        post = model.athletes_[user]
        rng = np.random.default_rng([seed, len(out)])
        pick = rng.integers(0, len(post["mu_hrv"]), draws)
        p = {k: np.asarray(v)[pick] for k, v in post.items()}
        sims = simulate_observations(p, series.load, series.hi_load, rng)["rhr"]
        sims = np.where(np.isfinite(y)[None], np.round(sims), np.nan)
        measured = design(y, trimp, hard)
        twins = [design(s, trimp, hard) for s in sims]
        out.append({"athlete": str(user),
                    "measured": measured.T @ measured,
                    "twins": sum(t.T @ t for t in twins) / len(twins),
                    "hard_day_effect": (hard_day_effect(y, hard, rest),
                                        float(np.nanmean([hard_day_effect(s, hard, rest)
                                                          for s in sims])))})
    return out


def summarise(parts: list[dict], rng: np.random.Generator, n_boot: int = 1000) -> dict:
    def fit(index: np.ndarray) -> dict:
        row = {}
        for kind in ("measured", "twins"):
            cross = sum(parts[i][kind] for i in index)
            row[f"{kind}_load"] = float(coefficients(cross, [1, 2])[1])
            row[f"{kind}_hard_beyond_load"] = float(coefficients(cross, [1, 2, 3])[2])
        row["twins_over_measured_load"] = row["twins_load"] / row["measured_load"]
        effects = np.array([parts[i]["hard_day_effect"] for i in index], dtype=float)
        row["hard_day_effect_measured"] = float(np.nanmedian(effects[:, 0]))
        row["hard_day_effect_twins"] = float(np.nanmedian(effects[:, 1]))
        return row

    point = fit(np.arange(len(parts)))
    boot = [fit(rng.integers(0, len(parts), len(parts))) for _ in range(n_boot)]
    return {k: {"value": v, "lo": float(np.quantile([b[k] for b in boot], 0.025)),
                "hi": float(np.quantile([b[k] for b in boot], 0.975))}
            for k, v in point.items()} | {"athletes": len(parts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--data", nargs="+", default=["data/real"])
    parser.add_argument("--sources", nargs="+", default=["lifesnaps", "whoop", "section11"])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/rhr_load_response.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = WorldModel.load(args.model)
    frame = load_exports(args.data).frame
    result = {}
    for source in args.sources:
        parts = athlete_parts(model, frame, source, args.draws, args.seed)
        if len(parts) < 3:
            print(f"{source}: fewer than 3 athletes in the fit with 40 RHR days, skipped")
            continue
        result[source] = summarise(parts, np.random.default_rng([args.seed, len(result)]))
        print(source, {k: (round(v["value"], 3) if isinstance(v, dict) else v)
                       for k, v in result[source].items()})
    write_result(args.out, "rhr_load_response", vars(args), {"sources": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
