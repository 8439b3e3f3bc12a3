"""olora: orthogonal subspaces for sequential LoRA edits (O-LoRA, Wang et al. 2023, arXiv 2310.14152).

An update Delta W = B A changes a layer's output only for inputs with a component in the row space of A.
Each new edit's A is penalised for overlapping the row spaces of earlier edits' A matrices, so later
edits learn through input directions earlier ones did not use and overwrite them less. O-LoRA keeps the
adapters apart; here every edit is merged, as in the paper's stream, and only an orthonormal basis of
each layer's earlier row spaces is kept (rank x edits columns of the layer's input width, per layer).
"""

from __future__ import annotations

import lightning as L
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from seal_lightning.continual.config import OLoRAConfig
from seal_lightning.continual.learner import ContinualLoRAModule, ContinualPlugin


def lora_down_projections(model: PeftModel) -> dict[str, torch.Tensor]:
    """Each LoRA layer's A (rank x input width) of the active adapter, by the layer's name in the base model."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            (adapter,) = module.active_adapters
            found[name.removeprefix("base_model.model.")] = module.lora_A[adapter].weight
    return found


def overlap(down: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The squared norm of A's rows projected onto the span of `basis`' orthonormal columns."""
    return (down @ basis).square().sum()


class OrthogonalLoRA(ContinualPlugin):
    name = "olora"

    def __init__(self, config: OLoRAConfig) -> None:
        self.weight = config.orthogonality
        self.bases: dict[str, torch.Tensor] = {}  # layer name -> (input width, earlier ranks) orthonormal
        self.penalties: list[float] = []
        self.overlaps: list[float] = []

    def before_backward(self, module: ContinualLoRAModule, loss: torch.Tensor) -> torch.Tensor:
        if not self.bases:
            return loss
        downs = lora_down_projections(module.model)
        penalty = sum(overlap(down, self.bases[name].to(down.device)) for name, down in downs.items())
        self.penalties.append(float(penalty.detach()))
        return loss + self.weight * penalty

    def on_train_end(self, trainer: L.Trainer, pl_module: ContinualLoRAModule) -> None:
        """Add the trained A's row space to each layer's basis, before the update is merged away."""
        downs = {name: down.detach().float().cpu() for name, down in lora_down_projections(pl_module.model).items()}
        if self.bases:
            inside = sum(float(overlap(down, self.bases[name])) for name, down in downs.items())
            self.overlaps.append(inside / sum(float(down.square().sum()) for down in downs.values()))
        for name, down in downs.items():
            rows = down.T
            earlier = self.bases.get(name)
            stacked = rows if earlier is None else torch.cat([earlier, rows], dim=1)
            self.bases[name] = torch.linalg.qr(stacked).Q

    def step_metrics(self) -> dict[str, float]:
        """The share of the last edit's A (squared norm) inside earlier edits' subspaces (0: orthogonal), and
        the last step's penalty; the first edit has neither."""
        if not self.overlaps:
            return {}
        return {"olora_overlap": self.overlaps[-1], "olora_penalty_last": self.penalties[-1]}
