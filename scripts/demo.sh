#!/usr/bin/env bash
# make demo: the whole pipeline on the bundled synthetic fixtures, in a few minutes on 2 cores.
#   Fixtures/synthetic (made by `hrtem synth`, see Fixtures/README.md)
#   -> import the metadata table, ingest frames and labels into a fresh catalog
#   -> dataset versions from queries: a dose series (80 vs 884 e/A^2) and a pixel-scale
#      series (0.02 vs 0.042 nm/px)
#   -> a generalization matrix (train on each, test on every other) -> demo-output/report.html
# Epochs, patch size and folds are reduced from the study's (250 epochs, 512 px, 5 folds) so
# that it finishes quickly; every other step is the study's protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
HRTEM="${HRTEM:-.build/release/hrtem}"
OUT="${DEMO_OUT:-demo-output}"
EPOCHS="${DEMO_EPOCHS:-40}"
FIXTURES=Fixtures/synthetic

rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export HRTEM_HOME="$OUT/data"
step() { printf '\n== %s\n' "$*"; }

step "catalog: import the metadata table and ingest the frames and labels"
"$HRTEM" import-metadata "$FIXTURES/Dataset_metadata.csv"
"$HRTEM" ingest "$FIXTURES"
"$HRTEM" summary --by dose,pixel_scale

step "dataset versions from queries (patches of 32 px, 3 folds)"
common=(--patch 32 --stride 32 --min-particle-pixels 100 --folds 3)
"$HRTEM" dataset create high-dose   --where 'dose ~ 884 +- 5 and pixel_scale = 0.02'  "${common[@]}" \
    --description "884 e/A^2, 0.02 nm/px"
"$HRTEM" dataset create low-dose    --where 'dose ~ 80 +- 5 and pixel_scale = 0.02'   "${common[@]}" \
    --description "80 e/A^2, 0.02 nm/px"
"$HRTEM" dataset create coarse-scale --where 'dose ~ 884 +- 5 and pixel_scale = 0.042' "${common[@]}" \
    --description "884 e/A^2, 0.042 nm/px"
for name in high-dose low-dose coarse-scale; do "$HRTEM" dataset build "$name"; done

step "generalization matrix: train on each dataset, test on every other ($EPOCHS epochs)"
"$HRTEM" matrix --datasets high-dose,low-dose,coarse-scale --folds 3 --epochs "$EPOCHS" --batch 8 \
    --threads 1 --jobs 2 --name demo --out "$OUT"

printf '\nOpen %s/report.html in a browser (matrix.csv, matrix.json, heatmap.svg beside it).\n' "$OUT"
