#!/usr/bin/env bash
# Fixed-seed CLI runs whose results must not change when the code is refactored: 2 parents
# (dcase21net 3 epochs, qdcase21net 2 epochs; FSDD, speaker nicolas held out, theo validates)
# and 11 prune runs covering every plan kind (ratios, iterative, global target MACs, target
# params, layer patterns) and criterion family (centrality, similarity, norms, active ones,
# quaternion layers). Writes OUT/summary.txt: per run the test accuracy, params, MACs, the
# sha256 of model.safetensors and the removed filter indices. Compare two trees with
#   bash bench/cli_fixed_seed_runs.sh /tmp/before     # on the old commit
#   bash bench/cli_fixed_seed_runs.sh /tmp/after      # on the new one
#   diff /tmp/before/summary.txt /tmp/after/summary.txt
# Resumable (finished runs are skipped); about 25 min on 2 cores. PYTHONPATH=OLD_TREE/src runs
# an older checkout with this venv.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/cli_fixed_seed_runs.sh OUT_DIR}
AP="${PYTHON:-.venv/bin/python} -m audioprune"
D=${FSDD_ROOT:-../shared/datasets/fsdd}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
SPLIT="--dataset fsdd --data-root $D --split speaker:nicolas,val:theo --seed 0 --no-progress"
[ -f "$OUT/p/metrics.json" ] || $AP train --model dcase21net $SPLIT --epochs 3 --out "$OUT/p" > "$OUT/p.log" 2>&1
[ -f "$OUT/q/metrics.json" ] || $AP train --model qdcase21net $SPLIT --epochs 2 --out "$OUT/q" > "$OUT/q.log" 2>&1
run() { name=$1; shift; [ -f "$OUT/$name/metrics.json" ] || $AP prune "$@" --finetune-epochs 1 --no-progress --out "$OUT/$name" > "$OUT/$name.log" 2>&1; }
run wdc "$OUT/p" --criterion wdc --ratios C1=0.5,C2=0.5
run betw-it "$OUT/p" --criterion betweenness --ratio 0.5 --iterative 2
run l1-macs "$OUT/p" --criterion l1 --target-macs 20M --global
run opnorm-params "$OUT/p" --criterion opnorm --target-params 30k
run taylor "$OUT/p" --criterion taylor --ratio 0.3
run hrank "$OUT/p" --criterion hrank --layers 'conv*' --ratio 0.25
run act-global "$OUT/p" --criterion activation --ratio 0.3 --global
run sim "$OUT/p" --criterion similarity --ratio 0.4 --layers C1-C3
run q-wdc "$OUT/q" --criterion wdc --ratios C1=0.5,C2=0.5
run q-taylor "$OUT/q" --criterion taylor --ratio 0.25
run q-l1-macs "$OUT/q" --criterion l1 --target-macs 40M
for d in "$OUT"/*/; do
  ${PYTHON:-.venv/bin/python} - "$d" <<'PY'
import hashlib, json, sys
from pathlib import Path
d = Path(sys.argv[1])
m = json.loads((d / "metrics.json").read_text())
digest = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()[:16]
removed = {k: v["removed"] for k, v in m.get("pruning", {}).get("layers", {}).items()}
print(d.name, m.get("accuracy"), m.get("params"), m.get("macs"), digest, json.dumps(removed, sort_keys=True))
PY
done > "$OUT/summary.txt"
cat "$OUT/summary.txt"
