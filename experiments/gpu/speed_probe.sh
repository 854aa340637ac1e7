#!/bin/bash
# Issue 29, item 1: where a shakespeare-char training step goes on one GPU, and what shortens it, in one call:
# nanoGPT's own step (600 iterations) beside minillm's steady steps (bench_train.py, 300 steps) for
# the code before this change (PYTHONPATH=.oldsrc/src, a `git archive` of the previous commit's src/),
# q/k/v in one product, and that plus a vocabulary padded to 128; then a profile of the last.
# Run on the GPU machine from the repository root, .gpu29-shared (a copy of ../shared's anchors and Tiny
# Shakespeare) and .oldsrc carried:  OUT=DIR bash experiments/gpu/speed_probe.sh
set -u
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
[ -e ../shared ] || ln -s "$PWD/.gpu29-shared" ../shared
export JAX_PLATFORMS=cpu NEW=$PWD/src:/tmp/site OLD=$PWD/.oldsrc/src:/tmp/site
O=${OUT:-/tmp/out}; mkdir -p $O
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $O/machine.txt
python3 -c "import torch; print('torch', torch.__version__)" | tee -a $O/machine.txt
B="python3 benchmarks/bench_train.py --config shakespeare-char --device cuda --steps 300"
timeout 150 ../shared/anchors/run-nanogpt config/train_shakespeare_char.py --max_iters=600 > $O/nanogpt.log 2>&1
python3 - $O/nanogpt.log <<'PY' | tee -a $O/summary.txt
import re, statistics, sys
ms = [float(m.group(2)) for m in re.finditer(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", open(sys.argv[1]).read())
      if int(m.group(1)) >= 300 and int(m.group(1)) % 250]
print("nanogpt ms/iter median", statistics.median(ms) if ms else None, len(ms))
PY
run() {  # name pythonpath args...
  local name=$1 path=$2; shift 2
  PYTHONPATH=$path timeout 200 $B "$@" > $O/$name.json 2> $O/$name.err
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], r.get('gpu'), r.get('parameters'), json.dumps(r.get('pretrain')))" $O/$name.json $name | tee -a $O/summary.txt
}
run old "$OLD"
run fused "$NEW"
run fused-v128 "$NEW" --set model.vocab_size=128
run old-v128 "$OLD" --set model.vocab_size=128
PYTHONPATH=$NEW timeout 200 $B --set model.vocab_size=128 --steps 140 --profile /tmp/prof --profile-skip 100 --profile-steps 10 > /dev/null 2>&1
cp /tmp/prof/ops-rank0.txt $O/ops-fused-v128.txt 2>/dev/null
PYTHONPATH=$NEW python3 benchmarks/trace_summary.py /tmp/prof/trace-rank0.json.gz > $O/trace-fused-v128.txt 2>&1
tail -5 $O/trace-fused-v128.txt; head -40 $O/ops-fused-v128.txt
