"""The daily loop's closing demo: a scripted run of consecutive mornings on a shipped athlete.

`periodize daily` runs on each morning from `--start` for `--days` days, each time on the export
cut at that morning (`--date`), with `--feel`; then `periodize daily --report --json` reads the
store; then every morning is run again and the store's content (every row of every table,
`DailyStore.content`) is compared with what it was. Writes the report, the seconds per morning
and whether the rerun changed anything, with the config, as JSON.

    PYTHONPATH=. .venv/bin/python benchmarks/daily_week.py [--model models/shipped]
        [--data data/real/whoop/u01] [--start 2022-11-03] [--days 7] [--feel 3] [--seed 0]
        [--db build/daily/week.db] [--out benchmarks/results/daily_week.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.cli import main as periodize
from analysis.daily_store import DailyStore


def _run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = periodize(argv)
    if code != 0:
        raise SystemExit(f"periodize {' '.join(argv)} exited {code}")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shipped")
    parser.add_argument("--data", default="data/real/whoop/u01")
    parser.add_argument("--start", default="2022-11-03")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--feel", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="build/daily/week.db")
    parser.add_argument("--out", default="benchmarks/results/daily_week.json")
    args = parser.parse_args()

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    dates = [str(d.date()) for d in pd.date_range(args.start, periods=args.days)]

    def week() -> list[float]:
        seconds = []
        for day in dates:
            started = time.perf_counter()
            printed = _run(["daily", "--model", args.model, "--data", args.data, "--db",
                            str(db), "--date", day, "--feel", str(args.feel), "--seed",
                            str(args.seed)])
            seconds.append(time.perf_counter() - started)
            print(printed, end="", flush=True)
        return seconds

    first = week()
    report = json.loads(_run(["daily", "--db", str(db), "--report", "--json"]))
    print(_run(["daily", "--db", str(db), "--report"]), end="")
    with DailyStore(db) as store:
        before = store.content()
    again = week()
    with DailyStore(db) as store:
        after = store.content()
    record = {"config": vars(args), "dates": dates, "seconds_per_morning": first,
              "seconds_per_morning_rerun": again, "rerun_changed_store": before != after,
              "store_rows": len(before), "report": report}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"rerun changed the store: {before != after}; wrote {args.out}")


if __name__ == "__main__":
    main()
