#!/usr/bin/env bash
# Reproduce a paper's claim with its recipe: the graph-centrality paper's claim 1 (C1 and C2 of
# the DCASE 2021 baseline pruned by half lose < 2 points), re-measured on FSDD with
# leave-one-speaker-out cross-validation (6 folds x 7 runs), then reported with paired intervals.
#
#   bash docs/tutorials/reproduce_claim.sh runs/claim1
set -euo pipefail
OUT=${1:-runs/claim1}

audioprune run recipes/claims/dcase21_c1c2_loso.yaml --out $OUT
audioprune run recipes/claims/dcase21_c1c2_loso.yaml --out $OUT --status
audioprune report $OUT --out $OUT/report-drops --baseline parent
audioprune report $OUT --out $OUT/report-vs-l1 --baseline l1 --ci t
