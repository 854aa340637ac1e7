#!/bin/bash
# Issue 29, item 2 (and issue 27): does a model that holds its articles answer closed book once its answer
# opens the right way? One call: the plain 14.7M quickstart on the six domains (knowledge_sweep.sh's
# plain-10M-six settings) trained alone on the GPU, then experiments/knowledge/openings_probe.py on the
# three natural sets side by side (free / trie / scored / oracle openings).
# Run on the GPU machine from the repository root, .whl carried:  OUT=DIR [EXTRA="data.described=true"] bash experiments/gpu/openings_probe.sh
set -u
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site JAX_PLATFORMS=cpu PYTHONUNBUFFERED=1
O=${OUT:-/tmp/out}; W=/tmp/op; mkdir -p $O $W
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $W/machine.txt
python3 -c "import torch; print('torch', torch.__version__)" | tee -a $W/machine.txt
C="train.batch_size=64 train.pretrain_steps=4000 train.finetune_steps=1500 train.lr=1e-3 train.min_lr=1e-4 train.warmup_steps=200 train.finetune_lr=3e-4 train.eval_interval=1000 train.checkpoint_interval=0"
M="${MODEL:-model.emb_dim=384 model.num_layers=6 model.num_heads=6 model.ffn_dim=1152}"
SETS=(); for s in $C $M ${EXTRA:-}; do SETS+=(--set "$s"); done
start=$(date +%s)
timeout ${TRAIN_SECONDS:-330} python3 -m minillm quickstart --device cuda --index bm25 --no-progress --out $W/run --data-dir $W/data "${SETS[@]}" > $W/quickstart.log 2>&1
echo "quickstart rc $? in $(( $(date +%s) - start )) s" | tee -a $W/machine.txt
grep -h "train:\|calibrate:\|trained" $W/quickstart.log | tail -5 | tee $O/quickstart-summary.txt
for s in natural natural-heldout natural-third; do  # one process a set, side by side (launch-bound)
  timeout ${PROBE_SECONDS:-240} python3 experiments/knowledge/openings_probe.py $W/run --articles $W/data/raw/articles.jsonl --device cuda --sets $s --arms ${ARMS:-free,trie,scored,oracle} --out $O/openings-$s.json > $W/openings-$s.stdout 2> $W/openings-$s.err &
done
wait; cat $W/openings-*.stdout; tail -n 3 $W/openings-*.err
cp $W/run/*.json $W/run/*.jsonl $W/run/config.toml $W/ 2>/dev/null; cp $O/openings-*.json $W/ 2>/dev/null
rm -rf $W/run $W/data
tar czf $O/openings-probe.tgz -C /tmp op; ls -la $O
