"""Peak memory of `periodize data build` per byte of a WHOOP cycles file (the basis of the
memory guard, `physiology_model.data.loaders._io.READ_MEMORY_FACTOR`).

A synthetic cycles file is made by repeating a shipped export's rows, each copy shifted by the
export's span so that the cycles stay one person's (no overlaps); `data build` runs in a child
process and its peak resident memory (`ru_maxrss`) is divided by the file size. The Python
interpreter and imports take a fixed few hundred MB, so the factor is taken from the difference
between two sizes.

    .venv/bin/python benchmarks/read_memory.py [--sizes-mb 5 20] [--seed 0]
        [--out benchmarks/results/read_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "data" / "real" / "whoop" / "u21" / "physiological_cycles.csv"
TIME_COLUMNS = ("Cycle start time", "Cycle end time", "Sleep onset", "Wake onset")


def synthetic_cycles(target_bytes: int, out: Path) -> int:
    """Write a cycles file of about `target_bytes`; returns its size."""
    base = pd.read_csv(TEMPLATE, dtype=str)
    starts = pd.to_datetime(base["Cycle start time"])
    span = (starts.max() - starts.min()) + pd.Timedelta(days=2)
    copies = max(1, round(target_bytes / TEMPLATE.stat().st_size))
    parts = []
    for k in range(copies):
        part = base.copy()
        for column in TIME_COLUMNS:
            stamps = pd.to_datetime(part[column])
            part[column] = (stamps + k * span).dt.strftime("%Y-%m-%d %H:%M:%S")
        parts.append(part)
    pd.concat(parts, ignore_index=True).to_csv(out, index=False)
    return out.stat().st_size


def peak_rss_of_build(folder: Path, table: Path) -> int:
    """Peak resident memory (bytes) of `periodize data build folder` in a fresh child."""
    code = ("import resource, sys; from analysis.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, "data", "build", str(folder), "--out",
                           str(table)], capture_output=True, text=True, env=env, check=True)
    return int(done.stdout.strip().splitlines()[-1]) * 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--seed", type=int, default=0, help="recorded (nothing is random)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/read_memory.json"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes_mb:
            folder = Path(tmp) / f"whoop_{mb:g}mb"
            folder.mkdir()
            size = synthetic_cycles(int(mb * 2**20), folder / "physiological_cycles.csv")
            peak = peak_rss_of_build(folder, Path(tmp) / f"t{mb:g}.parquet")
            rows.append({"file_bytes": size, "peak_rss_bytes": peak,
                         "peak_over_file": peak / size})
            print(f"{size / 2**20:6.1f} MB file: peak {peak / 2**20:7.0f} MB "
                  f"({peak / size:.1f}x)", flush=True)
    first, last = rows[0], rows[-1]
    marginal = ((last["peak_rss_bytes"] - first["peak_rss_bytes"])
                / max(last["file_bytes"] - first["file_bytes"], 1))
    print(f"marginal: {marginal:.1f} bytes of memory per byte of file")
    record = {"benchmark": "read_memory", "config": {"sizes_mb": args.sizes_mb,
                                                     "template": str(TEMPLATE.relative_to(ROOT))},
              "seed": args.seed, "runs": rows, "marginal_bytes_per_file_byte": marginal,
              "self_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
