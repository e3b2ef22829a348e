#!/usr/bin/env bash
# Behaviour-neutral refactors: a seeded smoke evaluation at two commits must write identical
# results. usage: bash benchmarks/identity_smoke.sh BEFORE_REV AFTER_REV [WORKDIR]
# Each commit is checked out in a temporary worktree and run with this checkout's .venv: a
# 16-athlete held-out cohort, every default policy plus mpc_tested (a test every 28 days), a
# short SAC and PPO run (trained once, with the BEFORE code, and evaluated by both), --real on
# the shipped WHOOP athletes, and two 7-day plans. Then cohort, results.json, real.json and
# the plans are compared byte for byte. About 10 minutes per commit on 2 free cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=$1; AFTER=$2; WORK=${3:-$(mktemp -d)}
PY=$ROOT/.venv/bin/python
mkdir -p "$WORK"
source "$ROOT/benchmarks/at_commit.sh"
smoke() {  # in the commit's worktree (at_commit)
  [ -f "$WORK/train.npz" ] || $P cohort --model models/shipped --n 64 --seed 1 --out "$WORK/train.npz"
  $P cohort --model models/shipped --n 16 --seed 1000 --out "$O/test.npz"
  [ -d "$WORK/runs/sac" ] || $P train --agent sac --cohort "$WORK/train.npz" --steps 2048 --n-envs 64 --seed 0 --device cpu --out "$WORK/runs/sac"
  [ -d "$WORK/runs/ppo" ] || $P train --agent ppo --cohort "$WORK/train.npz" --steps 4096 --n-envs 64 --seed 0 --device cpu --out "$WORK/runs/ppo"
  $P evaluate --model models/shipped --cohort "$O/test.npz" --runs "$WORK/runs/sac" "$WORK/runs/ppo" --data data/real --real data/real/whoop --real-days 30 --tests-every 28 --out "$O/eval" > "$O/evaluate.log" 2>&1
  $P plan --model models/shipped --data data/real/whoop/u01 --json > "$O/plan_mpc.json"
  $P plan --model models/shipped --data data/real/whoop/u01 --policy "$WORK/runs/ppo" --json > "$O/plan_ppo.json"
}
at_commit "$BEFORE" before smoke
at_commit "$AFTER" after smoke
status=0
for f in test.npz eval/results.json eval/real.json plan_mpc.json plan_ppo.json; do
  if cmp -s "$WORK/before/$f" "$WORK/after/$f"; then echo "identical: $f"; else echo "DIFFERENT: $f"; status=1; fi
done
exit $status
