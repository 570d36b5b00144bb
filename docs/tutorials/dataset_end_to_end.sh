#!/usr/bin/env bash
# A dataset end to end from the command line: check the data, train a parent, prune it two ways
# to half its MACs with fine-tuning, profile, and compare in one report.
#
#   bash docs/tutorials/dataset_end_to_end.sh data/fsdd runs/tutorial
#
# FSDD with speaker nicolas held out for testing and theo for validation, so that the kept epoch
# and the test both measure an unseen voice.
set -euo pipefail
DATA=${1:-data/fsdd}
OUT=${2:-runs/tutorial}
SPLIT=speaker:nicolas,val:theo

audioprune datasets check fsdd --data-root $DATA --split $SPLIT
audioprune train --model dcase21net --dataset fsdd --data-root $DATA --split $SPLIT \
    --epochs 20 --out $OUT/dcase21net
audioprune evaluate $OUT/dcase21net
audioprune prune $OUT/dcase21net --criterion taylor --target-macs 0.5 --finetune-epochs 5 \
    --out $OUT/dcase21net-taylor-m50
audioprune prune $OUT/dcase21net --criterion l1 --target-macs 0.5 --finetune-epochs 5 \
    --out $OUT/dcase21net-l1-m50
audioprune profile $OUT/dcase21net-taylor-m50 --threads 1 --batch-sizes 1
audioprune report $OUT/dcase21net $OUT/dcase21net-taylor-m50 $OUT/dcase21net-l1-m50 \
    --out $OUT/report
