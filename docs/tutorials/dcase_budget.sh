#!/usr/bin/env bash
# Meet a DCASE low-complexity budget (task 1, 2024: 128 kB of parameters and 30 MMACs per second
# of audio) in int8: prune the parent to the budget with distillation from it, quantize to int8,
# check the budget, and report.
#
#   bash docs/tutorials/dcase_budget.sh data/fsdd runs/dcase
set -euo pipefail
DATA=${1:-data/fsdd}
OUT=${2:-runs/dcase}

audioprune train --model dcase21net --dataset fsdd --data-root $DATA \
    --split speaker:nicolas,val:theo --epochs 20 --out $OUT/parent
# widths that meet both limits at int8 (one byte a parameter), fine-tuned with KD from the parent
audioprune prune $OUT/parent --criterion l1 --target-budget dcase2024 --precision int8 \
    --finetune-epochs 5 --distill-from --out $OUT/budget
# static int8 (ONNX Runtime, QDQ), calibrated on training batches; its accuracy re-measured
audioprune quantize $OUT/budget --out $OUT/budget-int8
audioprune profile $OUT/budget-int8 --threads 1 --batch-sizes 1 --budget dcase2024
audioprune report $OUT/parent $OUT/budget $OUT/budget-int8 --budget dcase2024 --out $OUT/report
