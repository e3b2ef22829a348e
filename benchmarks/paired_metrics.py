"""Paired per-athlete differences between policies of `periodize evaluate` runs.

    python benchmarks/paired_metrics.py --eval DIR [DIR ...] --reference POLICY \
        [--metrics injured_days risky_days ...] [--boot 10000] --out FILE.json

Reads each evaluation folder's `athletes.csv` (one row per policy and athlete; or
`athletes.csv.gz`) and its `config.json`. Folders may be combined only when they judged the
same athletes the same way (cohort, athletes, episode days and seed, shard size, performance
tests): then every policy met the same athletes under the same simulator draws, and the
difference of two policies athlete by athlete is far tighter than their two means' intervals.
A policy found in several folders with identical rows is kept once; one whose rows differ
becomes NAME@FOLDER. For each policy other than `--reference` and each metric: the mean of (policy − reference), its 95 % bootstrap
interval (athletes resampled), the share of athletes above, equal to and below, and the
Wilcoxon signed-rank p. With `--oracle NAME --random NAME` (policies of any of the folders),
also each policy's share of the oracle's ΔP gain over random with its bootstrap interval
(`analysis.benchmark.share_of_oracle_gain`), so that a policy evaluated in a folder of its
own is scored against the oracle of another folder that judged the same athletes:

    python benchmarks/paired_metrics.py --eval DIR [DIR ...] --reference POLICY \
        --oracle oracle --random random --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run_record import write_result

from analysis.benchmark import paired_p_value, share_of_oracle_gain

SAME = ("cohort", "n_athletes", "episode_days", "seed", "shard_size", "performance_tests")
"""What two evaluation folders must share for their athletes to be paired (the shard size
seeds the tests' noise and the policies' own sampling: `analysis.shards`)."""
DEFAULT_METRICS = ("delta_performance", "injured_days", "risky_days", "load_trimp")


def _judging(config: dict) -> dict:
    tests = config.get("performance_tests")
    if tests is not None:  # which policies read them is not how the athletes were judged
        tests = {k: v for k, v in tests.items() if k != "handed_to"}
    return {**{k: config.get(k) for k in SAME}, "performance_tests": tests}


def _athletes(folder: Path) -> Path:
    """The folder's athlete table: evaluate's `athletes.csv`, or a gzipped copy (as the
    committed folders under docs/results keep it)."""
    plain = folder / "athletes.csv"
    return plain if plain.exists() or not (folder / "athletes.csv.gz").exists() \
        else folder / "athletes.csv.gz"


def load_tables(folders: list[Path]) -> pd.DataFrame:
    """The folders' athlete tables, one row per policy and athlete (a policy name found in
    several folders becomes NAME@FOLDER); `SystemExit` naming the folder when a folder lacks
    its table or judged other athletes than the first."""
    tables, first = [], None
    for folder in folders:
        try:
            config = json.loads((folder / "config.json").read_text())
            table = pd.read_csv(_athletes(folder))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{folder}: not a periodize evaluate output with athletes.csv "
                             f"({exc})") from None
        judged = _judging(config)
        if first is None:
            first = judged
        elif judged != first:
            differ = [k for k in SAME if judged[k] != first[k]]
            raise SystemExit(f"{folder}: judged other athletes than {folders[0]} ({differ})")
        tables.append(table.assign(source=str(folder)))
    table = pd.concat(tables, ignore_index=True)
    # a policy found in several folders with the same values (the same deterministic run,
    # e.g. random in each) is kept once
    values = [c for c in table if c != "source"]
    for name, rows in table.groupby("policy"):
        copies = [g[values].reset_index(drop=True) for _, g in rows.groupby("source", sort=False)]
        if len(copies) > 1 and all(c.equals(copies[0]) for c in copies[1:]):
            first_source = rows["source"].iloc[0]
            table = table[(table["policy"] != name) | (table["source"] == first_source)]
    # a name in several folders (two runs of one kind) becomes NAME@FOLDER in each
    folders = table.groupby("policy")["source"].transform("nunique")
    table["policy"] = table["policy"].where(
        folders == 1, table["policy"] + "@" + table["source"].map(lambda f: Path(f).name))
    return table


def paired(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict:
    """Mean of a − b over the athletes both have, its bootstrap 95 % interval, the shares of
    athletes above / equal / below, and the Wilcoxon p."""
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return {"mean_difference": float(d.mean()), "ci95": [float(lo), float(hi)],
            "policy_mean": float(a[ok].mean()), "reference_mean": float(b[ok].mean()),
            "share_higher": float(np.mean(d > 0)), "share_equal": float(np.mean(d == 0)),
            "share_lower": float(np.mean(d < 0)), "wilcoxon_p": paired_p_value(a[ok], b[ok]),
            "n": int(d.size)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", nargs="+", type=Path, required=True,
                        help="periodize evaluate output folders")
    parser.add_argument("--reference", required=True, help="the policy each is compared with")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    parser.add_argument("--oracle", default=None, help="with --random: each policy's share "
                        "of this policy's ΔP gain over random")
    parser.add_argument("--random", default=None)
    parser.add_argument("--boot", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    table = load_tables(args.eval)
    wide = {m: table.pivot(index="athlete", columns="policy", values=m) for m in args.metrics
            if m in table}
    missing = [m for m in args.metrics if m not in wide]
    names = set(table["policy"])
    wanted = [n for n in (args.reference, args.oracle, args.random) if n is not None]
    if missing or not set(wanted) <= names:
        raise SystemExit(f"not in the tables: {missing or sorted(set(wanted) - names)}")
    if (args.oracle is None) != (args.random is None):
        raise SystemExit("--oracle and --random go together")
    records = []
    if args.oracle is not None:
        gain = table.pivot(index="athlete", columns="policy", values="delta_performance")
        for policy in sorted(names - {args.oracle, args.random}):
            share = share_of_oracle_gain(gain[policy], gain[args.random], gain[args.oracle],
                                         n_boot=args.boot, seed=args.seed)
            records.append({"policy": policy, "oracle": args.oracle, "random": args.random,
                            "metric": "pct_of_oracle", **(share or {"pct": None})})
            if share:
                print(f"{policy:28s} % of the oracle {share['pct']:6.1f} "
                      f"[{share['ci95_low']:.1f}, {share['ci95_high']:.1f}]")
    for policy in sorted(set(table["policy"]) - {args.reference}):
        for metric, w in wide.items():
            rec = paired(w[policy].to_numpy(float), w[args.reference].to_numpy(float),
                         args.boot, args.seed)
            records.append({"policy": policy, "reference": args.reference, "metric": metric,
                            **rec})
            print(f"{policy:28s} {metric:18s} {rec['mean_difference']:+8.3f} "
                  f"[{rec['ci95'][0]:+.3f}, {rec['ci95'][1]:+.3f}]  p {rec['wilcoxon_p']}")
    write_result(args.out, "paired_metrics",
                 {"command": "python benchmarks/paired_metrics.py " + " ".join(
                     sys.argv[1:] if argv is None else argv),
                  "eval": [str(p) for p in args.eval], "reference": args.reference,
                  "metrics": args.metrics, "oracle": args.oracle, "random": args.random,
                  "boot": args.boot, "seed": args.seed},
                 {"records": records})


if __name__ == "__main__":
    main()
