"""The inner loop: apply one self-edit to the policy as a LoRA update, and take it off again.

What a self-edit trains on comes from the domain (`seal_lightning.domains`); the policy is left
exactly as it was afterwards, so self-edits never leak into each other. The updated model is
scored by `scorer.py`, whose reward is the self-edit's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig
from seal_lightning.domains import SelfEditUpdate
from seal_lightning.examples import example_length, tokenize_example
from seal_lightning.finetune import LoRAFineTuneModule


class InnerLoRAModule(LoRAFineTuneModule):
    """A fresh LoRA adapter (SEAL: rank 32, alpha 64, q/v) trained on one self-edit's examples."""

    def __init__(self, policy: PreTrainedModel, config: InnerConfig, seed: int) -> None:
        super().__init__(policy, config.lora, config.lr, seed, config.memory)
        self.config = config

    def learn(self, update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase) -> PeftModel:
        self.fit(tokenized(update, tokenizer), tokenizer, epochs=self.config.epochs, batch_size=self.config.batch_size)
        return self.model

    def restore_policy(self) -> PreTrainedModel:
        """Remove the adapter layers and give back the untouched policy."""
        return self.model.unload()


def tokenized(update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase) -> list[dict[str, list[int]]]:
    return [
        tokenize_example(tokenizer, prompt, completion, update.inner.max_length, update.prompt_loss)
        for prompt, completion in update.examples
    ]


def truncated_examples(update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase) -> int:
    """How many of the update's examples `inner.max_length` cuts."""
    return sum(
        example_length(tokenizer, prompt, completion) > update.inner.max_length
        for prompt, completion in update.examples
    )


def training_tokens(update: SelfEditUpdate, tokenizer: PreTrainedTokenizerBase) -> int:
    """What the update's inner loop trains on, in tokens per epoch (what ranks balance their shares by);
    a rejected self-edit trains nothing and costs one unit (its baseline score)."""
    if update.error is not None:
        return 1
    return (
        sum(
            min(example_length(tokenizer, prompt, completion), update.inner.max_length)
            for prompt, completion in update.examples
        )
        * update.inner.epochs
    )


@contextmanager
def adapted(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, update: SelfEditUpdate, seed: int
) -> Iterator[PeftModel]:
    """The policy with a LoRA adapter trained as `update` says, for the duration of the block."""
    module = InnerLoRAModule(policy, update.inner, seed)
    try:
        yield module.learn(update, tokenizer)
    finally:
        module.restore_policy().eval()
