"""Peak memory: one M-step at the paper's shapes, each phase of a 1-round fit, and a 7B projection.

    bash scripts/run.sh python benchmarks/memory.py

(1) One M-step training step on the built-in model at the paper's shapes (batch 10 x 1,024 tokens, LoRA
    r64 on all seven projections, float32), each setting of `outer.memory` in its own process, so each
    peak is that process's resident high-water mark. Without activation checkpointing the step is run at
    10 x 512 tokens: at 1,024 it does not fit this 24 GiB machine.
(2) A 1-round `fit` (the demo's settings, no held-out evaluation) with the memory settings off and on:
    the peak of every phase (round_1/phases.json), in GiB.
(3) The projected M-step peak for Qwen2.5-7B from the costs measured in (1) (the formula is printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3
REPO = Path(__file__).resolve().parents[1]
# Qwen2.5-7B (config.json): what the projection scales the built-in model's measured costs to.
QWEN_7B = {"parameters": 7.62e9, "layers": 28, "hidden": 3584, "intermediate": 18944, "lora_parameters": 161.5e6}
SETTINGS = {
    "whole batch": {"micro_batch_size": None, "activation_checkpointing": False},
    "checkpointing": {"micro_batch_size": None, "activation_checkpointing": True},
    "checkpointing, micro-batch 2": {"micro_batch_size": 2, "activation_checkpointing": True},
    "checkpointing, micro-batch 1": {"micro_batch_size": 1, "activation_checkpointing": True},
}


def one_step(setting: dict, tokens: int, rows: int) -> dict:
    """In this process: load the model, train one M-step step on random tokens; resident memory (GiB)."""
    import torch

    from seal_lightning.cli import quiet_libraries
    from seal_lightning.config import ModelConfig, OuterConfig, TrainingMemory
    from seal_lightning.examples import IGNORE_INDEX
    from seal_lightning.models import load_model, load_tokenizer
    from seal_lightning.mstep import ReSTEMPolicyModule
    from seal_lightning.profiling import peak_gib, reset_peak, resident_gib

    quiet_libraries()
    tokenizer = load_tokenizer(ModelConfig())
    model = load_model(ModelConfig())
    loaded = resident_gib()
    generator = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(rows):
        ids = torch.randint(0, len(tokenizer), (tokens,), generator=generator).tolist()
        # The passage is the prompt (no loss), the self-edit the completion: loss on the second half.
        examples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (tokens // 2) + ids[tokens // 2 :]})
    config = OuterConfig(epochs=1, batch_size=rows, memory=TrainingMemory(**setting))
    module = ReSTEMPolicyModule(model, config, seed=0)
    adapter = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    reset_peak()
    started = time.perf_counter()
    module.fit(examples, tokenizer, epochs=1, batch_size=rows)
    seconds = time.perf_counter() - started
    return {
        "loaded_gib": loaded,
        "peak_gib": peak_gib(),
        "seconds": seconds,
        "adapter_parameters": adapter,
        "loss": module.losses[0],
    }


def in_child(setting: dict, tokens: int, rows: int) -> dict:
    command = [sys.executable, __file__, "--step", json.dumps(setting), "--tokens", str(tokens), "--rows", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mstep_table(rows: int) -> dict[str, dict]:
    print(f"(1) one M-step step, built-in model, batch {rows}, LoRA r64 on all projections, float32")
    print(f"{'setting':<32} {'tokens':>7} {'peak GiB':>9} {'over loaded':>12} {'loss':>8}")
    results = {}
    for name, setting in SETTINGS.items():
        tokens = 1024 if setting["activation_checkpointing"] else 512
        result = in_child(setting, tokens, rows)
        results[name] = result | {"tokens": tokens}
        if "error" in result:
            print(f"{name:<32} {tokens:>7} {result['error']}")
            continue
        over = result["peak_gib"] - result["loaded_gib"]
        print(f"{name:<32} {tokens:>7} {result['peak_gib']:>9.2f} {over:>12.2f} {result['loss']:>8.4f}")
    return results


def fit_phases(memory_on: bool) -> list[dict]:
    """A 1-round fit on the demo's settings in its own process; its round's phase records."""
    with tempfile.TemporaryDirectory(prefix="seal-memory-") as run_dir:
        overrides = [
            "outer.rounds=1",
            "heldout.enabled=false",
            f"run_dir={run_dir}",
            f"outer.memory.activation_checkpointing={str(memory_on).lower()}",
            f"outer.memory.micro_batch_size={2 if memory_on else 'null'}",
        ]
        command = [sys.executable, "-m", "seal_lightning", "fit", "--config", "conf/demo.yaml", *overrides]
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(run_dir) / "round_1" / "phases.json").read_text())


def phases_table() -> None:
    print("\n(2) a 1-round fit (conf/demo.yaml, outer.rounds=1, no held-out): peak resident GiB per phase")
    before, after = fit_phases(memory_on=False), fit_phases(memory_on=True)
    print(f"{'phase':<14} {'start':>7} {'off: peak':>10} {'on: peak':>9} {'off: s':>7} {'on: s':>7}")
    for old, new in zip(before, after, strict=True):
        print(
            f"{old['name']:<14} {old['start_rss_gib']:>7.2f} {old['peak_rss_gib']:>10.2f} {new['peak_rss_gib']:>9.2f} "
            f"{old['seconds']:>7.1f} {new['seconds']:>7.1f}"
        )
    print(
        f"{'all phases':<14} {'':>7} {max(p['peak_rss_gib'] for p in before):>10.2f} "
        f"{max(p['peak_rss_gib'] for p in after):>9.2f}"
    )


def projection(results: dict[str, dict], rows: int) -> None:
    """Peak = weights + adapter state + activations: weights 2 bytes/parameter (bfloat16); the adapter in
    float32 with its gradient and AdamW's two moments (16 bytes/parameter); activations per token scaled
    from the built-in model by layers x hidden (checkpointing keeps one hidden state per layer and token,
    plus one layer's activations, which scale with hidden + intermediate)."""
    from seal_lightning.config import ModelConfig
    from seal_lightning.models import load_model

    model = load_model(ModelConfig())
    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    print("\n(3) projected M-step peak for Qwen2.5-7B (bfloat16 weights, float32 adapter), batch 10 x 1,024 tokens")
    print(f"    {projection.__doc__.split(':', 1)[1].strip()}")
    for name in ("whole batch", "checkpointing", "checkpointing, micro-batch 1"):
        result = results[name]
        if "error" in result:
            continue
        tokens = rows * result["tokens"] / (result.get("micro") or 1)
        adapter_bytes = 16 * result["adapter_parameters"]
        per_token = (result["peak_gib"] * GIB - result["loaded_gib"] * GIB - adapter_bytes) / tokens
        width = (QWEN_7B["hidden"] + QWEN_7B["intermediate"]) / (config.hidden_size + config.intermediate_size)
        layers = QWEN_7B["layers"] / config.num_hidden_layers
        scale = width * (1 if "checkpointing" in name else layers)
        target_tokens = rows * 1024 / (1 if "micro-batch 1" not in name else rows)
        peak = 2 * QWEN_7B["parameters"] + 16 * QWEN_7B["lora_parameters"] + per_token * scale * target_tokens
        if "checkpointing" in name:
            peak += QWEN_7B["layers"] * QWEN_7B["hidden"] * 2 * rows * 1024
        print(f"    {name:<32} {per_token / 1024:>8.1f} KiB/token here -> {peak / GIB:6.1f} GiB for 7B")
    del parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=10, help="M-step batch (the paper: 10)")
    parser.add_argument("--skip-fit", action="store_true", help="only the M-step table and the projection")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(one_step(json.loads(args.step), args.tokens, args.rows)))
        return
    results = mstep_table(args.rows)
    if not args.skip_fit:
        phases_table()
    projection(results, args.rows)


if __name__ == "__main__":
    main()
