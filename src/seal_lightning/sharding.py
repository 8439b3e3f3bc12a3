"""FSDP for LoRA training (`outer.strategy=fsdp`): the model sharded across the ranks, then made whole again.

PyTorch's FSDP2 (`fully_shard`) through Lightning's `ModelParallelStrategy`: each decoder layer is one
shard group, so a rank holds 1/world of the layers' weights, gradients and optimizer states and gathers
one layer at a time. The trained model stays sharded, and FSDP changes it in
place, so afterwards the adapter (small) is gathered whole and put on the policy reloaded from disk: its
weights fit one device, since the E-step ran it; what may not fit is the M-step's training state.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from lightning.pytorch.strategies import ModelParallelStrategy
from peft import PeftModel, get_peft_model
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel

from seal_lightning.distributed import Ranks
from seal_lightning.errors import ConfigError


def sharding_strategy(ranks: Ranks) -> ModelParallelStrategy:
    """All ranks as one data-parallel dimension (no tensor parallelism)."""
    return ModelParallelStrategy(data_parallel_size=ranks.world_size, tensor_parallel_size=1)


def is_sharded(trainer: L.Trainer) -> bool:
    return isinstance(trainer.strategy, ModelParallelStrategy)


def shard(model: PeftModel, mesh: DeviceMesh) -> None:
    """FSDP2 over `mesh` on every block transformers keeps whole when it splits a model across devices
    (`_no_split_modules`, its documented list: the decoder layers), each block its own shard group. The
    rest (embeddings, final norm, output head: frozen) stays whole on every rank, since the training step
    calls the decoder and the head apart (`output_head.py`); LoRA on it would go unsynchronised, so it is
    refused. Weights keep their dtypes (a bfloat16 base, float32 adapters), as under DDP."""
    blocks = set(model.get_base_model()._no_split_modules or ())
    sharded = [module for module in model.modules() if type(module).__name__ in blocks]
    inside = {id(p) for module in sharded for p in module.parameters()}
    outside = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in inside]
    if outside:
        raise ConfigError(
            f"outer.strategy=fsdp shards the decoder layers; LoRA outside them ({outside[0]}) is not supported: "
            "target only modules inside the layers (outer.lora.target_modules)"
        )
    for module in sharded:
        fully_shard(module, mesh=mesh)


def unsharded(model: PeftModel, reload: Callable[[], PreTrainedModel]) -> PeftModel:
    """The trained adapter, gathered from every rank (a collective: every rank calls it), on the policy from
    `reload()`. Every rank gets the whole model, as every rank holds it after a DDP M-step."""
    state = {
        name: (param.full_tensor() if isinstance(param, DTensor) else param).detach().clone()
        for name, param in model.named_parameters()
        if param.requires_grad
    }
    whole = get_peft_model(reload(), model.peft_config[model.active_adapter])
    loaded = whole.load_state_dict(state, strict=False)
    if loaded.unexpected_keys:
        raise RuntimeError(f"the gathered adapter does not fit its model: {loaded.unexpected_keys[:3]}")
    return whole.eval()
