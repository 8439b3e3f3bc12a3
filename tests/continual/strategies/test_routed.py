"""routed: every edit banked as its own adapter, none merged; each question scored through the edit whose
adapter predicts the question's words best relative to that edit's average over the questions."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

from seal_lightning.config import InnerConfig, ModelConfig, RewardConfig
from seal_lightning.continual.learner import SequentialEditor
from seal_lightning.continual.strategies import routed
from seal_lightning.continual.strategies.routed import RoutedBank
from seal_lightning.finetune import peft_lora_config
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage
from seal_lightning.knowledge.domain import answer_questions
from seal_lightning.models import load_model
from seal_lightning.rewards import teacher_forced_scores
from seal_lightning.scorer import SelfEditScorer

INNER = InnerConfig(epochs=2, lr=3e-3, batch_size=2)


@pytest.fixture(scope="module")
def banked(tokenizer, stream, run):
    """Two passages learnt by `routed`, and the untouched model's weights to compare with."""
    model = load_model(ModelConfig())
    before = {name: weight.detach().clone() for name, weight in model.state_dict().items()}
    bank = RoutedBank(INNER.lora, tokenizer)
    editor, reports = run(model, tokenizer, [bank], stream[:2], INNER)
    return editor, reports, bank, before


def test_nothing_is_merged_and_every_edit_is_banked(banked):
    editor, reports, bank, before = banked
    assert [report.scale for report in reports] == [0.0, 0.0]
    for name, weight in editor.model.state_dict().items():
        assert torch.equal(weight, before[name]), name
    assert len(bank.bank) == 2
    first, second = bank.bank
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[name][1], second[name][1]) for name in first), "each edit trained its own B"


def question_logliks(model, tokenizer, questions) -> list[float]:
    """The mean log-likelihood per token of each question's text, one question at a time."""
    values = []
    for question in questions:
        ids = torch.tensor([tokenizer(question.question, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            values.append(-model(input_ids=ids, labels=ids).loss.item())
    return values


def test_each_question_is_scored_through_the_edit_that_predicts_it_best(banked, tokenizer, knowledge, monkeypatch):
    """The same routes and scores as each banked edit loaded alone into PEFT, scored question by question
    (the gate passes cut to one question each, as a long stream's would be cut)."""
    editor, _, bank, _ = banked
    monkeypatch.setattr(routed, "GATE_SEQUENCES", 3)
    passages = [Passage.from_row(p) for p in builtin_passages("train", 0)[:3]]
    question_sets = [answer_questions(p) for p in passages]  # the third passage is not learnt yet
    flat = [q for questions in question_sets for q in questions]
    reward = RewardConfig(batch_size=4)
    scorer = SelfEditScorer(editor.model, tokenizer, knowledge(), reward)
    evaluation = bank.evaluate(editor, scorer, question_sets, "token_accuracy")

    logliks, accuracies = [], []
    for weights in bank.bank:
        peft_model = get_peft_model(editor.model, peft_lora_config(INNER.lora))
        with torch.no_grad():
            for name, module in peft_model.named_modules():
                key = name.removeprefix("base_model.model.")
                if key in weights:
                    module.lora_A["default"].weight.copy_(weights[key][0])
                    module.lora_B["default"].weight.copy_(weights[key][1])
        peft_model.eval()
        logliks.append(question_logliks(peft_model, tokenizer, flat))
        accuracies.append(teacher_forced_scores(peft_model, tokenizer, flat, 1)["token_accuracy"])
        peft_model.unload()
    per_edit = torch.tensor(logliks)  # (edit, question)
    routes = (per_edit - per_edit.mean(dim=1, keepdim=True)).argmax(dim=0).tolist()
    chosen = [accuracies[k][i] for i, k in enumerate(routes)]
    sizes = [len(questions) for questions in question_sets]
    expected = [sum(part) / len(part) for part in torch.tensor(chosen).split(sizes)]
    torch.testing.assert_close(torch.tensor(evaluation.scores), torch.stack(expected), atol=1e-5, rtol=0)
    owners = [index for index, size in enumerate(sizes) for _ in range(size)]
    learnt = [route == owner for route, owner in zip(routes, owners, strict=True) if owner < 2]
    assert evaluation.figures == {"routed_accuracy": pytest.approx(sum(learnt) / len(learnt))}


def test_before_any_edit_the_model_answers(model, tokenizer, knowledge):
    editor = SequentialEditor(model, tokenizer, INNER, [RoutedBank(INNER.lora, tokenizer)], seed=0)
    questions = answer_questions(Passage.from_row(builtin_passages("train", 0)[0]))
    scorer = SelfEditScorer(model, tokenizer, knowledge(), RewardConfig())
    evaluation = editor.evaluate(scorer, [questions], "token_accuracy")
    assert evaluation.scores == [scorer.unadapted(questions, ["token_accuracy"])["token_accuracy"]]
    assert evaluation.figures == {}
