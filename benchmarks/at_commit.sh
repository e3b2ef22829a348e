# Sourced by the benchmarks that run the same job at two commits (identity_smoke.sh,
# noise_downstream.sh). `at_commit REV NAME JOB` checks REV out in a temporary worktree under
# $WORK, runs the shell function JOB there with PYTHONPATH on that tree, P the CLI
# ("$PY -m analysis.cli", this checkout's .venv) and O=$WORK/NAME (created) for its outputs,
# then removes the worktree. The caller sets ROOT, WORK and PY.
at_commit() {  # REV NAME JOB
  local tree="$WORK/tree-$2"
  git -C "$ROOT" worktree add -q --detach "$tree" "$1"
  (
    cd "$tree"; export PYTHONPATH=$tree; P="$PY -m analysis.cli"; O="$WORK/$2"
    mkdir -p "$O"
    "$3"
  )
  git -C "$ROOT" worktree remove --force "$tree"
}
