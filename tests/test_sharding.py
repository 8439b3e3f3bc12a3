"""FSDP's pieces that one process can check: what is refused before sharding, and making a trained adapter
whole on a reloaded policy. Sharding itself runs under 2 real ranks in test_data_parallel.py."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

from seal_lightning.config import LoRAConfig, ModelConfig
from seal_lightning.errors import ConfigError
from seal_lightning.finetune import peft_lora_config
from seal_lightning.models import load_model
from seal_lightning.sharding import shard, unsharded


def test_lora_outside_the_decoder_layers_is_refused_before_anything_is_sharded():
    model = get_peft_model(load_model(ModelConfig()), peft_lora_config(LoRAConfig(target_modules=["lm_head"])))
    with pytest.raises(ConfigError, match=r"outer.strategy=fsdp shards the decoder layers; LoRA outside them"):
        shard(model, mesh=None)


def test_the_adapter_is_put_whole_on_the_reloaded_policy():
    torch.manual_seed(0)
    trained = get_peft_model(load_model(ModelConfig()), peft_lora_config(LoRAConfig()))
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.01)
    whole = unsharded(trained, lambda: load_model(ModelConfig()))
    assert whole is not trained
    expected = trained.merge_and_unload().state_dict()
    merged = whole.merge_and_unload().state_dict()
    assert all(torch.equal(merged[key], expected[key]) for key in expected)
