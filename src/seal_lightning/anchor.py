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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
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

    def mstep_penalty(self, module: ReSTEMPolicyModule) -> torch.Tensor:
        """The KL's mean over the answer positions of a batch of questions. Under data-parallel ranks every
        rank draws the same batch (one seeded rng) and computes the whole penalty: DDP's average of equal
        gradients is that gradient, so results do not depend on the number of ranks (sharing the batch
        among ranks changed the policy by about 1e-5; on a 7B model this batch is small beside the M-step's)."""
        picked = self.rng.sample(self.examples, min(self.batch_size, len(self.examples)))
        batch = {k: v.to(module.model.device) for k, v in pad_batch(picked, self.tokenizer.pad_token_id).items()}
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        # The positions that predict answer tokens (the logits at t predict token t + 1): only these are
        # projected onto the vocabulary, not every position of the batch.
        where = next_token_targets(batch["labels"]) != IGNORE_INDEX
        head = output_head(module.model)

        def answer_log_probs() -> torch.Tensor:
            return torch.log_softmax(head(decoder_states(module.model, **inputs)[where]).float(), dim=-1)

        with torch.no_grad(), adapter_off(module.model):
            start = answer_log_probs()
        now = answer_log_probs()
        divergence = (start.exp() * (start - now)).sum(-1).mean()
        module.log("anchor_kl", divergence, batch_size=len(picked))
        return self.weight * divergence
