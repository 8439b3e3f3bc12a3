"""The `Sampler` seam: the outer loop asks for k completions per prompt and tells it of new policies.

Backends differ in how they hold the policy (a live `transformers` model here; an engine with a
LoRA request for vLLM), so the outer loop never calls a backend directly.
"""

from __future__ import annotations

from typing import Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SamplerConfig


class Sampler(Protocol):
    def sample(self, prompts: list[str], k: int, seed: int) -> list[list[str]]:
        """k completions for each prompt (already chat-formatted), in prompt order."""
        ...

    def update_policy(self, model: PreTrainedModel, path: str) -> None:
        """Sample from this policy from now on; `path` is where it was saved (for engines that reload)."""
        ...


def build_sampler(config: SamplerConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Sampler:
    from seal_lightning.sampling.hf import TransformersSampler

    return TransformersSampler(config, model, tokenizer)
