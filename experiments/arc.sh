#!/usr/bin/env bash
# ARC on the CPU: one ReST-EM round on four small built-in training tasks (domain=arc's defaults), then the
# paper's table (ICL, standard TTT, the base model's self-edits, the trained policy's, the oracle) on held-out
# tasks the policy never saw: four small ones of the reference code's evaluation set, and the eight tasks of
# ../shared/data/arc that the round did not train on (skipped when absent). Extra arguments go to every command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${SEAL_SHARED_DATA:-../shared/data}
seal() { bash scripts/run.sh python -m seal_lightning "$1" domain=arc "${@:2}"; }
policy=runs/arc/round_1/policy
seal fit "$@"
seal evaluate evaluate.policy=$policy "$@"
if [ -f "$data/arc/train_challenges.json" ]; then
    seal evaluate evaluate.policy=$policy data.heldout="$data/arc/train_challenges.json" \
        "arc.eval_tasks=[44f52bb0,4be741c5,5614dbcf,5bd6f4ac,67e8384a,6d0aefbc,8d5021e8,8e1813be]" "$@"
fi
