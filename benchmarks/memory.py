"""Peak memory: the output head, one M-step at the paper's shapes, each phase of a 1-round fit, a 7B projection.

    bash scripts/run.sh python benchmarks/memory.py

(0) log p(target) and its gradient at 2,048 positions through the built-in model's frozen vocabulary
    projection: full logits by autograd (as a model's own loss computes them) against `output_head.py` at
    1,024, 512 and 256 positions per chunk, each in its own process; peak over the loaded model, seconds,
    and the sum of the log-probabilities (equal up to float rounding).
(1) One M-step training step on the built-in model at the paper's shapes (batch 10 x 1,024 tokens, LoRA
    r64 on all seven projections, float32), each setting of `outer.memory` in its own process, so each
    peak is that process's resident high-water mark. The whole batch without checkpointing is run at
    10 x 512 tokens: at 1,024 it does not fit this 24 GiB machine.
(2) A 1-round `fit` (the demo's settings, no held-out evaluation), its M-step on the whole batch ("off") and
    with checkpointing and micro-batch 2 ("on"): the peak of every phase (round_1/phases.json), in GiB.
(3) The projected M-step peak for Qwen2.5-7B from the costs measured in (1) (the formula is printed).
(4) The floor of a fit's process before any of its work, in a new process: resident GiB after `fit`'s
    imports, with the built-in model loaded, and after one forward pass (64 tokens, no gradient), against
    3x the model's weights (issue 16's goal for the demo's peak).
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
# LoRA r64 on its seven projections: 64 x (7168 + 4096 + 4096 + 7168 + 3 x 22528) per layer, 28 layers.
QWEN_7B = {
    "parameters": 7.62e9,
    "layers": 28,
    "hidden": 3584,
    "intermediate": 18944,
    "vocab": 152064,
    "lora_parameters": 161.5e6,
}
SETTINGS = {
    "whole batch": {"micro_batch_size": None, "activation_checkpointing": False},
    "micro-batch 1": {"micro_batch_size": 1, "activation_checkpointing": False},
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


def head_pass(positions: int, chunk_rows: int | None) -> dict:
    """In this process: log p(target) at random hidden states and its gradient, through the built-in model's
    frozen head `chunk_rows` positions at a time (None: full logits by autograd)."""
    import torch
    from torch.nn import functional as F

    from seal_lightning.cli import quiet_libraries
    from seal_lightning.config import ModelConfig
    from seal_lightning.models import load_model
    from seal_lightning.output_head import output_head, target_log_probs
    from seal_lightning.profiling import peak_gib, reset_peak, resident_gib

    quiet_libraries()
    head = output_head(load_model(ModelConfig()).requires_grad_(False))
    float(head.weight.sum())  # the model file is memory-mapped: page the head in before the peak is reset
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(positions, head.in_features, generator=generator).requires_grad_()
    targets = torch.randint(0, head.out_features, (positions,), generator=generator)
    loaded = resident_gib()
    reset_peak()
    started = time.perf_counter()
    if chunk_rows is None:
        log_probs = -F.cross_entropy(head(hidden), targets, reduction="none")
    else:
        log_probs, _ = target_log_probs(head, hidden, targets, chunk_rows)
    log_probs.sum().backward()
    return {
        "peak_gib": peak_gib(),
        "loaded_gib": loaded,
        "seconds": time.perf_counter() - started,
        "total": float(log_probs.sum()),
    }


def floor_pass() -> dict:
    """In this process: resident GiB after `fit`'s imports, with the model loaded, after one forward pass."""
    import lightning  # noqa: F401
    import mlflow  # noqa: F401
    import torch

    import seal_lightning.multilora
    import seal_lightning.outer
    import seal_lightning.tracking  # noqa: F401
    from seal_lightning.cli import quiet_libraries
    from seal_lightning.config import ModelConfig
    from seal_lightning.models import load_model
    from seal_lightning.profiling import resident_gib

    quiet_libraries()
    imported = resident_gib()
    model = load_model(ModelConfig())
    loaded = resident_gib()
    with torch.no_grad():
        model(torch.arange(64).unsqueeze(0))
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / GIB
    return {"imports": imported, "loaded": loaded, "forward": resident_gib(), "weights": weights}


def floor_table() -> None:
    result = in_child(["--floor"])
    print("(4) a fit's process before any of its work: resident GiB")
    if "error" in result:
        print(f"    {result['error']}")
        return
    rows = [
        ("after fit's imports (torch, transformers, PEFT, Lightning, MLflow)", result["imports"]),
        ("the built-in model loaded (its file memory-mapped)", result["loaded"]),
        ("after one forward pass (the weights paged in)", result["forward"]),
        (f"3x the model's weights ({result['weights']:.3f} GiB): the goal for the demo's peak", 3 * result["weights"]),
    ]
    for label, value in rows:
        print(f"    {label:<72} {value:6.3f}")


def head_table(positions: int) -> None:
    print(f"(0) log p(target) and its gradient at {positions} positions, the built-in model's head, float32")
    print(f"{'setting':<26} {'over loaded GiB':>16} {'seconds':>8} {'memory':>7} {'time':>6} {'sum of log p':>14}")
    full = None
    for name, chunk_rows in (
        ("full logits (autograd)", None),
        ("chunks of 1,024", 1024),
        ("chunks of 512", 512),
        ("chunks of 256", 256),
    ):
        result = in_child(["--head", json.dumps([positions, chunk_rows])])
        if "error" in result:
            print(f"{name:<26} {result['error']}")
            continue
        over = result["peak_gib"] - result["loaded_gib"]
        full = full or (over, result["seconds"])
        print(
            f"{name:<26} {over:>16.3f} {result['seconds']:>8.2f} {over / full[0]:>6.2f}x "
            f"{result['seconds'] / full[1]:>5.2f}x {result['total']:>14.4f}"
        )
    print()


def in_child(arguments: list[str]) -> dict:
    """Run this script with `arguments` in a new process (a peak of its own); its last line, parsed."""
    command = [sys.executable, __file__, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mstep_table(rows: int) -> dict[str, dict]:
    print(f"(1) one M-step step, built-in model, batch {rows}, LoRA r64 on all projections, float32")
    print(f"{'setting':<32} {'tokens':>7} {'peak GiB':>9} {'over loaded':>12} {'seconds':>8} {'loss':>8}")
    results = {}
    for name, setting in SETTINGS.items():
        tokens = 512 if setting["micro_batch_size"] is None and not setting["activation_checkpointing"] else 1024
        result = in_child(["--step", json.dumps(setting), "--tokens", str(tokens), "--rows", str(rows)])
        results[name] = result | {"tokens": tokens}
        if "error" in result:
            print(f"{name:<32} {tokens:>7} {result['error']}")
            continue
        over = result["peak_gib"] - result["loaded_gib"]
        print(
            f"{name:<32} {tokens:>7} {result['peak_gib']:>9.2f} {over:>12.2f} {result['seconds']:>8.1f} "
            f"{result['loss']:>8.4f}"
        )
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
    print(f"{'phase':<26} {'start':>7} {'off: peak':>10} {'on: peak':>9} {'off: s':>7} {'on: s':>7}")
    for old, new in zip(before, after, strict=True):
        print(
            f"{old['name']:<26} {old['start_rss_gib']:>7.2f} {old['peak_rss_gib']:>10.2f} {new['peak_rss_gib']:>9.2f} "
            f"{old['seconds']:>7.1f} {new['seconds']:>7.1f}"
        )
    print(
        f"{'all phases':<14} {'':>7} {max(p['peak_rss_gib'] for p in before):>10.2f} "
        f"{max(p['peak_rss_gib'] for p in after):>9.2f}"
    )


def projection(results: dict[str, dict], rows: int) -> None:
    """M-step peak = weights + adapter state + activations of one micro-batch + one head chunk.
    Weights: 2 bytes/parameter (bfloat16). Adapter: float32 parameter, gradient and AdamW's two moments,
    16 bytes/parameter. Activations: A bytes/token, measured here on the whole batch without
    checkpointing ((peak - loaded - adapter state) / tokens, the largest token count, so fixed costs weigh
    least), scaled by layers x (hidden + intermediate) and by 2/4 (bfloat16); with checkpointing, one
    layer's share of that plus one hidden state per layer and token. Head chunk: one bfloat16 buffer of
    CHUNK_ROWS x vocabulary logits and its float32 copy. A GPU's caching allocator is assumed to add nothing."""
    from transformers import AutoConfig

    from seal_lightning.models import builtin_model_folder
    from seal_lightning.output_head import CHUNK_ROWS

    measured = results.get("whole batch", {})
    if "peak_gib" not in measured:
        return
    config = AutoConfig.from_pretrained(builtin_model_folder())
    per_token = (measured["peak_gib"] - measured["loaded_gib"]) * GIB - 16 * measured["adapter_parameters"]
    per_token /= rows * measured["tokens"]
    width = (QWEN_7B["hidden"] + QWEN_7B["intermediate"]) / (config.hidden_size + config.intermediate_size)
    depth = QWEN_7B["layers"] / config.num_hidden_layers
    full = per_token * width * depth * 0.5
    checkpointed = full / QWEN_7B["layers"] + QWEN_7B["layers"] * QWEN_7B["hidden"] * 2
    fixed = 2 * QWEN_7B["parameters"] + 16 * QWEN_7B["lora_parameters"] + CHUNK_ROWS * QWEN_7B["vocab"] * (2 + 4)
    print(f"\n(3) projected M-step peak for Qwen2.5-7B, batch {rows} x 1,024 tokens, LoRA r64 on all projections")
    print("    " + " ".join(projection.__doc__.split()))
    print(
        f"    A = {per_token / 1024:.0f} KiB/token here -> {full / 1024:.0f} KiB/token for 7B "
        f"({checkpointed / 1024:.0f} KiB with checkpointing); fixed part {fixed / GIB:.1f} GiB"
    )
    for micro in (rows, 1):
        for name, cost in (("no checkpointing", full), ("checkpointing", checkpointed)):
            peak = fixed + cost * micro * 1024
            print(f"    micro-batch {micro:>2}, {name:<17} {peak / GIB:6.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--head", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=10, help="M-step batch (the paper: 10)")
    parser.add_argument("--positions", type=int, default=2048, help="positions through the head in (0)")
    parser.add_argument("--head-only", action="store_true", help="only the output head's table (0)")
    parser.add_argument("--skip-fit", action="store_true", help="no 1-round fit (2)")
    parser.add_argument("--floor-only", action="store_true", help="only the process's floor (4)")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(one_step(json.loads(args.step), args.tokens, args.rows)))
        return
    if args.head:
        print(json.dumps(head_pass(*json.loads(args.head))))
        return
    if args.floor:
        print(json.dumps(floor_pass()))
        return
    if args.floor_only:
        floor_table()
        return
    head_table(args.positions)
    if args.head_only:
        return
    results = mstep_table(args.rows)
    if not args.skip_fit:
        phases_table()
    projection(results, args.rows)
    floor_table()


if __name__ == "__main__":
    main()
