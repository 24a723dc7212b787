#!/usr/bin/env bash
# Regenerates Fixtures/synthetic bit-exactly with the built `hrtem synth` and a fixed seed.
# Usage: scripts/make-fixtures.sh [OUT]   (default Fixtures/synthetic; HRTEM=path/to/hrtem)
#
# What the fixtures are: 2 sessions (own gain and illumination) x Au 2.2 nm spheres on
# ultrathin carbon x pixel scales {0.02, 0.042} nm/px x doses {80, 884} e/A^2 x 2 frames,
# 256 x 256 float32 DM3 (256 KiB each), their exact labels, Dataset_metadata.csv and
# synthesis.json (the ground truth). Low dose is genuinely noisy (3.2 e/px at 0.02 nm/px) and
# high dose easy; pixel scale changes fringe period and particle size in pixels. A test
# (SynthCommandTests.testFixturesRegenerateBitExactly) regenerates them and compares every byte.
set -euo pipefail
cd "$(dirname "$0")/.."
HRTEM="${HRTEM:-.build/release/hrtem}"
OUT="${1:-Fixtures/synthetic}"
# The exact command is also recorded in Fixtures/README.md; change both together.
ARGS=(--sessions 2 --frames-per-condition 2 --size 256 --pixel-scale 0.02,0.042 --dose 80,884
      --particle-size 2.2 --material Au --support "UT Carbon" --format dm3 --seed 20231109
      --xray-rate 60 --first-date 2024-01-08 --quiet)
TMP="$OUT.partial"
rm -rf "$TMP"
"$HRTEM" synth "$TMP" "${ARGS[@]}"
rm -rf "$OUT"
mv "$TMP" "$OUT"
echo "fixtures: $OUT ($(du -sh "$OUT" | cut -f1))"
