#!/usr/bin/env bash
# SEAL across nodes without SLURM: run this on every node, with the same HEAD (the first node's address)
# and NODES; torchrun's c10d rendezvous numbers the ranks. One process per GPU.
#
#   HEAD=10.0.0.1 NODES=2 bash experiments/cluster/torchrun_multinode.sh outer.rounds=2
#
# As with SLURM, the checkout, SEAL_VENV and run_dir must be on a file system all nodes see.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${HEAD:?set HEAD to the address of the first node}" "${NODES:?set NODES to the number of nodes}"
gpus="${GPUS_PER_NODE:-$(nvidia-smi --list-gpus | wc -l)}"
export SEAL_ACCELERATOR="${SEAL_ACCELERATOR:-cuda}"
bash scripts/run.sh torchrun --nnodes="$NODES" --nproc_per_node="$gpus" \
    --rdzv_backend=c10d --rdzv_endpoint="$HEAD:${PORT:-29500}" --rdzv_id="${JOB_ID:-seal-lightning}" \
    -m seal_lightning fit --config conf/knowledge.yaml run_dir=runs/multinode-knowledge "$@"
