"""The one seam between our Lightning loop and Avalanche's plugins: a small strategy facade.

Avalanche's `EWCPlugin` and `LwFPlugin` are driven unchanged through their lifecycle hooks
(`before_backward`, `after_training_exp`). They read a handful of strategy attributes; `Facade`
provides exactly those, with the language model presented as `EditedWeights`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from avalanche.training.plugins.clock import Clock
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import PreTrainedModel

from seal_lightning.examples import IGNORE_INDEX


class EditedWeights(nn.Module):
    """The language model as Avalanche's plugins see it.

    `forward(x)` gives next-token logits flattened to (positions, vocabulary), a classifier's output
    over the stream's targets. `named_parameters()` yields only the weights the self-edits change, the
    LoRA target projections, each with the live adapter's update added, so a penalty on them reaches
    the adapter through autograd while the other 135M weights stay out of EWC's bookkeeping.
    """

    def __init__(self, lm: PreTrainedModel, target_modules: list[str]) -> None:
        super().__init__()
        self.target_modules = tuple(target_modules)
        self.attach(lm)

    def attach(self, lm: PreTrainedModel) -> None:
        """Follow another model (the adapter being trained, then the merged model), kept out of
        nn.Module's registry: its parameters are not ours to list or regularise."""
        object.__setattr__(self, "lm", lm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=x, use_cache=False).logits.flatten(0, 1)

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        for name, module in self.lm.named_modules():
            if name.rpartition(".")[2] not in self.target_modules:
                continue
            name = name.removeprefix("base_model.model.")
            if isinstance(module, LoraLayer):
                weight = module.get_base_layer().weight
                if not module.merged and not module.disable_adapters:
                    for adapter in module.active_adapters:
                        weight = weight + module.get_delta_weight(adapter)
                yield name, weight
            elif isinstance(module, nn.Linear):
                yield name, module.weight

    def train(self, mode: bool = True) -> EditedWeights:
        self.lm.train(mode)
        return super().train(mode)

    def __deepcopy__(self, memo: dict[int, Any]) -> EditedWeights:
        """LwF keeps the model before each edit as its teacher: a frozen copy of the merged model."""
        import copy

        teacher = copy.deepcopy(self.lm, memo).eval().requires_grad_(False)
        return EditedWeights(teacher, list(self.target_modules))


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The LM loss on `EditedWeights` outputs: flattened logits against flattened next-token targets."""
    return nn.functional.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX)


@dataclass
class Facade:
    """The attributes of an Avalanche `SupervisedTemplate` that its regularisation plugins read."""

    model: EditedWeights
    device: torch.device
    train_mb_size: int
    clock: Clock = field(default_factory=Clock)
    _criterion: Any = token_cross_entropy
    optimizer: torch.optim.Optimizer | None = None
    experience: Any = None
    loss: torch.Tensor | None = None
    mb_x: torch.Tensor | None = None
    mb_output: torch.Tensor | None = None

    def add_penalty(self, plugin: Any, loss: torch.Tensor) -> torch.Tensor:
        """Run the plugin's `before_backward` on `loss` and return what it made of it."""
        self.loss = loss
        plugin.before_backward(self)
        loss, self.loss = self.loss, None
        return loss

    def finish_experience(self, plugin: Any, experience: Any) -> None:
        """Run the plugin's `after_training_exp` on the merged model, then advance the clock."""
        self.experience = experience
        with gradients_for(self.model) as optimizer:
            self.optimizer = optimizer
            plugin.after_training_exp(self)
        self.optimizer = None
        self.clock.after_training_exp(self)


@contextmanager
def gradients_for(model: EditedWeights) -> Iterator[torch.optim.Optimizer]:
    """Let the edited weights (frozen between edits) take gradients, as EWC's importance pass needs;
    the optimizer is there for the plugin's `zero_grad` and never steps."""
    weights = [weight for _, weight in model.named_parameters()]
    for weight in weights:
        weight.requires_grad_(True)
    try:
        yield torch.optim.SGD(weights, lr=0.0)
    finally:
        for weight in weights:
            weight.requires_grad_(False)
            weight.grad = None
