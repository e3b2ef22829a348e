"""`periodize plan`: a 7-day plan for a real athlete's export."""

from __future__ import annotations

import argparse
import json
import sys


def _plan(args: argparse.Namespace) -> int:
    from agents.recommend import plan_details, session_text

    details = plan_details(args.model, args.data, athlete=args.athlete, days=args.days,
                           policy_dir=args.policy, seed=args.seed, event=args.event,
                           tests=args.tests)
    result = details.plan
    if args.html:
        from analysis.plan_page import write_plan_page

        write_plan_page(result, details, args.html)
        print(f"wrote {args.html}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return 0
    print(f"{len(result['days'])}-day plan for {result['athlete']} from {result['start']}, "
          f"the export's last morning (planner: {result['planner']})")
    if "event" in result:
        print(f"  event: {result['event']['date']}, {result['event']['days_away']} days away")
    if result["days"] and result["days"][0].get("why"):
        print(f"  this morning: {result['days'][0]['why']}")
    guess = {k: "*" if v != "athlete" else "" for k, v in result["forecast_basis"].items()}
    for day in result["days"]:
        lo, hi = day["recovery_pct_interval"]
        print(f"  {day['date']}  {session_text(day):16s} {day['load_trimp']:5.0f} TRIMP   "
              f"recovery {day['recovery_pct']:4.0f}% [{lo:3.0f}-{hi:3.0f}]{guess['recovery']}   "
              f"HRV {day['hrv_ms']:5.1f} ms{guess['hrv']}"
              + (f"   ({day['reason']})" if day.get("reason") else ""))
    for note in result.get("notes", []):
        print(f"  note: {note}")
    alone = [k if k != "hrv" else "HRV" for k, v in guess.items() if v]
    if alone:
        print(f"  * {' and '.join(alone)} forecast from the model alone: none in this export")
    return 0


# -- recommend ---------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    plan = sub.add_parser("plan", help="a 7-day plan for a real athlete's export")
    plan.add_argument("--model", required=True,
                       help="world model directory (`shipped`: the one fitted on the shipped data)")
    plan.add_argument("--data", nargs="+", required=True, help="export files or directories")
    plan.add_argument("--athlete", default=None, help="user_id (default: the first)")
    plan.add_argument("--policy", default=None, help="trained run directory (default: MPC)")
    plan.add_argument("--planner", default="mpc", choices=["mpc"])
    plan.add_argument("--days", type=int, default=7)
    plan.add_argument("--event", default=None, metavar="YYYY-MM-DD",
                      help="a race or test after the export's last day: performance should "
                           "peak then")
    plan.add_argument("--tests", default=None, metavar="CSV",
                      help="the athlete's performance tests (columns date, result; higher is "
                           "better): the MPC (or a --policy distilled or SAC-trained with "
                           "tests) learns the performance response from them")
    plan.add_argument("--seed", type=int, default=0)
    plan.add_argument("--json", action="store_true")
    plan.add_argument("--html", default=None, metavar="FILE",
                      help="also write the plan page (one static HTML file)")
    plan.set_defaults(func=_plan)
