#!/usr/bin/env bash
# Does the demo's held-out result hold under other random seeds? The demo (conf/demo.yaml: the corpus
# drawn with data.builtin_seed=1, the same passages every time) is run once per run seed (`seed`: the
# self-edits sampled, the inner loops' and the M-step's LoRA initialisations, the M-step's batch order,
# the held-out self-edits), then experiments/heldout_table.py writes each run's held-out changes to
# experiments/demo_seeds.md, with a last line that pools the seeds (a bootstrap that resamples the seeds
# and, apart, the passages). Finished runs are not redone: fit resumes them. Each run is kept in git without
# its weights (experiments/keep_records.py, under experiments/records/; RUN_ROOT must lie under runs/), and
# the table pools every seed kept there, so seeds run in another session or on another machine count
# without being run again.
# `bash experiments/demo_seeds.sh 0 1 2 3` runs those seeds (default: 0 1 2 3). Another setting on the same
# seeds: SETTING="outer.anchor=0 outer.epochs=2" RUN_ROOT=runs/demo_seeds_paper_mstep
# TABLE=experiments/demo_seeds_paper_mstep.md bash experiments/demo_seeds.sh
# Another config: CONFIG (default conf/demo.yaml), as experiments/heldout_seeds.sh does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
config=${CONFIG:-conf/demo.yaml}
root=${RUN_ROOT:-runs/demo_seeds}
table=${TABLE:-experiments/demo_seeds.md}
read -ra setting <<<"${SETTING:-}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2 3)
for seed in "${seeds[@]}"; do
    bash scripts/run.sh python -m seal_lightning fit --config "$config" run_dir="$root/seed_$seed" seed="$seed" "${setting[@]}"
done
kept=$(bash scripts/run.sh python experiments/keep_records.py "${seeds[@]/#/$root/seed_}" | tail -n 1)
bash scripts/run.sh python experiments/heldout_table.py --pooled "$(dirname "$kept")"/seed_* >"$table"
cat "$table"
