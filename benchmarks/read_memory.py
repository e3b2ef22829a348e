"""Peak memory of `periodize data build` (and optionally `periodize plan`) against the size of
the file read, for the streaming CSV reader and for the whole-file reader it replaced, in the
same run (issue 21, item 8).

Two synthetic files per size, both made from shipped data, nothing random:

- `whoop_repeated`: a WHOOP cycles file of one person (u21's cycles, the dates moved to start
  in 1991) written over and over, as a folder of repeated exports concatenated into one file
  would be. One person's cycles file cannot be large by itself (one row a day: a century is
  about 6 MB), so a large cycles file is mostly repeated rows.
- `canonical_unique`: the canonical daily CSV (`periodize data build`'s own format) of many
  athletes, every row distinct (the shipped WHOOP u21 table copied under new user ids): the
  worst case for the streaming reader, which then keeps every row.

Each command runs in a fresh child process; its peak resident memory (`ru_maxrss`) is read
from the child. The "old" path runs the same command on the tree of `--baseline-commit`
(the packages extracted with `git archive`), the "new" path on this checkout.

    .venv/bin/python benchmarks/read_memory.py [--sizes-mb 10 50] [--plan]
        [--baseline-commit 623f479] [--seed 0] [--out benchmarks/results/read_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "data" / "real" / "whoop" / "u21"
TIME_COLUMNS = ("Cycle start time", "Cycle end time", "Sleep onset", "Wake onset")
PACKAGES = ("physiology_model", "simulator", "agents", "analysis")


def whoop_repeated(target_bytes: int, out: Path) -> int:
    """One person's cycles (u21, moved to 1991) written until the file has `target_bytes`."""
    base = pd.read_csv(TEMPLATE / "physiological_cycles.csv", dtype=str)
    shift = pd.Timestamp("1991-01-01") - pd.to_datetime(base["Cycle start time"]).min()
    for column in TIME_COLUMNS:
        base[column] = (pd.to_datetime(base[column]) + shift).dt.strftime("%Y-%m-%d %H:%M:%S")
    header, body = base.to_csv(index=False).split("\n", 1)
    with out.open("w") as fh:
        fh.write(header + "\n")
        while fh.tell() < target_bytes:
            fh.write(body)
    return out.stat().st_size


def canonical_unique(target_bytes: int, out: Path) -> int:
    """A canonical daily CSV of distinct rows: u21's daily table under new user ids."""
    sys.path.insert(0, str(ROOT))
    from physiology_model.data.loaders import load_exports

    table = load_exports([TEMPLATE]).frame
    one = table.drop(columns=["user_id"]).to_csv(index=False, header=False)
    header = "user_id," + ",".join(c for c in table.columns if c != "user_id")
    with out.open("w") as fh:
        fh.write(header + "\n")
        k = 0
        while fh.tell() < target_bytes:
            fh.write("".join(f"athlete-{k:06d},{line}\n" for line in one.splitlines()))
            k += 1
    return out.stat().st_size


def peak_rss(tree: Path, argv: list[str]) -> tuple[int, int]:
    """(peak resident bytes, exit code) of `periodize argv` run from `tree` in a fresh child."""
    code = ("import resource, sys; from analysis.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True); "
            "sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          check=False, env=env, cwd=tree)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "0"
    return int(last) * 1024, done.returncode  # Linux reports KiB


def baseline_tree(commit: str, into: Path) -> Path:
    """The packages of `commit`, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, *PACKAGES],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument("--plan", action="store_true",
                        help="also measure `periodize plan` on the WHOOP file (slow)")
    parser.add_argument("--baseline-commit", default="623f479")
    parser.add_argument("--seed", type=int, default=0, help="recorded (nothing is random)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/read_memory.json"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "old").mkdir()
        old = baseline_tree(args.baseline_commit, Path(tmp) / "old")
        trees = {"old": old, "new": ROOT}
        for mb in args.sizes_mb:
            for kind, make in (("whoop_repeated", whoop_repeated),
                               ("canonical_unique", canonical_unique)):
                folder = Path(tmp) / f"{kind}_{mb:g}mb"
                folder.mkdir()
                name = "physiological_cycles.csv" if kind == "whoop_repeated" else "daily.csv"
                size = make(int(mb * 2**20), folder / name)
                commands = {"build": ["data", "build", str(folder), "--out",
                                      str(Path(tmp) / "t.parquet")]}
                if args.plan and kind == "whoop_repeated":
                    commands["plan"] = ["plan", "--model", str(ROOT / "models" / "shipped"),
                                        "--data", str(folder), "--days", "3"]
                for command, cli in commands.items():
                    row = {"file": kind, "command": command, "file_bytes": size}
                    for label, tree in trees.items():
                        peak, rc = peak_rss(tree, cli)
                        row[f"{label}_peak_rss_bytes"] = peak
                        row[f"{label}_exit_code"] = rc
                        row[f"{label}_peak_over_file"] = peak / size
                    row["old_over_new"] = row["old_peak_rss_bytes"] / row["new_peak_rss_bytes"]
                    rows.append(row)
                    print(f"{kind:17s} {command:5s} {size / 2**20:6.1f} MB: old peak "
                          f"{row['old_peak_rss_bytes'] / 2**20:6.0f} MB "
                          f"({row['old_peak_over_file']:.1f}x), new "
                          f"{row['new_peak_rss_bytes'] / 2**20:6.0f} MB "
                          f"({row['new_peak_over_file']:.1f}x)", flush=True)
    record = {"benchmark": "read_memory",
              "config": {"sizes_mb": args.sizes_mb, "plan": args.plan,
                         "baseline_commit": args.baseline_commit,
                         "template": str(TEMPLATE.relative_to(ROOT)),
                         "python": platform.python_version(), "pandas": pd.__version__},
              "seed": args.seed, "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
