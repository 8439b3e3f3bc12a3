"""The sequential self-edit template: absorb passages one after another into one model.

Each experience (a passage's self-edit documents) is learnt as in the paper's continual experiment:
a fresh LoRA adapter trained by the inner loop, then merged. Strategies are `ContinualPlugin`s with
Avalanche's named hooks; they are also Lightning callbacks of every update's Trainer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig
from seal_lightning.continual.stream import Example, examples_of
from seal_lightning.domains import Question
from seal_lightning.finetune import set_adapter_scale
from seal_lightning.inner import InnerLoRAModule
from seal_lightning.scorer import SelfEditScorer

# The stream's passages' questions, one set per passage in stream order.
QuestionSets = Sequence[Sequence[Question]]


class ContinualPlugin(L.Callback):
    """A forgetting strategy. Every hook defaults to the naive behaviour (train on the passage, merge)."""

    name = "naive"

    def before_training_exp(
        self, learner: SequentialEditor, experience: DatasetExperience, examples: list[Example]
    ) -> list[Example]:
        """The examples this update trains on (replay adds remembered ones)."""
        return examples

    def before_backward(self, module: ContinualLoRAModule, loss: torch.Tensor) -> torch.Tensor:
        """What one training step adds to its loss: `loss` plus this plugin's penalty (regularisers)."""
        return loss

    def merge_scale(self, learner: SequentialEditor, experience: DatasetExperience, model: PeftModel) -> float:
        """How much of the trained update to merge, in [0, 1] (a gate may scale it down or reject it)."""
        return 1.0

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        """After the merge: update memories, importances, teachers."""

    def step_metrics(self) -> dict[str, float]:
        """What the plugin did in the last experience, for the step's record (a gate's decision, a penalty)."""
        return {}

    def evaluate(
        self, learner: SequentialEditor, scorer: SelfEditScorer, question_sets: QuestionSets, metric: str
    ) -> Evaluation | None:
        """The metric on each question set (the stream's passages, in stream order) where this plugin answers
        in place of the merged model, as an adapter bank does; None: the merged model answers."""
        return None


class ContinualLoRAModule(InnerLoRAModule):
    """The inner-loop update with the plugins' `before_backward` penalties added to every step's loss."""

    def __init__(
        self, policy: PreTrainedModel, config: InnerConfig, plugins: Sequence[ContinualPlugin], seed: int
    ) -> None:
        super().__init__(policy, config, seed)
        self.plugins = list(plugins)

    def penalties(self, budget: int) -> Iterator[torch.Tensor]:
        """The plugins' terms, each added by its `before_backward` (Avalanche's hook: `loss += penalty`) to
        a step loss that starts here at zero; the data term's gradient is taken apart, a micro-batch at a
        time, and gradients add up."""
        total = torch.zeros((), device=self.model.device)
        for plugin in self.plugins:
            total = plugin.before_backward(self, total)
        if total.requires_grad:
            yield total


@dataclass(frozen=True)
class Evaluation:
    """The metric on each question set, and what the plugin that answered measured about its answering."""

    scores: list[float]
    figures: dict[str, float]


@dataclass(frozen=True)
class StepReport:
    """What one experience did: examples trained on, the scale merged, the final training loss, and
    the plugins' own figures."""

    examples: int
    scale: float
    loss: float
    plugins: dict[str, float]


class SequentialEditor:
    """Holds the model being edited and applies one experience at a time through the plugins."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        inner: InnerConfig,
        plugins: Sequence[ContinualPlugin],
        seed: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.inner = inner
        self.plugins = list(plugins)
        self.seed = seed

    def learn(self, experience: DatasetExperience) -> StepReport:
        examples = examples_of(experience.dataset)
        for plugin in self.plugins:
            examples = plugin.before_training_exp(self, experience, examples)
        module = ContinualLoRAModule(self.model, self.inner, self.plugins, self.seed + experience.current_experience)
        module.fit(
            examples, self.tokenizer, epochs=self.inner.epochs, batch_size=self.inner.batch_size, callbacks=self.plugins
        )
        scale = min((plugin.merge_scale(self, experience, module.model) for plugin in self.plugins), default=1.0)
        set_adapter_scale(module.model, scale)
        self.model = module.model.merge_and_unload().eval()
        for plugin in self.plugins:
            plugin.after_training_exp(self, experience)
        figures = {key: value for plugin in self.plugins for key, value in plugin.step_metrics().items()}
        return StepReport(examples=len(examples), scale=scale, loss=module.losses[-1], plugins=figures)

    def evaluate(self, scorer: SelfEditScorer, question_sets: QuestionSets, metric: str) -> Evaluation:
        """The metric on each question set: a plugin's answering where one answers, else the merged model's."""
        for plugin in self.plugins:
            evaluation = plugin.evaluate(self, scorer, question_sets, metric)
            if evaluation is not None:
                return evaluation
        return Evaluation([scorer.unadapted(questions, [metric])[metric] for questions in question_sets], {})
