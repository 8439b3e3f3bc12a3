"""The M-step: supervised fine-tuning of the policy on the kept (prompt, self-edit) pairs, then a merge."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.config import OuterConfig
from seal_lightning.distributed import Ranks
from seal_lightning.examples import example_length, tokenize_example
from seal_lightning.finetune import LoRAFineTuneModule
from seal_lightning.sharding import unsharded


@dataclass(frozen=True)
class SFTPair:
    """A self-edit prompt and the kept completion; `cut`: the sampler stopped it at its token limit."""

    prompt: str
    completion: str
    cut: bool = False


class ReSTEMPolicyModule(LoRAFineTuneModule):
    """M-step: SFT on (prompt, kept self-edit), loss on the completion only (SEAL: rank 64, all projections)."""

    def __init__(self, policy: PreTrainedModel, config: OuterConfig, seed: int) -> None:
        super().__init__(policy, config.lora, config.lr, seed, config.memory)
        self.config = config
        self.plugins: list[ReSTEMCallback] = []

    def penalties(self, budget: int) -> Iterator[torch.Tensor]:
        for plugin in self.plugins:
            yield from plugin.mstep_penalty(self, budget)

    def learn(
        self,
        pairs: list[SFTPair],
        tokenizer: PreTrainedTokenizerBase,
        logger: Logger | bool = False,
        callbacks: list[L.Callback] | None = None,
        ranks: Ranks | None = None,
        reload: Callable[[], PreTrainedModel] | None = None,
    ) -> float:
        """Train on the pairs; returns the mean SFT loss of the last epoch. The ReST-EM callbacks among
        `callbacks` may add penalties to each step's loss (`mstep_penalty`). With several `ranks`, data-parallel
        (`outer.strategy`: DDP or FSDP) over them: the same steps as one process, each rank on its rows of
        every batch; the model is whole again afterwards, the policy from `reload` under FSDP."""
        self.plugins = [c for c in callbacks or [] if isinstance(c, ReSTEMCallback)]
        examples = sft_examples(pairs, tokenizer, self.config.max_length)
        sharded = self.config.strategy == "fsdp" and ranks is not None and ranks.world_size > 1
        self.fit(
            examples,
            tokenizer,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            logger=logger,
            callbacks=callbacks,
            ranks=ranks,
            sharded=sharded,
        )
        if sharded:
            if reload is None:
                raise ValueError("an FSDP M-step needs `reload`: it shards its policy in place")
            self.model = unsharded(self.model, reload)
        steps_per_epoch = math.ceil(len(examples) / self.config.batch_size)
        last_epoch = self.losses[-steps_per_epoch:]
        return sum(last_epoch) / len(last_epoch)

    def merged(self) -> PreTrainedModel:
        return self.model.merge_and_unload()


def sft_examples(
    pairs: list[SFTPair], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[dict[str, list[int]]]:
    """The M-step's examples: loss on the completion; a completion the sampler cut is learnt without EOS."""
    return [tokenize_example(tokenizer, p.prompt, p.completion, max_length, eos=not p.cut) for p in pairs]


def cut_pairs(pairs: list[SFTPair], tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """How many pairs `outer.max_length` cuts (their end is then not learnt)."""
    return sum(example_length(tokenizer, p.prompt, p.completion) > max_length for p in pairs)
