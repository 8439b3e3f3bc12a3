"""Forgetting strategies as `ContinualPlugin`s: Avalanche's code where it exists, driven through the facade.

- naive: the paper's setting, each edit merged as it is.
- replay: earlier passages' documents rehearsed in later updates, held in an Avalanche storage policy.
- ewc: Avalanche's `EWCPlugin` on the edited projections.
- lwf: Avalanche's `LwFPlugin`, distilling toward the model before the edit on earlier passages' documents.
- gated: ours; merge an update at the largest scale that keeps a probe of earlier passages within a tolerance.
"""

from __future__ import annotations

import random

import lightning as L
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.training.plugins import EWCPlugin, LwFPlugin
from avalanche.training.storage_policy import ExemplarsBuffer, ExperienceBalancedBuffer, ReservoirSamplingBuffer
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.continual.bridge import EditedWeights, Facade
from seal_lightning.continual.config import ContinualConfig, EWCConfig, GatedConfig, LwFConfig, ReplayConfig
from seal_lightning.continual.learner import (
    ContinualLoRAModule,
    ContinualPlugin,
    SequentialEditor,
    set_adapter_scale,
)
from seal_lightning.continual.stream import Example, collate_documents, examples_of, target_token_view
from seal_lightning.examples import IGNORE_INDEX, pad_batch


class Replay(ContinualPlugin):
    name = "replay"

    def __init__(self, config: ReplayConfig) -> None:
        self.storage: ExemplarsBuffer = (
            ExperienceBalancedBuffer(config.memory_size, adaptive_size=True)
            if config.policy == "balanced"
            else ReservoirSamplingBuffer(config.memory_size)
        )

    def before_training_exp(
        self, learner: SequentialEditor, experience: DatasetExperience, examples: list[Example]
    ) -> list[Example]:
        return examples + examples_of(self.storage.buffer)

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        self.storage.post_adapt(learner, experience)


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


class EWC(AvalancheRegularizer):
    name = "ewc"

    def __init__(self, config: EWCConfig, target_modules: list[str], batch_size: int) -> None:
        plugin = EWCPlugin(config.ewc_lambda, mode=config.mode, decay_factor=config.decay_factor)
        super().__init__(plugin, target_modules, batch_size)


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


class GatedMerge(ContinualPlugin):
    """Accept, scale down or reject each update by its effect on a probe of earlier passages.

    The probe is the mean log-likelihood per token of a few documents held back from each earlier
    passage's self-edit (never trained on, and not the evaluation questions). An update may lower it by
    at most `tolerance`.
    """

    name = "gated"

    def __init__(self, config: GatedConfig, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
        self.config = config
        self.pad_token_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self.probe: list[Example] = []
        self.held_back: list[Example] = []
        self.decisions: list[dict[str, float]] = []

    def before_training_exp(
        self, learner: SequentialEditor, experience: DatasetExperience, examples: list[Example]
    ) -> list[Example]:
        """Hold back the last `probe_documents` self-edit lines (at least one line still trains; the passage's
        own document, which comes last, always trains)."""
        lines, passage = examples[:-1], examples[-1:]
        held = min(self.config.probe_documents, max(len(lines) - 1, 0))
        self.held_back = lines[len(lines) - held :] if held else []
        return lines[: len(lines) - held] + passage

    @torch.no_grad()
    def probe_loglik(self, model: PreTrainedModel) -> float:
        total, tokens = 0.0, 0
        for start in range(0, len(self.probe), self.batch_size):
            batch = pad_batch(self.probe[start : start + self.batch_size], self.pad_token_id)
            batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
            count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += -model(**batch).loss.item() * count
            tokens += count
        return total / tokens

    def merge_scale(self, learner: SequentialEditor, experience: DatasetExperience, model: PeftModel) -> float:
        if not self.probe:
            return 1.0
        with model.disable_adapter():
            before = self.probe_loglik(model)
        chosen = 0.0
        for scale in self.config.scales:
            set_adapter_scale(model, scale)
            drop = before - self.probe_loglik(model)
            if drop <= self.config.tolerance:
                chosen = scale
                break
        self.decisions.append({"probe_before": before, "drop": drop, "scale": chosen})
        return chosen

    def step_metrics(self) -> dict[str, float]:
        # The first passage has no earlier probe and so no decision.
        return {f"gate_{key}": value for key, value in self.decisions[-1].items()} if self.decisions else {}

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        self.probe.extend(self.held_back)


def build_plugins(
    name: str, config: SealConfig, tokenizer: PreTrainedTokenizerBase, seed: int
) -> list[ContinualPlugin]:
    """The plugins of one strategy, fresh for one sequence of the stream."""
    continual: ContinualConfig = config.continual
    targets = list(config.inner.lora.target_modules)
    if name == "naive":
        return []
    if name == "replay":
        return [Replay(continual.replay)]
    if name == "ewc":
        return [EWC(continual.ewc, targets, config.inner.batch_size)]
    if name == "lwf":
        return [LwF(continual.lwf, targets, tokenizer.pad_token_id, seed)]
    return [GatedMerge(continual.gated, tokenizer, config.reward.batch_size)]
