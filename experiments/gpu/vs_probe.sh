#!/bin/bash
# Issue 29, item 1: nanoGPT beside minillm's Tiny Shakespeare configs (VS_CONFIGS, default the two shipped ones),
# VS_SEEDS rounds (default 1), in one call (bench_train.py --vs-nanogpt, stopped at step 3000 of shakespeare-char's
# schedule), capped at VS_SECONDS.
# Run on the GPU machine from the repository root, .gpu29-shared (../shared's anchors and Tiny Shakespeare)
# and .whl carried:  VS_SECONDS=280 OUT=DIR bash experiments/gpu/vs_probe.sh  (PYC=1: with a bytecode cache)
set -u
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
[ -e ../shared ] || ln -s "$PWD/.gpu29-shared" ../shared
export JAX_PLATFORMS=cpu PYTHONPATH=$PWD/src:/tmp/site
if [ "${PYC:-0}" = 1 ]; then  # a bytecode cache for both programs, as a normal install has: the image sets
  unset PYTHONDONTWRITEBYTECODE  # PYTHONDONTWRITEBYTECODE=1, so every process compiled torch's Python again
  export PYTHONPYCACHEPREFIX=/tmp/pyc
  # one warm-up process writes the cache of what both import (torch, dynamo, inductor); the rounds add the rest
  python3 -c "import time; t = time.perf_counter(); import torch, torch._dynamo, torch._inductor.compile_fx; print(f'import torch, dynamo, inductor: {time.perf_counter() - t:.2f} s')"
fi
O=${OUT:-/tmp/out}; mkdir -p $O
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
timeout ${VS_SECONDS:-280} python3 benchmarks/bench_train.py --vs-nanogpt ${VS_CONFIGS:-shakespeare-char-fast shakespeare-char} \
  --seeds ${VS_SEEDS:-1} --stop-step 3000 --out /tmp/vs > $O/vs.json 2> /tmp/vs-stderr.txt
echo "rc $?"; tail -5 /tmp/vs-stderr.txt; cp /tmp/vs-stderr.txt /tmp/vs/ 2>/dev/null
tar czf $O/vs.tgz -C /tmp vs
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k: v for k, v in r.items() if k != 'runs'})[:3000])" $O/vs.json
