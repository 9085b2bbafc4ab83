#!/bin/bash
# Device check for issue 4: the Atari main job with a larger budget on the GPU.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nproc; free -g | head -2
python3 -c "import torch, gymnasium, ale_py, stable_baselines3 as sb3; print('torch', torch.__version__, torch.cuda.get_device_name(), 'sb3', sb3.__version__, 'ale', ale_py.__version__)"
STEPS=${STEPS:-600000}; LABELS=${LABELS:-1000}
start=$(date +%s)
timeout ${BENCH_LIMIT:-520} python3 -m benchmarks.atari --synthetic-oracle --steps $STEPS --labels $LABELS --out $OUT/gpu 2>&1 \
  | stdbuf -o0 tr '\r' '\n' | stdbuf -o0 awk '!/training:/ || (++n % 40 == 0)' | tee $OUT/log.txt
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=memory.used --format=csv
rm -f $OUT/gpu/labels-seed*.sqlite
