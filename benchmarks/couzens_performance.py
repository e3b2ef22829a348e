"""Check the performance model against the one real performance series (Couzens' run EF).

Fits the linear Banister and Busso's (2003) variable dose-response model to Alan Couzens' run
efficiency factor given his daily TSS (`physiology_model.dynamics.performance.check_against_couzens`),
scores them in-sample and on the last 20 % of EF days against a constant and a CTL-only model,
and compares the fits with the literature priors. Writes one JSON (config, seed, versions,
results).

    .venv/bin/python benchmarks/couzens_performance.py \
        [--data data/real/couzens/u01] [--out benchmarks/results/couzens_performance.json]
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
import scipy

from physiology_model.dynamics.performance import CouzensCheckConfig, check_against_couzens


def run(data: Path, out: Path, seed: int, holdout_fraction: float) -> dict:
    """Run the check and write `out`; returns the written record."""
    config = replace(CouzensCheckConfig(), seed=seed, holdout_fraction=holdout_fraction)
    start = time.perf_counter()
    result = check_against_couzens(data, config)
    record = {
        "benchmark": "couzens_performance",
        "command": "python benchmarks/couzens_performance.py " + " ".join(sys.argv[1:]),
        "seed": seed,
        "wall_s": round(time.perf_counter() - start, 2),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__},
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def summarise(record: dict) -> str:
    """A few lines for the terminal."""
    data = record["data"]
    head = (f"Couzens run EF: {data['ef_days']} EF days ({data['train_ef_days']} fit / "
            f"{data['test_ef_days']} held out)")
    lines = [head]
    for name, m in record["models"].items():
        lines.append(f"  {name:22s} R² in {m['r2_train']:+.3f} held-out {m['r2_test']:+.3f}   "
                     f"RMSE in {m['rmse_train']:.4f} held-out {m['rmse_test']:.4f}")
    for name, check in record["prior_check"].items():
        if "inside_90" in check:
            lines.append(f"  {name:38s} fitted {check['fitted']:8.3f}  prior 90% "
                         f"[{check['prior_90'][0]:.2f}, {check['prior_90'][1]:.2f}]  "
                         f"{'inside' if check['inside_90'] else 'OUTSIDE'}")
        else:
            lines.append(f"  {name}: 95% region {np.round(check['region'], 3).tolist()} "
                         f"{'overlaps' if check['overlaps'] else 'does NOT overlap'} the prior")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/real/couzens/u01"))
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/couzens_performance.json"))
    parser.add_argument("--seed", type=int, default=CouzensCheckConfig().seed)
    parser.add_argument("--holdout-fraction", type=float,
                        default=CouzensCheckConfig().holdout_fraction)
    args = parser.parse_args(argv)
    record = run(args.data, args.out, args.seed, args.holdout_fraction)
    print(summarise(record))
    print(f"wrote {args.out} ({record['wall_s']} s)")


if __name__ == "__main__":
    main()
