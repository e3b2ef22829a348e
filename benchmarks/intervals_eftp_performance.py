"""Check the performance model against intervals.icu's daily eFTP (the 5,252-day wellness file).

The same check as `couzens_performance.py` (`physiology_model.dynamics.performance.
check_performance_series`): the linear Banister and Busso's variable dose-response model fitted
to the athlete's daily cycling eFTP (`Ride_eftp`, W) given the daily load the intervals.icu loader
derives (Edwards TRIMP from HR zones, else its training load as TSS), scored in-sample and on the
last 20 % of eFTP days against a constant and a CTL-only model, and compared with the priors.

The series runs from `--lead-days` before the first eFTP day to the last one. Days inside it with
no load (gaps of the activity log longer than 14 days, where the loader leaves load unknown) count
as 0: the athlete had no recorded training. eFTP is an estimate intervals.icu updates from hard
efforts and lets decay between them, so it is smoother than a test series; read the scores as
"does the load explain the estimate's course", not as a test of performance itself.

    .venv/bin/python benchmarks/intervals_eftp_performance.py \
        [--data data/real/intervals_icu/u01] [--out benchmarks/results/intervals_eftp_performance.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.performance import CouzensCheckConfig, check_performance_series
from physiology_model.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def eftp_series(folder: Path, lead_days: int) -> pd.DataFrame:
    """date, load_trimp (0 where unknown), eftp (NaN where none), one row per calendar day."""
    wellness = pd.read_csv(folder / "wellness.csv", encoding="utf-8-sig",
                           usecols=["date", "Ride_eftp"])
    eftp = (wellness.assign(date=pd.to_datetime(wellness["date"])).dropna()
            .set_index("date")["Ride_eftp"].sort_index())
    if eftp.empty:
        raise DataError(folder / "wellness.csv", "no Ride_eftp values")
    table = load_exports([folder]).frame.set_index("date")
    days = pd.date_range(eftp.index[0] - pd.Timedelta(days=lead_days), eftp.index[-1])
    load = table["load_trimp"].reindex(days)
    return pd.DataFrame({"date": days, "load_trimp": load.fillna(0.0).to_numpy(),
                         "load_known": load.notna().to_numpy(),
                         "eftp": eftp.reindex(days).to_numpy()})


def run(data: Path, out: Path, seed: int, holdout_fraction: float, lead_days: int) -> dict:
    config = replace(CouzensCheckConfig(), seed=seed, holdout_fraction=holdout_fraction)
    start = time.perf_counter()
    series = eftp_series(data, lead_days)
    result = check_performance_series(series["date"], series["load_trimp"].to_numpy(),
                                      series["eftp"].to_numpy(), config, source=str(data))
    result["data"]["performance"] = "Ride_eftp (W), intervals.icu's daily cycling eFTP estimate"
    result["data"]["days_with_known_load"] = int(series["load_known"].sum())
    result["data"]["lead_days"] = lead_days
    record = {
        "benchmark": "intervals_eftp_performance",
        "command": "python benchmarks/intervals_eftp_performance.py " + " ".join(sys.argv[1:]),
        "seed": seed,
        "wall_s": round(time.perf_counter() - start, 2),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pd.__version__},
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data/real/intervals_icu/u01")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/intervals_eftp_performance.json")
    parser.add_argument("--seed", type=int, default=CouzensCheckConfig().seed)
    parser.add_argument("--holdout-fraction", type=float, default=0.2)
    parser.add_argument("--lead-days", type=int, default=120)
    args = parser.parse_args(argv)
    record = run(args.data, args.out, args.seed, args.holdout_fraction, args.lead_days)
    d = record["data"]
    print(f"intervals.icu eFTP: {d['ef_days']} eFTP days ({d['train_ef_days']} fit / "
          f"{d['test_ef_days']} held out), {d['days']} load days")
    for name, m in record["models"].items():
        print(f"  {name:22s} R² in {m['r2_train']:+.3f} held-out {m['r2_test']:+.3f}   "
              f"RMSE in {m['rmse_train']:.2f} held-out {m['rmse_test']:.2f} W")
    for name, check in record["prior_check"].items():
        if "inside_90" in check:
            print(f"  {name:38s} fitted {check['fitted']:8.3f}  inside prior 90%: "
                  f"{check['inside_90']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
