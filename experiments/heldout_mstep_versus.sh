#!/usr/bin/env bash
# The chosen M-step (a KL anchor of weight 10, 6 epochs: conf/heldout.yaml) against the paper's (no anchor,
# 2 epochs), paired, at the size of experiments/heldout.sh: 2 rounds of 24 new passages, 40 held-out
# passages, on the corpus drawn with seed 1, which the search (experiments/heldout_search.sh, seed 0)
# did not look at. For each run seed both settings share round 0's held-out results and round 1's E-step
# (experiments/share_estep.sh): the M-step is the first thing they differ in. Then
# experiments/heldout_table.py writes experiments/heldout_mstep_versus.md: each setting's changes from
# round 0, and the anchored run's changes minus the paper's, paired by seed and passage.
# `bash experiments/heldout_mstep_versus.sh 0 1` runs those run seeds (default: 0). Finished runs resume. The
# anchored runs are experiments/heldout_seeds.sh's (ANCHORED_ROOT, default runs/heldout_seeds), not run twice.
# Both runs are kept in git without weights (experiments/keep_records.py), and the tables pair every seed
# whose paper run is kept there, including seeds run in another session. The paper's run starts from the
# kept anchored run, so a seed whose anchored run was kept in another session costs only the paper's run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=${RUN_ROOT:-runs/heldout_mstep}
anchored_root=${ANCHORED_ROOT:-runs/heldout_seeds}
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0)
places=$(bash scripts/run.sh python experiments/keep_records.py --where "$root/paper" "$anchored_root")
kept=${places%%$'\n'*} kept_anchored_root=${places#*$'\n'}  # one line per run given, in order
for seed in "${seeds[@]}"; do
    anchored=$anchored_root/seed_$seed paper=$root/paper/seed_$seed
    if [ -d "$anchored" ] || [ ! -d "$kept_anchored_root/seed_$seed" ]; then  # else kept in another session
        bash experiments/heldout.sh run_dir="$anchored" seed="$seed"
        bash scripts/run.sh python experiments/keep_records.py "$anchored"
    fi
    bash experiments/share_estep.sh "$kept_anchored_root/seed_$seed" "$paper"
    bash experiments/heldout.sh run_dir="$paper" seed="$seed" outer.anchor=0 outer.epochs=2
    bash scripts/run.sh python experiments/keep_records.py "$paper"
done
kept_paper=("$kept"/seed_*)
kept_anchored=("${kept_paper[@]/#"$kept"/"$kept_anchored_root"}")
{
    echo "The chosen M-step (conf/heldout.yaml: outer.anchor=10 outer.epochs=6), and it against the paper's:"
    echo
    bash scripts/run.sh python experiments/heldout_table.py "${kept_anchored[@]}" --versus "${kept_paper[@]}"
    echo
    echo "The paper's M-step (outer.anchor=0 outer.epochs=2) on the same seeds:"
    echo
    bash scripts/run.sh python experiments/heldout_table.py "${kept_paper[@]}"
    echo "The paper's runs start from the anchored runs' round 1 (experiments/share_estep.sh): their"
    echo "\"training min\" counts their round-1 M-step and round 2 only."
} >experiments/heldout_mstep_versus.md
cat experiments/heldout_mstep_versus.md
