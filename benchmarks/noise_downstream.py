"""Summarise benchmarks/noise_downstream.sh: each policy's share of the oracle's ΔP gain (and of
its return), with its 95 % interval, before and after a change to the simulator's noise, and
the movement, wearable-only and with the monthly test. Writes
benchmarks/results/noise_downstream.json (with the commits, N and the seeds).

    .venv/bin/python benchmarks/noise_downstream.py WORKDIR --before REV --after REV --n N
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "noise_downstream.json"
METRICS = ("delta_performance", "return", "injured_days", "executed_violations",
           "mean_load_trimp")


def _records(path: Path) -> dict[tuple[str, str], dict]:
    return {(r["policy"], r["metric"]): r for r in json.loads(path.read_text())}


def compare(work: Path) -> dict:
    out = {}
    for setting in ("wearable", "tested"):
        before = _records(work / "before" / setting / "results.json")
        after = _records(work / "after" / setting / "results.json")
        rows = {}
        for policy in sorted({p for p, _ in before} | {p for p, _ in after}):
            row = {}
            for metric in METRICS:
                b, a = before.get((policy, metric)), after.get((policy, metric))
                entry = {"before_mean": b and b["mean"], "after_mean": a and a["mean"]}
                if b and a and b.get("pct_of_oracle") is not None:
                    entry.update(before_pct_of_oracle=b["pct_of_oracle"],
                                 before_ci95=b.get("pct_of_oracle_ci95"),
                                 after_pct_of_oracle=a["pct_of_oracle"],
                                 after_ci95=a.get("pct_of_oracle_ci95"),
                                 moved_points=a["pct_of_oracle"] - b["pct_of_oracle"])
                row[metric] = entry
            rows[policy] = row
        out[setting] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = {"benchmark": "noise_downstream", "before": args.before, "after": args.after,
              "config": {"n_athletes": args.n, "cohort_seed": 4000, "episode_seed": 12345,
                         "tests": {"every_days": 28, "session": "tempo_threshold"}},
              "settings": compare(args.work)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for setting, rows in result["settings"].items():
        print(f"{setting}: % of the oracle's ΔP gain, before → after")
        for policy, row in rows.items():
            e = row["delta_performance"]
            if e.get("moved_points") is not None:
                print(f"  {policy:22s} {e['before_pct_of_oracle']:6.1f} → "
                      f"{e['after_pct_of_oracle']:6.1f} ({e['moved_points']:+.1f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
