#!/bin/bash
# The CUDA path in one call on a GPU machine: device selection, the CUDA unit tests that CPU
# machines skip, a SAC run trained on CUDA whose checkpoint is loaded on the CPU (the share of
# identical actions), and sac_throughput.py on CUDA and on the CPU in the same call (JSON in
# $OUT, default build/cuda_check). Packages the machine lacks (gymnasium, SB3, sb3-contrib,
# arviz, h5netcdf, ...) can come as wheels in .whl/, installed to /tmp/site first.
#   bash benchmarks/cuda_check.sh        (PY=python3 by default; DEV=cpu for a dry run here)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}; DEV=${DEV:-cuda}; OUT=${OUT:-build/cuda_check}; mkdir -p "$OUT"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 DEV COHORT=${COHORT:-docs/results/evaluation/cohorts/train.npz}
if [ ! -f "$COHORT" ]; then  # the training cohort of full_evaluation.py (seed 1, 1,024 athletes)
  COHORT=$OUT/train.npz
  $PY -c "from analysis.cli import main; main(['cohort', '--model', 'models/shipped', '--n', '1024', '--seed', '1', '--out', '$COHORT'])" || exit 1
fi
date; nvidia-smi -L 2>/dev/null; nproc
$PY -c "import torch; from agents.device import select_device, describe_device; d = select_device('auto'); print('selected', d, describe_device(d), 'torch', torch.__version__)"
timeout 200 $PY -m pytest -q -p no:cacheprovider -m "not slow" tests/test_banister.py tests/test_training.py tests/test_sac.py tests/test_residual.py 2>&1 | tail -15
timeout 150 $PY - <<'PY' 2>&1 | grep -v Warning
import os, time, numpy as np, torch
from simulator.cohort import Cohort
from agents.training import train, load_agent
from simulator.env import Simulation, EnvConfig
DEV = os.environ.get('DEV', 'cuda'); STEPS = int(os.environ.get('STEPS', '20000'))
c = Cohort.load(os.environ['COHORT'])
t = time.perf_counter()
import shutil; shutil.rmtree('/tmp/runs', ignore_errors=True)
run = train('sac', c, STEPS, seed=0, device=DEV, out_dir='/tmp/runs', run_name='sac_cuda', progress=False)
print('sac', DEV, STEPS, 'steps incl. setup', round(time.perf_counter() - t, 1), 's')
gpu, cpu = load_agent(run, device=DEV), load_agent(run, device='cpu')
sim = Simulation(c, 256, EnvConfig())
obs = sim.reset(7); mask = sim.mask
same = []
for _ in range(30):
    for p in (gpu, cpu): p.reset(0)
    a, b = gpu.act(obs, mask), cpu.act(obs, mask)
    same.append(np.mean(a == b))
    obs, _, _ = sim.step(b); mask = sim.mask
print(DEV + '-trained checkpoint: share of identical actions', DEV, 'vs cpu over 30 x 256', float(np.mean(same)))
PY
devices="cuda cpu"; [ "$DEV" = cpu ] && devices=cpu
for dev in $devices; do
  timeout 120 $PY benchmarks/sac_throughput.py --device $dev --seconds ${SECS:-12} --cohort "$COHORT" --out "$OUT/sac_throughput_$dev.json" 2>&1 | grep -v Warning | tail -8
done
date
