#!/usr/bin/env bash
# A non-editable install, used from outside the checkout (issue 19): `pip install .` into a new
# venv, then gym.make("Periodization-v0") and `periodize plan --model shipped` from another
# directory. The new venv borrows the dependencies of the checkout's .venv (a .pth file) so
# the check takes a minute, not a download of torch; the project itself is installed as a
# wheel, so nothing of the source tree is on its path.
# usage: bash benchmarks/install_check.sh   (after `make test` or `make demo` made .venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3.11 -m venv "$WORK/venv"
SITE=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
  | xargs -I{} sh -c "echo '$SITE' > {}/zz_project_dependencies.pth"
git -C "$ROOT" archive --format=tar HEAD | (mkdir -p "$WORK/src" && tar -x -C "$WORK/src")
"$WORK/venv/bin/pip" install --quiet --no-deps "$WORK/src"
mkdir -p "$WORK/elsewhere" && cd "$WORK/elsewhere"
"$WORK/venv/bin/python" - <<'PY'
import gymnasium as gym
import physiology_model
import simulator  # noqa: F401  (registers Periodization-v0)
assert "site-packages" in physiology_model.__file__, physiology_model.__file__
env = gym.make("Periodization-v0")
obs, _ = env.reset(seed=0)
print(f"gym.make from the installed package: observation {obs.shape}")
PY
"$WORK/venv/bin/periodize" plan --model shipped --data "$ROOT/data/real/whoop/u01"
echo "install check passed"
