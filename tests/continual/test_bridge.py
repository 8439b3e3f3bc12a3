from __future__ import annotations

import copy

import pytest
import torch
from peft import get_peft_model

from seal_lightning.config import LoRAConfig
from seal_lightning.continual.bridge import EditedWeights, token_cross_entropy
from seal_lightning.continual.stream import passage_stream
from seal_lightning.examples import tokenize_example
from seal_lightning.finetune import peft_lora_config

TARGETS = ["q_proj", "v_proj"]


@pytest.fixture
def adapted(policy):
    """The shared policy with a live adapter whose B is non-zero, removed again afterwards."""
    peft = get_peft_model(policy, peft_lora_config(LoRAConfig(rank=4, alpha=8, target_modules=TARGETS)))
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01)
    yield peft
    peft.unload()


def test_parameters_are_the_target_projections_only(policy):
    names = [name for name, _ in EditedWeights(policy, TARGETS).named_parameters()]
    layers = policy.config.num_hidden_layers
    assert len(names) == 2 * layers
    assert names[0] == "model.layers.0.self_attn.q_proj"


def test_parameters_include_the_live_adapter_and_pass_gradients_to_it(adapted):
    edited = EditedWeights(adapted, TARGETS)
    name, weight = next(iter(edited.named_parameters()))
    layer = adapted.get_submodule(f"base_model.model.{name}")
    expected = layer.base_layer.weight + layer.get_delta_weight("default")
    assert torch.allclose(weight, expected)
    weight.sum().backward()
    assert layer.lora_B["default"].weight.grad is not None
    # Names match the plain model's, so penalties compare the same weights before and after a merge.
    assert name == "model.layers.0.self_attn.q_proj"


def test_flattened_logits_against_next_token_targets_is_the_lm_loss(policy, tokenizer):
    examples = [tokenize_example(tokenizer, "", text, 64) for text in ("Selmoor is a town.", "It has a charter.")]
    dataset = passage_stream([examples], tokenizer.pad_token_id)[0].dataset
    x, y, _ = dataset.collate_fn([dataset[0], dataset[1]])
    with torch.no_grad():
        ours = token_cross_entropy(EditedWeights(policy, TARGETS)(x), y)
        lengths = [len(e["input_ids"]) for e in examples]
        mask = torch.tensor([[1] * n + [0] * (max(lengths) - n) for n in lengths])
        labels = torch.where(mask.bool(), x, -100)
        reference = policy(input_ids=x, attention_mask=mask, labels=labels).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_a_copy_is_a_frozen_teacher(policy):
    edited = EditedWeights(policy, TARGETS)
    teacher = copy.deepcopy(edited)
    assert teacher.lm is not policy
    assert not any(p.requires_grad for p in teacher.lm.parameters())
