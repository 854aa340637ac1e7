#!/bin/bash
# Issue 29, item 1: where a warm run's seconds before its first training step go. The fast config once from a
# cold compile cache, then from the warm one under py-spy (idle frames included: waits on the GPU show), then
# once more with python -X importtime, then CUDA's own start-up alone. COLD=0 skips the cold run (a run of the
# same config earlier in the call has warmed the cache).
# Run on the GPU machine from the repository root, .gpu29-shared (../shared's anchors and Tiny Shakespeare,
# py-spy in bin/) and .whl carried:  CONFIG=FILE OUT=DIR bash experiments/gpu/startup_probe.sh
set -u
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
[ -e ../shared ] || ln -s "$PWD/.gpu29-shared" ../shared
export JAX_PLATFORMS=cpu PYTHONPATH=$PWD/src:/tmp/site PYTHONWARNINGS=ignore
O=${OUT:-/tmp/out}; W=/tmp/startup; mkdir -p $O $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
F="python3 benchmarks/bench_train.py --config ${CONFIG:-shakespeare-char-fast} --device cuda --full"
summary() { python3 -c "import json,sys; f=json.load(open(sys.argv[1]))['full']; print(sys.argv[2], f['seconds_to_target'], f['best_val_loss'], f['ms_per_step'], f['compile_s'], f['total_s'])" $W/$1.json $1; }
[ "${COLD:-1}" = 0 ] || { timeout 120 $F --out $W/cold > $W/cold.json 2> $W/cold.err; summary cold; }
timeout 120 .gpu29-shared/bin/py-spy record --idle -r 200 -f raw -o $O/warm.pyspy -- $F --out $W/warm 2> $W/warm.err | grep -v "^py-spy>" > $W/warm.json; summary warm
timeout 120 python3 -X importtime benchmarks/bench_train.py --config ${CONFIG:-shakespeare-char-fast} --device cuda --full --out $W/imp > $W/imp.json 2> $O/importtime.txt; summary imp
python3 -c "
import time; t = time.perf_counter(); import torch; a = time.perf_counter(); torch.zeros(1, device='cuda'); b = time.perf_counter()
import torch._dynamo, torch._inductor.compile_fx; c = time.perf_counter()
print(f'import torch {a - t:.2f} s, first CUDA tensor {b - a:.2f} s, import dynamo+inductor {c - b:.2f} s')"
head -3 $W/warm/full-metrics.jsonl 2>/dev/null | cut -c1-200
tar czf $O/startup.tgz -C /tmp startup
