"""`periodize recommend`: today's plan for every athlete under a folder."""

from __future__ import annotations

import argparse
import sys


def _recommend(args: argparse.Namespace) -> int:
    from analysis.batch_recommend import (
        RecommendSpec,
        recommend,
        summarize_rows,
        write_recommendations,
    )

    spec = RecommendSpec(args.model, args.policy, args.days, args.seed)
    rows = recommend(spec, args.data, workers=args.workers, ray_address=args.ray_address)
    write_recommendations(rows, args.out, spec)
    counts = summarize_rows(rows)
    print(f"wrote {args.out}: {counts['planned']} athletes planned, {counts['failed']} "
          f"could not be (status 'error', with the reason)")
    for row in rows:
        if row["status"] == "error":
            print(f"  {row['athlete']}: {row['error']}", file=sys.stderr)
    return 0


# -- tune --------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    rec = sub.add_parser("recommend", help="today's session and a 7-day plan for every "
                                           "athlete under a folder (parquet)")
    rec.add_argument("--model", required=True, help="world model directory")
    rec.add_argument("--data", required=True, help="folder of exports (one per athlete)")
    rec.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    rec.add_argument("--days", type=int, default=7)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--workers", type=int, default=1, help="local worker processes")
    rec.add_argument("--ray-address", default=None,
                     help="run on this Ray cluster instead (host:port, auto, or local)")
    rec.add_argument("--out", required=True, help="output .parquet file")
    rec.set_defaults(func=_recommend)
