#!/usr/bin/env bash
# ARC on the CPU: one ReST-EM round on four small built-in tasks (domain=arc's defaults), then the paper's
# table (ICL, standard TTT, the base model's self-edits, the trained policy's, the oracle) on those tasks
# and on the 12 tasks of ../shared/data/arc (skipped when absent). Extra arguments go to every command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${SEAL_SHARED_DATA:-../shared/data}
seal() { bash scripts/run.sh python -m seal_lightning "$1" domain=arc "${@:2}"; }
policy=runs/arc/round_1/policy
seal fit "$@"
seal evaluate evaluate.policy=$policy "$@"
if [ -f "$data/arc/train_challenges.json" ]; then
    seal evaluate evaluate.policy=$policy data.path="$data/arc/train_challenges.json" arc.tasks=null "$@"
fi
