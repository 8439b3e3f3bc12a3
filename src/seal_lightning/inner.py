"""The inner loop: apply one self-edit to the policy as a LoRA update, then score the updated model.

The score of the updated model on the passage's questions (without the passage in the prompt) is
the self-edit's reward. The policy is left exactly as it was, so self-edits never leak into each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig, RewardConfig
from seal_lightning.data.knowledge import Passage
from seal_lightning.finetune import LoRAFineTuneModule, tokenize_example
from seal_lightning.multilora import stacked_adapters
from seal_lightning.rewards import adapter_rewards, reward
from seal_lightning.sampling.base import AdapterAnswerer


class InnerLoRAModule(LoRAFineTuneModule):
    """A fresh LoRA adapter (SEAL: rank 32, alpha 64, q/v) trained on one self-edit's documents."""

    def __init__(self, policy: PreTrainedModel, config: InnerConfig) -> None:
        super().__init__(policy, config.lora, config.lr)
        self.config = config

    def learn(self, documents: list[str], tokenizer: PreTrainedTokenizerBase, seed: int) -> PeftModel:
        examples = [tokenize_example(tokenizer, "", doc, self.config.max_length) for doc in documents]
        self.fit(examples, tokenizer, epochs=self.config.epochs, batch_size=self.config.batch_size, seed=seed)
        return self.model

    def restore_policy(self) -> PreTrainedModel:
        """Remove the adapter layers and give back the untouched policy."""
        return self.model.unload()


@contextmanager
def adapted(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: list[str],
    config: InnerConfig,
    seed: int,
) -> Iterator[PeftModel]:
    """The policy with a LoRA adapter trained on `documents`, for the duration of the block."""
    L.seed_everything(seed, verbose=False)
    module = InnerLoRAModule(policy, config)
    try:
        yield module.learn(documents, tokenizer, seed)
    finally:
        module.restore_policy().eval()


@dataclass(frozen=True)
class InnerResult:
    reward: float
    baseline: float

    @property
    def gain(self) -> float:
        return self.reward - self.baseline


class SelfEditScorer:
    """Scores self-edits of passages against the current policy: reward, baseline and gain.

    The baseline (the policy with no update) is computed once per passage; `baselines` may hold
    values computed earlier (for example by a run being resumed).
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        inner: InnerConfig,
        reward_config: RewardConfig,
        baselines: dict[str, float] | None = None,
        answerer: AdapterAnswerer | None = None,
    ) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.inner = inner
        self.reward_config = reward_config
        self.baselines = dict(baselines or {})
        self.answerer = answerer

    def baseline(self, passage: Passage) -> float:
        if passage.key not in self.baselines:
            self.baselines[passage.key] = reward(self.policy, self.tokenizer, passage.questions, self.reward_config)
        return self.baselines[passage.key]

    def score(self, passage: Passage, documents: list[str], seed: int) -> InnerResult:
        """The reward after one inner-loop update on `documents` with this seed, against the baseline."""
        baseline = self.baseline(passage)
        with adapted(self.policy, self.tokenizer, documents, self.inner, seed) as model:
            value = reward(model, self.tokenizer, passage.questions, self.reward_config)
        return InnerResult(reward=value, baseline=baseline)

    def score_many(self, updates: list[tuple[Passage, list[str], int]]) -> list[InnerResult]:
        """`score` for several (passage, documents, seed) updates: with `inner.batched` they train as
        stacked adapters together, whatever their passages, and are scored in one pass."""
        if not self.inner.batched:
            return [self.score(passage, documents, seed) for passage, documents, seed in updates]
        baselines = [self.baseline(passage) for passage, _, _ in updates]
        tokenized = [
            [tokenize_example(self.tokenizer, "", doc, self.inner.max_length) for doc in documents]
            for _, documents, _ in updates
        ]
        seeds = [seed for _, _, seed in updates]
        questions = [passage.questions for passage, _, _ in updates]
        with stacked_adapters(self.policy, self.tokenizer, tokenized, seeds, self.inner) as multi:
            values = adapter_rewards(multi, self.tokenizer, questions, self.reward_config, self.answerer)
        return [InnerResult(reward=v, baseline=b) for v, b in zip(values, baselines, strict=True)]
