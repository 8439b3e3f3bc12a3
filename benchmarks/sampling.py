"""E-step sampling speed: vLLM against `transformers.generate`, same prompts and settings, one process.

    bash scripts/run.sh python benchmarks/sampling.py --passages 8 --k 2 --max-new-tokens 128

Prompts are the self-edit prompts of built-in passages, chat-formatted. Generated tokens are counted
by re-tokenizing each completion with the model's tokenizer, so both backends are counted the same
way. The vLLM engine's start time is printed on its own and kept out of the ratio: a run starts the
engine once and samples from it every round.
"""

from __future__ import annotations

import argparse
import time

from seal_lightning.config import DataConfig, ModelConfig, SamplerConfig
from seal_lightning.knowledge.data import load_passages
from seal_lightning.knowledge.domain import selfedit_prompt
from seal_lightning.models import builtin_model_folder, chat_prompt, load_model, load_tokenizer
from seal_lightning.sampling.hf import TransformersSampler
from seal_lightning.sampling.vllm import VLLMEngine, VLLMSampler


def count_tokens(tokenizer, completions: list[list[str]]) -> int:
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for texts in completions for text in texts)


def timed_sample(sampler, prompts: list[str], k: int, seed: int) -> tuple[list[list[str]], float]:
    start = time.perf_counter()
    completions = sampler.sample(prompts, k, [seed] * len(prompts))
    return completions, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = SamplerConfig(k=args.k, temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens)
    tokenizer = load_tokenizer(ModelConfig())
    passages = load_passages(DataConfig(limit=args.passages))
    prompts = [chat_prompt(tokenizer, selfedit_prompt(passage)) for passage in passages]
    prompt_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    print(
        f"{len(prompts)} self-edit prompts ({prompt_tokens} prompt tokens), k={args.k}, temperature 1.0, "
        f"top_p 0.95, max_new_tokens {args.max_new_tokens}, float32"
    )

    model = load_model(ModelConfig())
    hf_completions, hf_s = timed_sample(TransformersSampler(config, model, tokenizer), prompts, args.k, args.seed)

    engine = VLLMEngine(builtin_model_folder(), config.vllm, seed=args.seed)
    try:
        start = time.perf_counter()
        engine.llm  # noqa: B018 - start the engine now, so its start is timed on its own
        start_s = time.perf_counter() - start
        vllm_completions, vllm_s = timed_sample(VLLMSampler(config, engine), prompts, args.k, args.seed)
    finally:
        engine.close()

    rows = []
    for name, completions, seconds in (("transformers", hf_completions, hf_s), ("vllm", vllm_completions, vllm_s)):
        tokens = count_tokens(tokenizer, completions)
        rows.append((name, sum(map(len, completions)), tokens, seconds, tokens / seconds))
    print(f"vLLM engine start: {start_s:.1f} s (not in the ratio)")
    print(f"{'backend':<14}{'completions':>12}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}")
    for name, count, tokens, seconds, rate in rows:
        print(f"{name:<14}{count:>12}{tokens:>8}{seconds:>9.1f}{rate:>10.1f}")
    print(f"ratio vllm/transformers (tokens/s): {rows[1][4] / rows[0][4]:.2f}x")


if __name__ == "__main__":
    main()
