#!/usr/bin/env bash
# `periodize recommend` speed at two commits, alternating: benchmarks/recommend_throughput.py
# (same synthetic exports, same distilled run, one worker) at BEFORE, then AFTER, ROUNDS times,
# each commit in a temporary worktree with this checkout's .venv (at_commit.sh). The runs and
# each planner's median rate and after/before ratio go to OUT (JSON).
# usage: bash benchmarks/recommend_before_after.sh BEFORE_REV AFTER_REV OUT [ROUNDS] [RUNS...]
#   RUNS: recommend_throughput.py --runs (default: mpc:1:32 distilled:1:32)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=$1; AFTER=$2; OUT=$3; ROUNDS=${4:-3}; shift $(( $# < 4 ? $# : 4 ))
RUNS=${*:-mpc:1:32 distilled:1:32}
WORK=$(mktemp -d); PY=$ROOT/.venv/bin/python
SHARED=$ROOT/build/recommend_before_after  # the exports and the distilled run, made once
mkdir -p "$SHARED"
source "$ROOT/benchmarks/at_commit.sh"
for round in $(seq "$ROUNDS"); do
  for side in before after; do
    rev=$BEFORE; [ "$side" = after ] && rev=$AFTER
    job() { $PY benchmarks/recommend_throughput.py --runs $RUNS --work "$SHARED" \
              --out "$WORK/${side}_$round.json"; }
    at_commit "$rev" "$side-$round" job
  done
done
$PY - "$WORK" "$OUT" "$BEFORE" "$AFTER" "$ROUNDS" "$RUNS" <<'EOF'
import json, statistics, subprocess, sys
from pathlib import Path
work, out, before, after, rounds, runs = sys.argv[1:]
rev = lambda r: subprocess.run(["git", "rev-parse", "--short", r], capture_output=True,
                               text=True).stdout.strip()
records, summary = [], {}
for side in ("before", "after"):
    for k in range(1, int(rounds) + 1):
        data = json.loads(Path(work, f"{side}_{k}.json").read_text())
        records.append({"side": side, "round": k, **data})
        for r in data["records"]:
            if "recommendations_per_s" in r:
                key = f"{r['planner']}:{r['workers']}:{r['athletes']}"
                summary.setdefault(key, {"before": [], "after": []})[side].append(
                    r["recommendations_per_s"])
for v in summary.values():
    v["before_median"] = statistics.median(v["before"])
    v["after_median"] = statistics.median(v["after"])
    v["after_over_before"] = v["after_median"] / v["before_median"]
meta = {"command": f"bash benchmarks/recommend_before_after.sh {before} {after} {out} {rounds} "
                   f"{runs}",
        "before_commit": rev(before), "after_commit": rev(after), "rounds": int(rounds),
        "what": "benchmarks/recommend_throughput.py at each commit, alternating before/after; "
                "recommendations per second (athletes planned per second of wall time, "
                "model and policy loading included), one worker",
        "note": "the machine is shared: each run's load average is in its record"}
Path(out).write_text(json.dumps({"meta": meta, "summary": summary, "runs": records},
                                indent=1) + "\n")
print(json.dumps(summary, indent=1))
EOF
rm -rf "$WORK"
