"""gated and gate_search: merge an update at the largest scale that keeps a probe of earlier passages
within a tolerance (ours). `gated` tries a short list of scales; `gate_search` bisects [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.continual.config import GatedConfig, GateSearchConfig, ProbeGateConfig
from seal_lightning.continual.learner import ContinualPlugin, SequentialEditor
from seal_lightning.continual.stream import Example
from seal_lightning.examples import IGNORE_INDEX, pad_batch
from seal_lightning.finetune import set_adapter_scale


class ProbeGate(ContinualPlugin):
    """Accept, scale down or reject each update by its effect on a probe of earlier passages.

    The probe is the mean log-likelihood per token of a few documents held back from each earlier
    passage's self-edit (never trained on, and not the evaluation questions). An update may lower it by
    at most `tolerance`. Subclasses say which scales to try (`choose_scale`).
    """

    def __init__(self, config: ProbeGateConfig, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
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

    def choose_scale(self, passes: Callable[[float], bool]) -> float:
        """The scale to merge at, given `passes(scale)`: whether the probe's drop at that scale is within
        the tolerance (0 rejects the update)."""
        raise NotImplementedError

    def merge_scale(self, learner: SequentialEditor, experience: DatasetExperience, model: PeftModel) -> float:
        if not self.probe:
            return 1.0
        with model.disable_adapter():
            before = self.probe_loglik(model)
        drops: dict[float, float] = {0.0: 0.0}

        def passes(scale: float) -> bool:
            set_adapter_scale(model, scale)
            drops[scale] = before - self.probe_loglik(model)
            return drops[scale] <= self.config.tolerance

        chosen = self.choose_scale(passes)
        full = drops[1.0] if 1.0 in drops else float("nan")
        self.decisions.append({"probe_before": before, "drop": full, "drop_merged": drops[chosen], "scale": chosen})
        return chosen

    def step_metrics(self) -> dict[str, float]:
        # The first passage has no earlier probe and so no decision.
        return {f"gate_{key}": value for key, value in self.decisions[-1].items()} if self.decisions else {}

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        self.probe.extend(self.held_back)


class GatedMerge(ProbeGate):
    """The first of `scales` (tried in order) that passes; reject the update if none does."""

    name = "gated"

    def __init__(self, config: GatedConfig, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
        super().__init__(config, tokenizer, batch_size)
        self.scales = config.scales

    def choose_scale(self, passes: Callable[[float], bool]) -> float:
        return next((scale for scale in self.scales if passes(scale)), 0.0)


class GateSearch(ProbeGate):
    """Full scale if it passes, else bisection of [0, 1] for `steps` halvings: the largest passing scale to
    within 2**-steps, assuming the probe's drop grows with the scale (a continuous gate, not a few notches)."""

    name = "gate_search"

    def __init__(self, config: GateSearchConfig, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> None:
        super().__init__(config, tokenizer, batch_size)
        self.steps = config.steps

    def choose_scale(self, passes: Callable[[float], bool]) -> float:
        if passes(1.0):
            return 1.0
        low, high = 0.0, 1.0
        for _ in range(self.steps):
            middle = (low + high) / 2
            low, high = (middle, high) if passes(middle) else (low, middle)
        return low
