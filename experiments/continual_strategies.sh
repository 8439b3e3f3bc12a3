#!/usr/bin/env bash
# Forgetting under sequential self-edits on the built-in corpus: naive (the paper's setting), replay,
# EWC, LwF and our gated merge, each absorbing the same 8 self-edits in the same 2 random orders.
# Then `compare` prints the strategy table and writes the side-by-side figure (with the paper's matrix
# beside ours when ../shared/data is there). Extra arguments are config overrides for `continual`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run_dir=${RUN_DIR:-runs/continual}
bash scripts/run.sh python -m seal_lightning continual --config conf/continual.yaml run_dir="$run_dir" "$@"
reference=${SEAL_SHARED_DATA:-../shared/data}/reference/paper_forgetting_matrix.json
extra=()
if [[ -f "$reference" ]]; then
    extra=(--reference "$reference")
fi
bash scripts/run.sh python -m seal_lightning compare --config conf/continual.yaml run_dir="$run_dir" "${extra[@]}"
