"""`periodize daily`: the daily loop's store and its report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from physiology_model.errors import DataError
from physiology_model.jsonio import jsonable


def _daily(args: argparse.Namespace) -> int:
    from analysis.daily import format_results, run_daily
    from analysis.daily_report import format_report, report
    from analysis.daily_store import DailyStore

    if args.report:
        if not Path(args.db).is_file():
            raise DataError(args.db, "no such store (run `periodize daily` without --report "
                                     "first)")
        with DailyStore(args.db) as store:
            rep = report(store)
            if args.html:
                from analysis.plan_page import write_daily_page

                write_daily_page(store, rep, args.html)
        if args.json:
            sys.stdout.write(json.dumps(jsonable(rep, strict=True), indent=1) + "\n")
        else:
            print(format_report(rep))
        if args.html:
            print(f"wrote {args.html}")
        return 0
    if not args.model or not args.data:
        raise DataError("(arguments)", "periodize daily needs --model and --data (or --report)")
    results = run_daily(args.model, args.data, args.db, policy_dir=args.policy, date=args.date,
                        feel=args.feel, athlete=args.athlete, ab=args.ab, seed=args.seed)
    print(format_results(results))
    return 0


# -- evaluate ----------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    daily = sub.add_parser("daily", help="log this morning's recommendation and yesterday's "
                                         "outcome in a store; --report reads it")
    daily.add_argument("--db", required=True, help="the store (SQLite file, created if absent)")
    daily.add_argument("--model", help="world model directory")
    daily.add_argument("--data", nargs="+", help="export files or directories")
    daily.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    daily.add_argument("--athlete", default=None, help="user_id (default: every athlete)")
    daily.add_argument("--date", default=None, metavar="YYYY-MM-DD",
                       help="this morning (default: the export's last day); the export is "
                            "cut there")
    daily.add_argument("--feel", type=int, choices=range(1, 6), default=None, metavar="1-5",
                       help="how do you feel today? (1 worst; stored, see analysis.daily)")
    daily.add_argument("--ab", action="store_true",
                       help="A/B: each athlete gets the agent or the seed-rule baseline, "
                            "stable per athlete")
    daily.add_argument("--seed", type=int, default=0)
    daily.add_argument("--report", action="store_true",
                       help="coverage, CRPS, adherence, flags and A/B from the store")
    daily.add_argument("--html", default=None, help="with --report: also this HTML page")
    daily.add_argument("--json", action="store_true", help="with --report: JSON")
    daily.set_defaults(func=_daily)
