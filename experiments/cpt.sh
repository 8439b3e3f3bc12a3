#!/usr/bin/env bash
# Single passage against continued pretraining (the paper's two settings) on 16 held-out passages of corpus
# seed 1, for the base model and the policy of experiments/heldout.sh (run that first). Each row trains one
# update on the documents of 1 passage, then of all 16 at once, and prints the table with each row minus the
# row above it (95% paired intervals). About 6 and 8 minutes on a 2-core CPU. Extra arguments are overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
policy=${POLICY:-runs/heldout/round_2/policy}
for n in 1 16; do
    bash scripts/run.sh python -m seal_lightning evaluate run_dir=runs/cpt data.builtin_seed=1 data.heldout_limit=16 \
        evaluate.policy="$policy" "evaluate.conditions=[no_update,passage,passage_selfedit,policy_selfedit]" \
        "evaluate.metrics=[answer_loglik,token_accuracy]" inner.epochs=5 inner.seeds=1 inner.batched=true \
        sampler.max_new_tokens=128 evaluate.cpt_passages=$n "$@"
done
