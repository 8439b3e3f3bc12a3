"""Self-edits scored per minute: the reference code's inner loop against the project's inner loops.

    bash scripts/run.sh python benchmarks/inner_loop.py --passages 1 --selfedits 5 --seeds 3 --epochs 2

ref: the reference procedure (`reference_procedure.py`: documents padded to its `max_seq_length` of 2,048,
     `transformers.Trainer`, adapter written to disk and served by a vLLM server over HTTP, baseline
     answers regenerated per loop; F1), on the first `--reference-loops` loops (160 s each here);
ref256: the same with its `--max_seq_length 256`, on every loop;
(a) sequential PEFT runs, answers with `generate` (F1);
(b) batched adapters, answers through vLLM with one LoRARequest per prompt (F1);
(c) batched adapters with the answer log-likelihood reward;
(d) batched adapters, answers from one in-process `generate` with each row routed to its adapter (F1);
(e) sequential PEFT runs with the log-likelihood reward: (c)'s counterpart, whose rewards (c) must match.
All sides score the same self-edits with the same seeds, in this process (the reference's server in a
process of its own; engine starts are not counted). Generated-answer sides compare with the reference
at equal reward (F1); log-likelihood sides also with (e). Training alone (sequential PEFT runs against one
stack) is timed once more, and its FLOP/s reported as a fraction of this machine's fp32 matmul peak,
measured here too. Results go to MLflow.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path

import torch
from reference_procedure import PHASES, VLLMServer, reference_inner_loop
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.cli import quiet_libraries
from seal_lightning.config import (
    DataConfig,
    InnerConfig,
    ModelConfig,
    RewardConfig,
    SamplerConfig,
    SealConfig,
    TrackingConfig,
)
from seal_lightning.examples import IGNORE_INDEX
from seal_lightning.inner import adapted, tokenized
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.models import builtin_model_folder, load_model, load_tokenizer
from seal_lightning.multilora import stacked_adapters
from seal_lightning.sampling.hf import TransformersSampler
from seal_lightning.scorer import SelfEditScorer
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def training_seconds(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, updates: list, stacked: bool
) -> float:
    """Wall time of the inner loops' training alone: one PEFT run per (update, seed), or one stack."""
    start = time.perf_counter()
    if stacked:
        examples = [tokenized(update, tokenizer) for _, update, _ in updates]
        seeds = [seed for _, _, seed in updates]
        with stacked_adapters(policy, tokenizer, examples, seeds, [update.inner for _, update, _ in updates]):
            pass
    else:
        for _, update, seed in updates:
            with adapted(policy, tokenizer, update, seed):
                pass
    return time.perf_counter() - start


def training_flops(policy: PreTrainedModel, tokens: int, labelled: int) -> float:
    """A LoRA step on a frozen base: forward 2N and input gradients 2N FLOP per token, where the output
    projection runs on labelled tokens only (adapter and attention FLOPs are left out: a lower bound)."""
    head = policy.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in policy.parameters()) - head
    return 4 * (body * tokens + head * labelled)


NAMES = {
    "ref": "reference procedure, 2,048 tokens (F1)",
    "ref256": "reference procedure, 256 tokens (F1)",
    "a": "(a) sequential PEFT + generate (F1)",
    "d": "(d) batched + routed generate (F1)",
    "b": "(b) batched + vLLM LoRA answers (F1)",
    "c": "(c) batched + log-likelihood",
    "e": "(e) sequential PEFT + log-likelihood",
}
LOGLIK_SIDES = ("c", "e")


def reference_side(
    server: VLLMServer,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    domain: KnowledgeDomain,
    updates: list,
    max_seq_length: int,
) -> tuple[float, list[float], dict[str, float]]:
    """Seconds, per-loop rewards and seconds per phase of the reference's inner loops over `updates`."""
    phases = dict.fromkeys(PHASES, 0.0)
    rewards = []
    for passage, update, seed in updates:
        documents = [completion for _, completion in update.examples]
        reward, seconds = reference_inner_loop(
            server, policy, tokenizer, documents, domain.questions(passage), update.inner, seed, max_seq_length,
            RewardConfig(name="f1"),
        )  # fmt: skip
        rewards.append(reward)
        phases = {name: phases[name] + seconds[name] for name in PHASES}
    return sum(phases.values()), rewards, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1)
    parser.add_argument("--selfedits", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128, help="self-edit length")
    parser.add_argument("--reference-loops", type=int, default=3, help="loops the reference runs at 2,048 tokens")
    parser.add_argument("--skip", default="", help="comma-separated sides to skip: " + ",".join(NAMES))
    parser.add_argument("--run-dir", default="runs/benchmarks")
    args = parser.parse_args()
    quiet_libraries()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # side (b)'s engine: its start-up log is not the table
    skip = set(filter(None, args.skip.split(",")))

    data = DataConfig(builtin_split="validation", limit=args.passages)
    tokenizer, policy = load_tokenizer(ModelConfig()), load_model(ModelConfig())
    # The same self-edits under sequential and batched inner-loop settings.
    domains = {
        batched: KnowledgeDomain(
            SealConfig(data=data, inner=InnerConfig(epochs=args.epochs, batched=batched)), tokenizer
        )
        for batched in (False, True)
    }
    passages = domains[False].load()
    sampler = TransformersSampler(SamplerConfig(max_new_tokens=args.max_new_tokens), policy, tokenizer)
    prompts = [domains[False].selfedit_prompt(p) for p in passages]
    selfedits = sampler.sample(prompts, args.selfedits, seeds=[0] * len(prompts))
    seeds = list(range(args.seeds))
    updates = {
        batched: [
            (p, domain.update(p, edit.text), seed)
            for p, edits in zip(passages, selfedits, strict=True)
            for edit in edits
            for seed in seeds
        ]
        for batched, domain in domains.items()
    }
    count = len(updates[False])
    examples = [example for _, update, _ in updates[False] for example in tokenized(update, tokenizer)]
    tokens = args.epochs * sum(len(example["input_ids"]) for example in examples)
    labelled = args.epochs * sum(label != IGNORE_INDEX for example in examples for label in example["labels"])
    peak = matmul_peak_flops()
    # side -> (seconds, per-loop rewards, loops run)
    results: dict[str, tuple[float, list[float], int]] = {}
    phases: dict[str, dict[str, float]] = {}

    reference_runs = {"ref": (2048, updates[False][: args.reference_loops]), "ref256": (256, updates[False])}
    if not set(reference_runs) <= skip:
        log = Path(args.run_dir) / "vllm_server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with VLLMServer(str(builtin_model_folder()), InnerConfig().lora.rank, log) as server:
            print("vLLM server started (not counted)", flush=True)
            for name, (length, loops) in reference_runs.items():
                if name not in skip:
                    seconds, rewards, phases[name] = reference_side(
                        server, policy, tokenizer, domains[False], loops, length
                    )
                    results[name] = (seconds, rewards, len(loops))
                    print(f"{name}: {len(loops)} inner loops in {seconds:.1f} s", flush=True)

    def timed(name: str, scorer: SelfEditScorer) -> None:
        start = time.perf_counter()
        rewards = [result.reward for result in scorer.score_many(updates[name not in ("a", "e")])]
        results[name] = (time.perf_counter() - start, rewards, count)
        print(f"{name}: {count} inner loops in {results[name][0]:.1f} s", flush=True)

    f1 = RewardConfig(name="f1")
    sides = {
        "a": lambda: SelfEditScorer(policy, tokenizer, domains[False], f1),
        "d": lambda: SelfEditScorer(policy, tokenizer, domains[True], f1),
        "c": lambda: SelfEditScorer(policy, tokenizer, domains[True], RewardConfig()),
        "e": lambda: SelfEditScorer(policy, tokenizer, domains[False], RewardConfig()),
    }
    for name, make in sides.items():
        if name not in skip:
            timed(name, make())
    if "b" not in skip:
        from seal_lightning.sampling.vllm import VLLMEngine, generate_answers

        engine = VLLMEngine(builtin_model_folder(), SamplerConfig().vllm, dtype=torch.float32, seed=0)
        generate_answers(engine, ["warm-up"], [None], 1)
        print("vLLM engine started (not counted)", flush=True)
        answerer = partial(generate_answers, engine, max_new_tokens=f1.max_new_tokens)
        timed("b", SelfEditScorer(policy, tokenizer, domains[True], f1, answerer=answerer))
        engine.close()

    training = {stacked: training_seconds(policy, tokenizer, updates[stacked], stacked) for stacked in (False, True)}
    flops = training_flops(policy, tokens, labelled)
    print(f"\nmatmul peak (fp32, 2048^2): {peak / 1e9:.1f} GFLOP/s; {count} inner loops, {tokens} training tokens")
    metrics = {"matmul_peak_gflops": peak / 1e9} | report(results)
    for name, seconds in phases.items():
        shares = ", ".join(f"{phase} {value / sum(seconds.values()):.0%}" for phase, value in seconds.items())
        print(f"{NAMES[name]}: {shares}")
    print(f"\n{'training only':<44} {'seconds':>10} {'vs seq.':>8} {'GFLOP/s':>8} {'% peak':>7}")
    for stacked, label in ((False, "sequential PEFT runs"), (True, "one stack of adapters")):
        rate = flops / training[stacked]
        speedup = training[False] / training[stacked]
        print(f"{label:<44} {training[stacked]:>10.1f} {speedup:>7.2f}x {rate / 1e9:>8.1f} {rate / peak:>7.0%}")
        name = "stacked" if stacked else "sequential"
        metrics |= {f"train_{name}_seconds": training[stacked], f"train_{name}_peak_fraction": rate / peak}
    store = RunStore(args.run_dir)
    tracker = Tracker(TrackingConfig(experiment="benchmarks"), store)
    with tracker.run(f"inner_loop_{time.strftime('%Y%m%d-%H%M%S')}", "inner_loop", vars(args)):
        tracker.log_metrics(metrics)


def report(results: dict[str, tuple[float, list[float], int]]) -> dict[str, float]:
    """The table: loops per minute, ratios against the reference (at 2,048 and 256) and, for log-likelihood
    sides, against (e); the metrics it shows."""
    rates = {name: loops / seconds * 60 for name, (seconds, _, loops) in results.items()}

    def ratio(name: str, against: str) -> str:
        return f"{rates[name] / rates[against]:.2f}x" if against in rates else "-"

    print(f"{'side':<42} {'loops':>5} {'loops/min':>9} {'vs ref':>8} {'vs ref256':>9} {'vs (e)':>7}  mean reward")
    metrics: dict[str, float] = {}
    for name in NAMES:
        if name not in results:
            continue
        _, rewards, loops = results[name]
        versus_e = ratio(name, "e") if name in LOGLIK_SIDES else ""
        mean = sum(rewards) / len(rewards)
        print(
            f"{NAMES[name]:<42} {loops:>5} {rates[name]:>9.2f} {ratio(name, 'ref'):>8} {ratio(name, 'ref256'):>9} "
            f"{versus_e:>7}  {mean:.4f}"
        )
        metrics |= {f"{name}_loops_per_min": rates[name], f"{name}_mean_reward": mean}
        metrics |= {f"{name}_vs_{ref}": rates[name] / rates[ref] for ref in ("ref", "ref256") if ref in rates}
    if "c" in results and "e" in results:
        gap = max(abs(x - y) for x, y in zip(results["c"][1], results["e"][1], strict=True))
        print(f"largest per-loop reward difference, (c) against (e): {gap:.2e}")
        metrics["c_e_max_reward_gap"] = gap
    return metrics


if __name__ == "__main__":
    main()
