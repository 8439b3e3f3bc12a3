"""routed: every edit kept as its own adapter, none merged; each question answered through one of them.

After Expert Gate (Aljundi et al., 2017) and MELO (Yu et al., 2024): a bank of experts and a gate that
picks one per input. Here the gate asks every adapter how likely the question's own words are: the adapter
trained on a passage has seen its names and terms, which the question reuses. Some edits make every
question likelier than other edits do, so each edit's scores are centred on its mean
over the questions asked together, and each question goes to the edit it stands out under most. The gate
never sees an answer or a passage. Later edits cannot overwrite earlier ones, so what is left of
forgetting is the gate's mistakes; the cost is one adapter per edit in memory and a gate pass per question.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from seal_lightning.config import LoRAConfig
from seal_lightning.continual.learner import ContinualPlugin, Evaluation, QuestionSets, SequentialEditor
from seal_lightning.domains import Question
from seal_lightning.multilora import AdapterWeights, MultiLoRAModel, peft_adapter_weights
from seal_lightning.rewards import set_means
from seal_lightning.scorer import SelfEditScorer

# Sequences (question x bank entry) in one gate pass: bounds its memory whatever the stream's length.
GATE_SEQUENCES = 256


class RoutedBank(ContinualPlugin):
    """Bank each trained adapter instead of merging it; answer each question through the banked edit under
    which the question's text gains most in mean log-likelihood per token over that edit's average."""

    name = "routed"

    def __init__(self, lora: LoRAConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.lora = lora
        self.tokenizer = tokenizer
        self.bank: list[AdapterWeights] = []
        self.trained: AdapterWeights | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Copy the adapter this update trained, before the template unloads it."""
        self.trained = peft_adapter_weights(pl_module.model)

    def merge_scale(self, learner: SequentialEditor, experience: DatasetExperience, model: PeftModel) -> float:
        return 0.0  # the model stays the starting one; the edit lives in the bank

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        assert self.trained is not None, "on_fit_end runs before the merge"
        self.bank.append(self.trained)
        self.trained = None

    def route(self, multi: MultiLoRAModel, questions: Sequence[Question]) -> list[int]:
        """Per question, the bank entry under which the question's own tokens are likeliest relative to
        that entry's mean over all the questions (a few questions at a time through every entry, so that a
        pass stays near GATE_SEQUENCES sequences). Without the centring, an edit that raises every
        question's likelihood takes other passages' questions: in one built-in order, 29% of the learnt
        passages' questions went to a wrong edit after the eighth, and none with it."""
        texts = [self.tokenizer(q.question, add_special_tokens=False)["input_ids"] for q in questions]
        adapters = range(multi.num_adapters)
        step = max(1, GATE_SEQUENCES // multi.num_adapters)
        loglik = []
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            loglik += multi.sequence_scores([(k, ids, ids) for ids in chunk for k in adapters])["answer_loglik"]
        per_edit = torch.tensor(loglik).view(len(texts), multi.num_adapters)
        return (per_edit - per_edit.mean(dim=0)).argmax(dim=1).tolist()

    def evaluate(
        self, learner: SequentialEditor, scorer: SelfEditScorer, question_sets: QuestionSets, metric: str
    ) -> Evaluation | None:
        """Route every question, then score it through its adapter. `routed_accuracy`: the share of the
        learnt passages' questions sent to their own passage's edit (bank entry j is the stream's j-th)."""
        if not self.bank:
            return None
        questions = [question for questions in question_sets for question in questions]
        set_of = [index for index, questions in enumerate(question_sets) for _ in questions]
        multi = MultiLoRAModel(learner.model, self.lora, self.bank)
        try:
            owners = self.route(multi, questions)
            values = scorer.routed(multi, owners, questions, [metric])[metric]
        finally:
            multi.remove()
        scores = set_means(values, set_of, len(question_sets))
        learnt = [owner == s for owner, s in zip(owners, set_of, strict=True) if s < len(self.bank)]
        return Evaluation(scores, {"routed_accuracy": sum(learnt) / len(learnt)})
