#!/usr/bin/env bash
# The demo: filled in as the pipeline lands (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/hrtem
"$BIN" --version
