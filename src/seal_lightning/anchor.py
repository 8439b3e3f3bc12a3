"""Keeping the M-step from moving how the policy answers: a KL anchor to the round's starting policy.

The policy that writes self-edits is also the model that learns them and answers. On a small model the
paper's M-step (rank 64 on every projection, lr 3e-4) moves the answers of questions it never trained
on (fit's held-out `no_update` row falls round after round), and the SEAL row falls with it. The anchor
adds `outer.anchor` x KL(starting policy || policy) over the answer tokens of the round's own training
questions to each M-step loss, as LwF distils toward the model before an update. The starting policy is
the M-step's base with its adapter scaled to 0, so it costs no second copy; the gold answers only mark
positions, the target is the starting policy's own distribution, so the anchor teaches no answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.domains import Domain, Item
from seal_lightning.examples import IGNORE_INDEX, pad_batch
from seal_lightning.finetune import adapter_off
from seal_lightning.output_head import decoder_states, next_token_targets, output_head
from seal_lightning.rewards import answer_sequences

if TYPE_CHECKING:
    from seal_lightning.mstep import ReSTEMPolicyModule
    from seal_lightning.outer import ReSTEM


class AnswerAnchor(ReSTEMCallback):
    def __init__(
        self, weight: float, batch_size: int, domain: Domain, tokenizer: PreTrainedTokenizerBase, seed: int
    ) -> None:
        self.weight = weight
        self.batch_size = batch_size
        self.domain = domain
        self.tokenizer = tokenizer
        self.seed = seed
        self.examples: list[dict[str, list[int]]] = []
        self.rng = random.Random(seed)

    def before_e_step(self, restem: ReSTEM, round_index: int, policy: PreTrainedModel, policy_path: str) -> None:
        self.anchor_on(restem.rounds[round_index - 1], seed=self.seed + round_index)

    def anchor_on(self, items: Sequence[Item], seed: int) -> None:
        """Anchor the coming M-step on answering these items' questions."""
        questions = [q for item in items for q in self.domain.questions(item)]
        self.examples = [
            {"input_ids": ids, "labels": labels} for ids, labels in answer_sequences(self.tokenizer, questions)
        ]
        self.rng = random.Random(seed)

    def mstep_penalty(self, module: ReSTEMPolicyModule, budget: int) -> Iterator[torch.Tensor]:
        """The KL's mean over the answer positions of a batch of questions, in parts of at most `budget`
        padded tokens (one question at least), each part its share of that mean. Under data-parallel ranks
        every rank draws the same batch (one seeded rng) and computes the whole penalty: DDP's average of
        equal gradients is that gradient, so results do not depend on the number of ranks (sharing the batch
        among ranks changed the policy by about 1e-5; on a 7B model this batch is small beside the M-step's)."""
        picked = self.rng.sample(self.examples, min(self.batch_size, len(self.examples)))
        positions = sum(sum(label != IGNORE_INDEX for label in example["labels"][1:]) for example in picked)
        head = output_head(module.model)
        total = torch.zeros((), device=module.model.device)
        for part in within_budget(picked, budget):
            batch = {k: v.to(module.model.device) for k, v in pad_batch(part, self.tokenizer.pad_token_id).items()}
            with torch.no_grad(), adapter_off(module.model):
                start = answer_log_probs(module.model, head, batch)
            now = answer_log_probs(module.model, head, batch)
            divergence = (start.exp() * (start - now)).sum() / positions
            total += divergence.detach()
            yield self.weight * divergence
        module.log("anchor_kl", total, batch_size=len(picked))


def answer_log_probs(model: PreTrainedModel, head: nn.Linear, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Log-probabilities over the vocabulary at the positions that predict answer tokens (the logits at t
    predict token t + 1): only these are projected onto the vocabulary, not every position of the batch."""
    where = next_token_targets(batch["labels"]) != IGNORE_INDEX
    states = decoder_states(model, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return torch.log_softmax(head(states[where]).float(), dim=-1)


def within_budget(examples: Sequence[dict[str, list[int]]], budget: int) -> Iterator[list[dict[str, list[int]]]]:
    """The examples in order, in runs whose padded batch (rows x longest) stays within `budget` tokens; an
    example longer than the budget runs alone."""
    run: list[dict[str, list[int]]] = []
    for example in examples:
        width = max(len(e["input_ids"]) for e in [*run, example])
        if run and (len(run) + 1) * width > budget:
            yield run
            run = []
        run.append(example)
    if run:
        yield run
