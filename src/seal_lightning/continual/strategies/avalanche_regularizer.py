"""Avalanche's regularisation plugins (EWC, LwF) as `ContinualPlugin`s, driven through the facade."""

from __future__ import annotations

import lightning as L
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.training.plugins import EWCPlugin, LwFPlugin
from transformers import PreTrainedModel

from seal_lightning.continual.bridge import EditedWeights, Facade
from seal_lightning.continual.learner import ContinualLoRAModule, ContinualPlugin, SequentialEditor


class AvalancheRegularizer(ContinualPlugin):
    """An Avalanche regularisation plugin seen through a `Facade` whose model tracks the live adapter."""

    def __init__(self, plugin: EWCPlugin | LwFPlugin, target_modules: list[str], batch_size: int) -> None:
        self.plugin = plugin
        self.target_modules = target_modules
        self.batch_size = batch_size
        self.facade: Facade | None = None
        self.penalties: list[float] = []
        self.experience_penalties = 0  # where the current experience's penalties start

    def on_train_start(self, trainer: L.Trainer, pl_module: ContinualLoRAModule) -> None:
        self.experience_penalties = len(self.penalties)
        self.watch(pl_module.model)

    def watch(self, model: PreTrainedModel) -> Facade:
        if self.facade is None:
            edited = EditedWeights(model, self.target_modules)
            self.facade = Facade(edited, device=model.device, train_mb_size=self.batch_size)
        self.facade.model.attach(model)
        return self.facade

    def before_backward(self, module: ContinualLoRAModule, loss: torch.Tensor) -> torch.Tensor:
        before = loss.item()  # the plugins add in place: `strategy.loss += penalty`
        total = self.watch(module.model).add_penalty(self.plugin, loss)
        self.penalties.append(total.item() - before)
        return total

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        self.watch(learner.model).finish_experience(self.plugin, experience)

    def step_metrics(self) -> dict[str, float]:
        """The mean and last penalty of the experience just learnt (0 on the first passage)."""
        current = self.penalties[self.experience_penalties :] or [0.0]
        return {f"{self.name}_penalty_mean": sum(current) / len(current), f"{self.name}_penalty_last": current[-1]}
