#!/usr/bin/env bash
# The held-out search: each configuration is a full `fit` (2 rounds, new passages each round) on the
# built-in corpus at the screening size (12 passages per round, 16 held-out passages) unless it says
# otherwise, then experiments/heldout_table.py writes every run's held-out result to
# experiments/heldout_search.md. Runs already finished are skipped; `bash experiments/heldout_search.sh NAME...`
# runs only those. The notes file says what each run changes against conf/heldout.yaml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=${RUN_ROOT:-runs/heldout_search}
notes=experiments/heldout_search.tsv
screen=(data.per_round=12 data.heldout_limit=16)
declare -A runs=(
    [paper_mstep]="${screen[*]}"
    [mstep_lr3e-5]="${screen[*]} outer.lr=3e-5"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(printf '%s\n' "${!runs[@]}" | sort))
for name in "${names[@]}"; do
    bash scripts/run.sh python -m seal_lightning fit --config conf/heldout.yaml run_dir="$root/$name" ${runs[$name]}
done
bash scripts/run.sh python experiments/heldout_table.py --notes "$notes" "$root"/* > experiments/heldout_search.md
cat experiments/heldout_search.md
