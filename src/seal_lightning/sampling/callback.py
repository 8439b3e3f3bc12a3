"""Sampling as a ReST-EM callback: it owns the sampler's life across rounds.

The vLLM engine is started once per command and shut down at the end; before each E-step the
round's merged policy is loaded into it in place (`reload_weights`). That is cheaper than serving
the M-step adapter through a `LoRARequest`: a reload reads the weights once per round, while a
LoRA request adds adapter compute to every sampled token, and adapters of successive rounds do not
stack (round r's adapter was trained on round r-1's merged policy), so a reload is needed anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.config import RewardConfig, SamplerConfig
from seal_lightning.sampling.base import AdapterAnswerer, Sampler, build_sampler

if TYPE_CHECKING:
    from seal_lightning.outer import ReSTEM


class SamplingCallback(ReSTEMCallback):
    """Gives the E-step a sampler on the current round's policy: built once, told of each new policy, closed."""

    def __init__(self, config: SamplerConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.sampler: Sampler | None = None

    def before_e_step(self, restem: ReSTEM, round_index: int, policy: PreTrainedModel, policy_path: str) -> None:
        self.sampler_on(policy, policy_path, restem.config.seed)

    def sampler_on(self, policy: PreTrainedModel, policy_path: str, seed: int) -> Sampler:
        """The command's one sampler, sampling from `policy` (saved at `policy_path`) from now on."""
        if self.sampler is None:
            self.sampler = build_sampler(self.config, policy, self.tokenizer, policy_path, seed=seed)
        self.sampler.update_policy(policy, policy_path)
        return self.sampler

    def answerer(self, reward: RewardConfig) -> AdapterAnswerer | None:
        """A way to answer through many saved adapters in one batch, where the backend has one."""
        return None

    def on_restem_end(self, restem: ReSTEM) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None


class VLLMSamplingCallback(SamplingCallback):
    """One vLLM engine (started lazily, at the first sample) for the whole command; fails early if absent."""

    def on_restem_start(self, restem: ReSTEM) -> None:
        from seal_lightning.sampling.vllm import require_vllm

        require_vllm()

    def answerer(self, reward: RewardConfig) -> AdapterAnswerer | None:
        from seal_lightning.sampling.vllm import VLLMSampler, generate_answers

        serve = self.config.vllm.serve_answers
        if not (torch.cuda.is_available() if serve is None else serve):
            return None
        sampler = self.sampler
        assert isinstance(sampler, VLLMSampler), "answers go through the engine once a round has started"
        return lambda prompts, adapters: generate_answers(sampler.engine, prompts, adapters, reward.max_new_tokens)


def build_sampling_callback(config: SamplerConfig, tokenizer: PreTrainedTokenizerBase) -> SamplingCallback:
    if config.backend == "vllm":
        return VLLMSamplingCallback(config, tokenizer)
    return SamplingCallback(config, tokenizer)
