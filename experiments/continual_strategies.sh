#!/usr/bin/env bash
# The README's forgetting tables: each strategy absorbs the same 8 self-edits in the same 4 random orders,
# on the built-in stream and, when ../shared/data is there, on 8 SQuAD passages (conf/continual_squad.yaml);
# naive also under the paper's protocol (continual.resample=true). Then `compare` prints every table and
# writes the figures, the trade-off figure with one point per strategy and setting. Extra arguments are
# config overrides for every `continual` run. Run time on a 2-core CPU: about 3.5 hours (see the README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${RUN_DIR:-runs}
data=${SEAL_SHARED_DATA:-../shared/data}
mkdir -p "$runs"
# One MLflow store for every setting, so that compare reads them side by side (artifacts beside it).
store="sqlite:///$(cd "$runs" && pwd)/continual.db"
continual() { bash scripts/run.sh python -m seal_lightning continual "$@" tracking.tracking_uri="$store"; }

continual --config conf/continual.yaml run_dir="$runs/continual" "$@"
continual --config conf/continual.yaml run_dir="$runs/continual_resample" continual.resample=true \
    continual.strategy=naive tracking.experiment=continual-resample "$@"
experiments=continual-builtin,continual-resample
if [[ -d "$data/squad" ]]; then
    continual --config conf/continual_squad.yaml run_dir="$runs/continual_squad" \
        data.path="$data/squad/train_round1.json" "$@"
    experiments+=,continual-squad
fi
extra=()
if [[ -f "$data/reference/paper_forgetting_matrix.json" ]]; then
    extra=(--reference "$data/reference/paper_forgetting_matrix.json")
fi
bash scripts/run.sh python -m seal_lightning compare --config conf/continual.yaml run_dir="$runs/continual" \
    tracking.tracking_uri="$store" --experiment "$experiments" "${extra[@]}"
