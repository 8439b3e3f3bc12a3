#!/usr/bin/env bash
# The GPU path in one short run, for a machine with 2 GPUs: 1 ReST-EM round of the demo on 2 data-parallel
# ranks under torchrun (NCCL), bfloat16 base weights with float32 adapters, one vLLM engine per rank
# sampling and answering through LoRA requests; again with the M-step under FSDP (outer.strategy=fsdp).
# Then the same round in one process, and a comparison.
# Rewards agree to bfloat16 precision, not bit for bit (NCCL and cuBLAS choose their own orders); what
# must hold: exit 0 twice, the same self-edits and kept items, every rank's loops in the scores.
#
#   bash experiments/gpu_smoke.sh          # about 7 minutes on two H100-class GPUs, most of it engine start
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SEAL_ACCELERATOR=cuda
nvidia-smi --query-gpu=name,memory.total --format=csv
smoke=(--config conf/demo.yaml outer.rounds=1 heldout.enabled=false sampler.backend=vllm
    sampler.vllm.gpu_memory_utilization=0.4 tracking.experiment=gpu-smoke)
rm -rf runs/gpu_smoke_2 runs/gpu_smoke_2fsdp runs/gpu_smoke_1
bash scripts/run.sh torchrun --standalone --nproc_per_node=2 -m seal_lightning fit "${smoke[@]}" run_dir=runs/gpu_smoke_2
bash scripts/run.sh torchrun --standalone --nproc_per_node=2 -m seal_lightning fit "${smoke[@]}" outer.strategy=fsdp \
    run_dir=runs/gpu_smoke_2fsdp
bash scripts/run.sh python -m seal_lightning fit "${smoke[@]}" run_dir=runs/gpu_smoke_1
bash scripts/run.sh python - <<'PY'
import json

from safetensors.torch import load_file

from seal_lightning.store import RunStore

two, one = RunStore("runs/gpu_smoke_2"), RunStore("runs/gpu_smoke_1")
for name in ("selfedits.json", "kept.json"):
    same = two.read_json(f"round_1/{name}") == one.read_json(f"round_1/{name}")
    print(f"{name}: {'same' if same else 'DIFFERENT'}")
rewards = {(r["item"], r["sample"]): r["reward"] for r in two.read_jsonl("round_1/scores.jsonl")}
alone = {(r["item"], r["sample"]): r["reward"] for r in one.read_jsonl("round_1/scores.jsonl")}
print(f"largest reward difference, 2 ranks vs 1: {max(abs(rewards[k] - alone[k]) for k in alone):.2e}")
print(f"loops scored by rank 1: {len(two.read_jsonl('round_1/scores.rank1.jsonl'))} of {len(rewards)}")
ddp, fsdp = (load_file(f"runs/{run}/round_1/policy/model.safetensors") for run in ("gpu_smoke_2", "gpu_smoke_2fsdp"))
gap = max(float((ddp[k].float() - fsdp[k].float()).abs().max()) for k in ddp)
print(f"merged policies, FSDP vs DDP M-step: largest difference {gap:.2e}")
print(json.dumps(two.read_json("round_1/summary.json"), indent=1))
PY
