#!/usr/bin/env bash
# Start run directory TO from FROM's round-0 held-out results and round-1 E-step (self-edits, inner-loop
# scores, baselines), so a run that differs from FROM only in its M-step (outer.*) computes only what
# its M-step changes: the same starting policy, items, seeds and settings give the same numbers. Does
# nothing unless FROM finished round 1 and TO does not exist yet. FROM may be a run kept in git
# (experiments/keep_records.py), as experiments/heldout_mstep_versus.sh uses it.
#     bash experiments/share_estep.sh FROM TO
set -euo pipefail
from=$1 to=$2
[ -f "$from/round_1/summary.json" ] && [ ! -e "$to" ] || exit 0
mkdir -p "$to/heldout" "$to/round_1"
cp -r "$from"/heldout/round_0-* "$to/heldout/"
cp "$from"/round_1/{selfedits.json,scores.jsonl,baselines.jsonl} "$to/round_1/"
