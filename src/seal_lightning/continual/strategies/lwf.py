"""lwf: Avalanche's `LwFPlugin`, distilling toward the model before the edit on earlier passages' documents."""

from __future__ import annotations

import random

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.training.plugins import LwFPlugin

from seal_lightning.continual.config import LwFConfig
from seal_lightning.continual.learner import ContinualLoRAModule, SequentialEditor
from seal_lightning.continual.strategies.avalanche_regularizer import AvalancheRegularizer
from seal_lightning.continual.stream import collate_documents, target_token_view


class LwF(AvalancheRegularizer):
    name = "lwf"

    def __init__(self, config: LwFConfig, target_modules: list[str], pad_token_id: int, seed: int) -> None:
        super().__init__(LwFPlugin(alpha=config.alpha, temperature=config.temperature), target_modules, 1)
        self.distil_size = config.batch_size
        self.collate = collate_documents(pad_token_id)
        self.memory: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self.rng = random.Random(seed)

    def before_backward(self, module: ContinualLoRAModule, loss: torch.Tensor) -> torch.Tensor:
        if not self.memory:
            return loss
        facade = self.watch(module.model)
        picked = self.rng.sample(self.memory, min(self.distil_size, len(self.memory)))
        facade.mb_x = self.collate(picked)[0].to(module.model.device)
        facade.mb_output = facade.model(facade.mb_x)
        return super().before_backward(module, loss)

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        # LwF keeps the output units of the classes seen so far: here, the tokens the edits trained on.
        tokens = DatasetExperience(
            dataset=target_token_view(experience.dataset), current_experience=experience.current_experience
        )
        super().after_training_exp(learner, tokens)
        self.memory.extend(experience.dataset[index] for index in range(len(experience.dataset)))
