#!/usr/bin/env bash
# The paper's table for the built-in model on 20 SQuAD dev passages, with the reference code's Qwen2.5-7B
# self-edits as the external generator. Needs ../shared/data beside the checkout. About 15 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${SEAL_SHARED_DATA:-../shared/data}
bash scripts/run.sh python -m seal_lightning evaluate \
    run_dir=runs/squad_baselines \
    data.heldout="$data/reference/qwen7b_base_selfedits_round1.json" data.heldout_limit=20 \
    inner.seeds=1 sampler.max_new_tokens=256 \
    evaluate.conditions="[no_update,passage,passage_selfedit,passage_external]" \
    evaluate.external_selfedits="$data/reference/qwen7b_base_selfedits_round1.json" \
    "$@"
