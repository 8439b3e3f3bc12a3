"""The inner loop: apply one self-edit to the policy as a LoRA update, then score the updated model.

The score of the updated model on the item's held-out questions is the self-edit's reward. The
policy is left exactly as it was, so self-edits never leak into each other. What a self-edit trains
on, and which questions score it, come from the domain (`seal_lightning.domains`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig, RewardConfig
from seal_lightning.domains import Domain, Item, SelfEditUpdate
from seal_lightning.finetune import LoRAFineTuneModule, tokenize_example
from seal_lightning.multilora import stacked_adapters
from seal_lightning.rewards import adapter_rewards, reward
from seal_lightning.sampling.base import AdapterAnswerer


class InnerLoRAModule(LoRAFineTuneModule):
    """A fresh LoRA adapter (SEAL: rank 32, alpha 64, q/v) trained on one self-edit's examples."""

    def __init__(self, policy: PreTrainedModel, config: InnerConfig) -> None:
        super().__init__(policy, config.lora, config.lr)
        self.config = config

    def learn(self, update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase, seed: int) -> PeftModel:
        self.fit(
            tokenized(update, tokenizer),
            tokenizer,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            seed=seed,
        )
        return self.model

    def restore_policy(self) -> PreTrainedModel:
        """Remove the adapter layers and give back the untouched policy."""
        return self.model.unload()


def tokenized(update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase) -> list[dict[str, list[int]]]:
    return [
        tokenize_example(tokenizer, prompt, completion, update.inner.max_length, update.prompt_loss)
        for prompt, completion in update.examples
    ]


@contextmanager
def adapted(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, update: SelfEditUpdate, seed: int
) -> Iterator[PeftModel]:
    """The policy with a LoRA adapter trained as `update` says, for the duration of the block."""
    L.seed_everything(seed, verbose=False)
    module = InnerLoRAModule(policy, update.inner)
    try:
        yield module.learn(update, tokenizer, seed)
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
    """Scores self-edits of a domain's items against the current policy: reward, baseline and gain.

    The baseline (the policy with no update) is computed once per item; `baselines` may hold values
    computed earlier (for example by a run being resumed). A rejected self-edit trains nothing and
    scores the baseline: no gain, and the outer loop never keeps it.
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        domain: Domain,
        reward_config: RewardConfig,
        baselines: dict[str, float] | None = None,
        answerer: AdapterAnswerer | None = None,
    ) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.domain = domain
        self.reward_config = reward_config
        self.baselines = dict(baselines or {})
        self.answerer = answerer

    def baseline(self, item: Item) -> float:
        if item.key not in self.baselines:
            questions = self.domain.questions(item)
            self.baselines[item.key] = reward(self.policy, self.tokenizer, questions, self.reward_config)
        return self.baselines[item.key]

    def score(self, item: Item, update: SelfEditUpdate, seed: int) -> InnerResult:
        """The reward after one inner-loop update with this seed, against the baseline."""
        baseline = self.baseline(item)
        if update.error is not None:
            return InnerResult(reward=baseline, baseline=baseline)
        with adapted(self.policy, self.tokenizer, update, seed) as model:
            value = reward(model, self.tokenizer, self.domain.questions(item), self.reward_config)
        return InnerResult(reward=value, baseline=baseline)

    def score_many(self, updates: list[tuple[Item, SelfEditUpdate, int]]) -> list[InnerResult]:
        """`score` for several (item, update, seed): with `inner.batched` the updates that share
        training settings train as stacked adapters together, whatever their items, and are scored in one pass."""
        results: dict[int, InnerResult] = {}
        # Updates train together only under identical settings (an ARC self-edit chooses its lr and epochs).
        groups: dict[str, list[int]] = {}
        for index, (item, update, seed) in enumerate(updates):
            if update.inner.batched and update.error is None:
                groups.setdefault(repr(update.inner), []).append(index)
            else:
                results[index] = self.score(item, update, seed)
        for indices in groups.values():
            for index, result in zip(indices, self.score_stacked([updates[i] for i in indices]), strict=True):
                results[index] = result
        return [results[index] for index in range(len(updates))]

    def score_stacked(self, updates: list[tuple[Item, SelfEditUpdate, int]]) -> list[InnerResult]:
        baselines = [self.baseline(item) for item, _, _ in updates]
        inner = updates[0][1].inner
        examples = [tokenized(update, self.tokenizer) for _, update, _ in updates]
        seeds = [seed for _, _, seed in updates]
        questions = [self.domain.questions(item) for item, _, _ in updates]
        with stacked_adapters(self.policy, self.tokenizer, examples, seeds, inner) as multi:
            values = adapter_rewards(multi, self.tokenizer, questions, self.reward_config, self.answerer)
        return [InnerResult(reward=v, baseline=b) for v, b in zip(values, baselines, strict=True)]
