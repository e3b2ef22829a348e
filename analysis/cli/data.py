"""`periodize data`: summary, build and calibrate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from physiology_model.jsonio import jsonable


def _data_summary(args: argparse.Namespace) -> int:
    from physiology_model.data.loaders import load_exports
    from physiology_model.features.summary import summarize_table, totals_by_source

    table = load_exports(args.paths)
    summary = summarize_table(table)
    if args.json:
        payload = {
            "athletes": summary.to_dict(orient="records"),
            "totals": totals_by_source(summary).to_dict(orient="records"),
            "notes": [n.__dict__ for n in table.notes],
        }
        sys.stdout.write(json.dumps(jsonable(payload), indent=1) + "\n")
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 200,
                           "display.max_columns", None):
        print(summary.to_string(index=False))
        print()
        print(totals_by_source(summary).to_string(index=False))
    kinds = pd.Series([n.kind for n in table.notes]).value_counts()
    if len(kinds):
        print()
        print("notes: " + ", ".join(f"{k} {v}" for k, v in kinds.items())
              + " (see --json for each one)")
    _warn_ignored(table)
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from physiology_model.data.loaders import load_exports

    table = load_exports(args.paths)
    out = Path(args.out)
    table.to_parquet(out)
    print(f"wrote {out}: {len(table.frame)} user-days, {len(table.users)} athletes, "
          f"{len(table.notes)} notes")
    _warn_ignored(table)
    return 0


def _warn_ignored(table) -> None:
    """Each file that was not read, and each `warning` note (files read as one person's that
    might not be), on stderr: said where the table is made, not only in --json."""
    for note in table.notes:
        if note.kind == "ignored":
            print(f"warning: not read: {note.path}: {note.message}", file=sys.stderr)
        elif note.kind == "warning":
            print(f"warning: {note.path}: {note.message}", file=sys.stderr)


def _data_calibrate(args: argparse.Namespace) -> int:
    from physiology_model.data.load import save_strain_calibration
    from physiology_model.data.loaders import calibrate_strain

    calibration = calibrate_strain(args.paths)
    save_strain_calibration(calibration, args.out)
    print(calibration.describe())
    print(f"wrote {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    data = sub.add_parser("data", help="read wearable exports into the canonical daily table")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    summary = data_sub.add_parser("summary", help="per-athlete summary of exports")
    summary.add_argument("paths", nargs="+", help="export files or directories")
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.set_defaults(func=_data_summary)
    build = data_sub.add_parser("build", help="write the canonical daily table")
    build.add_argument("paths", nargs="+", help="export files or directories")
    build.add_argument("--out", required=True, help="output .parquet file")
    build.set_defaults(func=_data_build)
    calibrate = data_sub.add_parser(
        "calibrate", help="fit the WHOOP day strain → TRIMP calibration on users with both")
    calibrate.add_argument("paths", nargs="+", help="WHOOP export files or directories")
    calibrate.add_argument("--out", required=True, help="output .json file")
    calibrate.set_defaults(func=_data_calibrate)
