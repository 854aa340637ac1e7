#!/bin/bash
# Issue 29, item 1: where the time to validation loss 1.47 goes, and recipes that may shorten it, one call:
# shakespeare-char-fast from a cold compile cache under py-spy (start-up breakdown), then candidate recipes
# from the warm cache (bench_train.py --full, one seed), then nanoGPT to 2000 iterations on the same machine.
# Run on the GPU machine from the repository root, .gpu29-shared (../shared's anchors and Tiny Shakespeare,
# and a py-spy binary in bin/) carried:  OUT=DIR bash experiments/gpu/fast_probe.sh
set -u
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
[ -e ../shared ] || ln -s "$PWD/.gpu29-shared" ../shared
export JAX_PLATFORMS=cpu PYTHONPATH=$PWD/src:/tmp/site
O=${OUT:-/tmp/out}; W=/tmp/fastprobe; mkdir -p $O $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/machine.txt
nproc >> $W/machine.txt
F="python3 benchmarks/bench_train.py --config shakespeare-char-fast --device cuda --full"
summary() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); f=r['full']; print(sys.argv[2], f['seconds_to_target'], f['best_val_loss'], f['best_step'], f['ms_per_step'], f['compile_s'], f['total_s'], f['val_curve'][:12])" $W/$1.json $1 2>&1 | tee -a $W/summary.txt; }
timeout 150 .gpu29-shared/bin/py-spy record -r 100 -f raw -o $W/fast-cold.pyspy -- $F --out $W/fast-cold 2> $W/fast-cold.err | grep -v "^py-spy>" > $W/fast-cold.json
[ -s $W/fast-cold.json ] || { rm -rf $W/fast-cold; timeout 120 $F --out $W/fast-cold > $W/fast-cold.json 2>> $W/fast-cold.err; }
summary fast-cold
v() { local name=$1; shift; timeout 120 $F "$@" --out $W/$name > $W/$name.json 2> $W/$name.err; summary $name; }
v fast-warm
v lr4e-3 --set train.lr=4e-3
v lr5e-3-s1000 --set train.lr=5e-3 --set train.pretrain_steps=1000
v drop0.1 --set model.dropout=0.1
v eval50 --set train.eval_interval=50 --set train.eval_batches=10
v b256-lr4e-3-s700 --set train.batch_size=256 --set train.lr=4e-3 --set train.pretrain_steps=700 --set train.warmup_steps=50
v fast-warm2
timeout 150 ../shared/anchors/run-nanogpt config/train_shakespeare_char.py --max_iters=2000 > $W/nanogpt.log 2>&1
grep -E "^step|val loss" $W/nanogpt.log | tee -a $W/summary.txt
python3 - $W/nanogpt.log <<'PY' | tee -a $W/summary.txt
import re, statistics, sys
ms = [float(m.group(2)) for m in re.finditer(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", open(sys.argv[1]).read())
      if int(m.group(1)) >= 300 and int(m.group(1)) % 250]
print("nanogpt ms/iter median", statistics.median(ms) if ms else None, len(ms))
PY
cp $W/summary.txt $O/; tar czf $O/fastprobe.tgz -C /tmp fastprobe; ls -la $O
