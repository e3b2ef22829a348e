#!/usr/bin/env bash
# Issue 24 item 5: how each policy's share of the oracle moves when the simulator's noise
# changes. usage: bash benchmarks/noise_downstream.sh BEFORE_REV AFTER_REV [N] [WORKDIR] [OUT]
# Each commit is checked out in a temporary worktree and run with this checkout's .venv: a
# held-out cohort of N athletes (seed 4000, the full evaluation's held-out seed) drawn from the
# shipped world model as that commit reads it, then `periodize evaluate` with every default
# policy but bc, once wearable-only and once with the monthly performance test taken as that day's
# session (`--tests-every 28 --test-session tempo_threshold`). Then
# benchmarks/noise_downstream.py writes the per-policy comparison to OUT (default
# benchmarks/results/noise_downstream.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=$1; AFTER=$2; N=${3:-64}; WORK=${4:-$(mktemp -d)}
# absolute: the jobs run inside the commits' worktrees, which are removed afterwards
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd)
OUT=${5:-$(cd "$(dirname "$0")" && pwd)/results/noise_downstream.json}
PY=$ROOT/.venv/bin/python
# every default policy but bc, whose training data (the real exports) the loaders read
# differently at the two commits
POLICIES="random seed_rule hrv_guided fixed_periodization mpc oracle"
source "$ROOT/benchmarks/at_commit.sh"
downstream() {  # in the commit's worktree (at_commit)
  $P cohort --model models/shipped --n "$N" --seed 4000 --out "$O/test.npz"
  $P evaluate --model models/shipped --cohort "$O/test.npz" --policies $POLICIES \
    --out "$O/wearable" > "$O/wearable.log" 2>&1
  $P evaluate --model models/shipped --cohort "$O/test.npz" --policies $POLICIES mpc_tested \
    --tests-every 28 --test-session tempo_threshold --out "$O/tested" > "$O/tested.log" 2>&1
}
at_commit "$BEFORE" before downstream
at_commit "$AFTER" after downstream
"$PY" "$ROOT/benchmarks/noise_downstream.py" "$WORK" --before "$BEFORE" --after "$AFTER" --n "$N" \
  --out "$OUT"
