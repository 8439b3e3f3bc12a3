#!/usr/bin/env bash
# The held-out test (experiments/heldout.sh, conf/heldout.yaml: 2 rounds of 24 new passages, 40 held-out
# passages, the corpus drawn with seed 1) under several run seeds, with a pooled line that resamples the
# seeds and, apart, the passages. Table: experiments/heldout_seeds.md. About an hour per seed on a 2-core
# CPU; finished runs resume. `bash experiments/heldout_seeds.sh 0 1` (default: 0 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1)
CONFIG=conf/heldout.yaml RUN_ROOT=${RUN_ROOT:-runs/heldout_seeds} TABLE=experiments/heldout_seeds.md \
    bash experiments/demo_seeds.sh "${seeds[@]}"
