"""The M-step's KL anchor: it is the KL over the answer positions' full logits, and with it the M-step moves
the policy's answers less."""

import pytest
import torch

from seal_lightning.anchor import AnswerAnchor, within_budget
from seal_lightning.config import LoRAConfig, OuterConfig
from seal_lightning.examples import IGNORE_INDEX, pad_batch
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage
from seal_lightning.mstep import ReSTEMPolicyModule, SFTPair

PASSAGES = [Passage.from_row(row) for row in builtin_passages("validation")[:3]]


def answer_drift(module: ReSTEMPolicyModule, anchor: AnswerAnchor) -> float:
    """Mean KL(starting policy || trained policy) over the anchor's answer tokens."""
    batch = pad_batch(anchor.examples, anchor.tokenizer.pad_token_id)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    where = batch["labels"][:, 1:] != IGNORE_INDEX
    with torch.no_grad():
        with module.model.disable_adapter():
            start = torch.log_softmax(module.model(**inputs).logits[:, :-1][where], dim=-1)
        now = torch.log_softmax(module.model(**inputs).logits[:, :-1][where], dim=-1)
    return (start.exp() * (start - now)).sum(-1).mean().item()


def test_the_anchor_keeps_the_mstep_from_moving_the_answers(policy, tokenizer, knowledge):
    domain = knowledge()
    pairs = [SFTPair(domain.selfedit_prompt(p), "1. It is a fact.\n2. Another fact follows.") for p in PASSAGES]
    # A small adapter keeps this cheap; the effect is the same as with the paper's rank 64 on every projection.
    config = OuterConfig(lr=1e-3, epochs=2, batch_size=2, lora=LoRAConfig(rank=8, alpha=16))
    drifts = {}
    for weight in (0.0, 20.0):
        anchor = AnswerAnchor(weight, 4, domain, tokenizer, seed=0)
        anchor.anchor_on(PASSAGES, seed=0)
        module = ReSTEMPolicyModule(policy, config, seed=0)
        module.learn(pairs, tokenizer, callbacks=[anchor] if weight else [])
        drifts[weight] = answer_drift(module, anchor)
        module.model.unload()  # the session's policy stays as it was
    assert drifts[20.0] < 0.5 * drifts[0.0], drifts


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # called here outside a fit
def test_the_penalty_is_the_kl_of_the_full_logits_at_answer_positions(policy, tokenizer, knowledge):
    anchor = AnswerAnchor(3.0, 100, knowledge(), tokenizer, seed=0)
    anchor.anchor_on(PASSAGES[:2], seed=0)
    module = ReSTEMPolicyModule(policy, OuterConfig(lora=LoRAConfig(rank=4, alpha=8)), seed=0)
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():  # a fresh adapter is a no-op (B = 0): move the policy away from its start
            for name, parameter in module.model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
        # The batch holds every example, and the budget takes them in one part: the KL over all of them.
        (penalty,) = anchor.mstep_penalty(module, budget=10**6)
        expected = answer_drift(module, anchor)
    finally:
        module.model.unload()
    assert penalty.requires_grad
    assert expected > 1e-4, "the adapter must move the answers for the check to mean anything"
    torch.testing.assert_close(penalty.item() / 3.0, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # called here outside a fit
def test_parts_within_a_budget_add_up_to_the_whole_penalty_and_gradient(policy, tokenizer, knowledge):
    module = ReSTEMPolicyModule(policy, OuterConfig(lora=LoRAConfig(rank=4, alpha=8)), seed=0)
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in module.model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
        trained = [p for p in module.model.parameters() if p.requires_grad]
        results = {}
        for budget in (10**6, 1):  # all questions in one part; one question per part
            anchor = AnswerAnchor(3.0, 100, knowledge(), tokenizer, seed=0)
            anchor.anchor_on(PASSAGES[:2], seed=0)
            module.model.zero_grad()
            parts = []
            for part in anchor.mstep_penalty(module, budget):
                part.backward()
                parts.append(part.item())
            results[budget] = (len(parts), sum(parts), [p.grad.clone() for p in trained])
    finally:
        module.model.unload()
    (one, whole, whole_grads), (many, summed, summed_grads) = results[10**6], results[1]
    assert one == 1 and many == len(anchor.examples) > 1
    torch.testing.assert_close(summed, whole, rtol=1e-5, atol=1e-7)
    # Padded and unpadded batches round differently, and the KL's gradient is a difference of nearly equal
    # log-probabilities, which magnifies that rounding: the gradients agree to 1e-4 of their norm (1.3e-5 seen).
    got, expected = torch.cat([g.flatten() for g in summed_grads]), torch.cat([g.flatten() for g in whole_grads])
    assert torch.linalg.norm(got - expected) <= 1e-4 * torch.linalg.norm(expected)


def test_within_budget_keeps_the_order_and_the_padded_size_under_the_budget():
    examples = [{"input_ids": [0] * n} for n in (3, 5, 2, 9, 1)]
    runs = list(within_budget(examples, budget=10))
    assert [e for run in runs for e in run] == examples
    assert [[len(e["input_ids"]) for e in run] for run in runs] == [[3, 5], [2], [9], [1]]
