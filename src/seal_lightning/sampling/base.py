"""The `Sampler` seam: the outer loop asks for k completions per prompt and tells it of new policies.

Backends differ in how they hold the policy (a live `transformers` model here; an engine with a
LoRA request for vLLM), so the outer loop never calls a backend directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SamplerConfig
from seal_lightning.errors import SealError


@dataclass(frozen=True)
class Completion:
    """One sampled self-edit. `truncated`: it stopped at `sampler.max_new_tokens`, not at an end of
    sequence, so it is cut mid-way (counted per round; the M-step learns it without EOS)."""

    text: str
    truncated: bool = False


# prompts, adapter folders (one per prompt; None: the model without an adapter) -> greedy answers, in one batch.
AdapterAnswerer = Callable[[list[str], list[str | None]], list[str]]


class Sampler(Protocol):
    def sample(self, prompts: list[str], k: int, seeds: Sequence[int]) -> list[list[Completion]]:
        """k completions for each prompt (already chat-formatted), in prompt order, prompt i drawn with
        `seeds[i]`. Prompts of one `group_size(k)` group that share a seed are drawn together, from one
        random stream; a prompt's completions depend on nothing else (see `sampling/sharded.py`)."""
        ...

    def group_size(self, k: int) -> int:
        """How many prompts the backend draws together, in one batch and one random stream (1: each prompt
        from its own stream, so batches do not change what it draws)."""
        ...

    def update_policy(self, model: PreTrainedModel, path: str) -> None:
        """Sample from this policy from now on; `path` is where it was saved (for engines that reload)."""
        ...

    def answerer(self, max_new_tokens: int) -> AdapterAnswerer | None:
        """Where the backend serves saved adapters: a way to answer through many of them in one batch."""
        ...

    def close(self) -> None:
        """Release what the backend holds (an engine's worker process)."""
        ...


def build_sampler(
    config: SamplerConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    model_path: str | None = None,
    seed: int = 0,
) -> Sampler:
    """The configured backend. vLLM serves weights from disk, so it needs `model_path`, the saved policy folder."""
    if config.backend == "vllm":
        from seal_lightning.sampling.vllm import VLLMEngine, VLLMSampler, require_vllm

        require_vllm()
        if model_path is None:
            raise SealError("sampler.backend=vllm needs the policy's model folder (model_path) to start the engine")
        # The engine starts lazily, on the first sample, in the policy's dtype (float32 on the CPU).
        engine = VLLMEngine(model_path, config.vllm, dtype=getattr(model, "dtype", None), seed=seed)
        return VLLMSampler(config, engine)

    from seal_lightning.sampling.hf import TransformersSampler

    return TransformersSampler(config, model, tokenizer)
