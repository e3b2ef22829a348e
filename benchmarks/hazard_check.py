"""Check the injury/illness hazard's priors against the real injury/illness reports.

Loads every shipped export (`load_exports`), builds the at-risk days of the athletes with
injury/illness reports (WHOOP journal illness/injury answers, PMData injury reports), fits a
penalised logistic regression of next-day onset on the hazard's terms (ACWR spike, low recovery,
monotony) with athlete-bootstrap intervals and AUCs, and scores the prior's typical hazard on
the same days (`physiology_model.dynamics.hazard.check_against_injury_reports`). Writes one JSON.

    .venv/bin/python benchmarks/hazard_check.py [--data data/real] \
        [--out benchmarks/results/hazard_check.json] [--seed N] [--n-bootstrap N]
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

from physiology_model.data.loaders import load_exports
from physiology_model.dynamics.hazard import HazardCheckConfig, check_against_injury_reports


def run(data: list[Path], out: Path, config: HazardCheckConfig) -> dict:
    """Run the check on the exports under `data` and write `out`; returns the record."""
    start = time.perf_counter()
    frame = load_exports(data).frame
    result = check_against_injury_reports(frame, config)
    record = {
        "benchmark": "hazard_check",
        "command": "python benchmarks/hazard_check.py " + " ".join(sys.argv[1:]),
        "data": [str(p) for p in data],
        "seed": config.seed,
        "wall_s": round(time.perf_counter() - start, 2),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "pandas": pd.__version__},
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def summarise(record: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"sources: {record['by_source']}"]
    for key in [k for k in record if k.startswith("fit")]:
        fit = record[key]
        if fit is None:
            continue
        lines.append(f"{key}: {fit['n_onsets']} onsets in {fit['n_days']} at-risk days of "
                     f"{fit['n_athletes']} athletes; AUC in-sample {fit['auc_in_sample']:.3f}, "
                     f"leave-one-athlete-out {fit['auc_leave_one_athlete_out']:.3f}; prior "
                     f"AUC {fit['prior_typical']['auc']:.3f}")
        for name, c in fit["coefficients"].items():
            lines.append(f"   {name:22s} {c['estimate']:+.3f}  95% CI "
                         f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    defaults = HazardCheckConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("data/real")])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hazard_check.json"))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--n-bootstrap", type=int, default=defaults.n_bootstrap)
    args = parser.parse_args(argv)
    config = replace(defaults, seed=args.seed, n_bootstrap=args.n_bootstrap)
    record = run(args.data, args.out, config)
    print(summarise(record))
    print(f"wrote {args.out} ({record['wall_s']} s)")


if __name__ == "__main__":
    main()
