#!/bin/bash
# Issue 29, item 2: the knowledge recipe on one GPU, five quickstart variants side by side
# (experiments/knowledge/recipe_sweep.py), cut at SWEEP_SECONDS so that one 10-minute device call holds it.
# Run on the GPU machine from the repository root:  bash experiments/gpu/knowledge_sweep.sh [VARIANT ...]
# With variant names (plain-10M-six, plain-10M-all, recipe-10M-all, recipe-3M-all, recipe-25M-all,
# recipe-10M-all-noft: no fine-tuning after the mixed pretraining), only those
# run, all at once (one alone gets the whole GPU: ~4x the tokens/s of five sharing it).
# Where minillm's dependencies are installed, the pip line only adds the wheels found in .whl/ (the device
# image lacks bm25s, nltk, pysbd, ... and has no network); OUT names the folder the results tarball goes to.
set -u
rm -rf /tmp/sweep /tmp/keep; mkdir -p /tmp/sweep
[ -d .whl ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site JAX_PLATFORMS=cpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, tokenizers, safetensors, bm25s, minillm; print('torch', torch.__version__, torch.cuda.is_available())" || exit 3
C="train.batch_size=64 train.pretrain_steps=4000 train.finetune_steps=1500 train.lr=1e-3 train.min_lr=1e-4 train.warmup_steps=200 train.finetune_lr=3e-4 train.eval_interval=1000 train.checkpoint_interval=0"
M3="model.emb_dim=256 model.num_layers=4 model.num_heads=4 model.ffn_dim=768"
M10="model.emb_dim=384 model.num_layers=6 model.num_heads=6 model.ffn_dim=1152"
M25="model.emb_dim=512 model.num_layers=8 model.num_heads=8 model.ffn_dim=1536"
R="data.name_subject=true data.orders=3 data.mix_qa=1"
A="data.domains=all"
declare -A V=([plain-10M-six]="$C $M10" [plain-10M-all]="$C $M10 $A" [recipe-10M-all]="$C $M10 $R $A"
               [recipe-3M-all]="$C $M3 $R $A" [recipe-25M-all]="$C $M25 $R $A"
               [recipe-10M-all-noft]="$C $M10 $R $A train.finetune_steps=0")
NAMES=("$@"); [ $# -eq 0 ] && NAMES=(plain-10M-six plain-10M-all recipe-10M-all recipe-3M-all recipe-25M-all)
ARGS=(); for n in "${NAMES[@]}"; do [ -n "${V[$n]+x}" ] || { echo "unknown variant $n"; exit 2; }; ARGS+=(--variant "$n=${V[$n]}"); done
timeout ${SWEEP_SECONDS:-530} python3 experiments/knowledge/recipe_sweep.py --out /tmp/sweep --device cuda --jobs ${#NAMES[@]} --index bm25 \
  "${ARGS[@]}" > /tmp/sweep-stdout.json 2>/tmp/sweep-stderr.txt
echo "sweep rc $?"
tail -5 /tmp/sweep-stderr.txt
cd /tmp/sweep && for v in runs/*; do n=$(basename $v); mkdir -p /tmp/keep/$n; cp $v/*.json $v/*.jsonl $v/*.toml /tmp/keep/$n/ 2>/dev/null; done
cp -r /tmp/sweep/evals /tmp/sweep/*.log /tmp/sweep/*.json /tmp/keep/ 2>/dev/null
tar czf ${OUT:-/tmp}/knowledge-sweep.tgz -C /tmp keep && ls -la ${OUT:-/tmp}
python3 -c "import json; [print(v['variant'], v.get('quickstart_seconds'), v.get('error'), {k: (x.get('keyword_hit_rate'), x.get('coverage'), x.get('precision')) for k, x in v.items() if '/' in k}) for v in json.load(open('/tmp/sweep/results.json'))['variants']]"
grep -h "train:\|calibrate:" /tmp/sweep/*.log | head -20
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
