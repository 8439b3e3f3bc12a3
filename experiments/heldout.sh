#!/usr/bin/env bash
# SEAL on held-out passages at a size this 2-core CPU runs in about an hour (conf/heldout.yaml): 2 ReST-EM
# rounds of 24 new built-in passages each, 4 self-edits per passage, 40 held-out passages scored before
# round 1 and after each round. fit prints the held-out table (each round's change from round 0, paired by
# passage, with 95% bootstrap intervals) and writes it to RUN_DIR/heldout/table.txt. Extra arguments are
# config overrides, for example the M-step settings of the search (experiments/heldout_search.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/run.sh python -m seal_lightning fit --config conf/heldout.yaml "$@"
