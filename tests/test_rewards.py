import math

import pytest
import torch

from seal_lightning.config import JudgeConfig, RewardConfig
from seal_lightning.data.knowledge import Question
from seal_lightning.domains.knowledge import ANSWER_TEMPLATE
from seal_lightning.errors import SealError
from seal_lightning.rewards import (
    answer_loglik,
    judge_answers,
    question_prompts,
    score_questions,
    teacher_forced_scores,
)


def test_teacher_forced_scores_match_a_token_by_token_computation(policy, tokenizer):
    """Hand check: score each answer token with its own forward pass over the exact prefix."""
    questions = [
        Question("In what year was Seltam Uldunis born?", "1905"),
        Question("Where is Odrava?", "Wynae"),
        Question("What is the capital of France?", "Paris"),
    ]
    batched = teacher_forced_scores(policy, tokenizer, questions, batch_size=2)
    assert batched["answer_loglik"] == answer_loglik(policy, tokenizer, questions, batch_size=2)
    prompts = question_prompts(tokenizer, questions)
    for i, (question, prompt) in enumerate(zip(questions, prompts, strict=True)):
        prefix = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer = tokenizer(question.answer, add_special_tokens=False)["input_ids"]
        logps, hits = [], []
        for token in answer:
            with torch.no_grad():
                logits = policy(input_ids=torch.tensor([prefix])).logits[0, -1]
            logps.append(torch.log_softmax(logits, -1)[token].item())
            hits.append(float(logits.argmax().item() == token))
            prefix = [*prefix, token]
        assert batched["answer_loglik"][i] == pytest.approx(sum(logps) / len(logps), abs=1e-4)
        assert batched["token_accuracy"][i] == pytest.approx(sum(hits) / len(hits))
        assert batched["answer_loglik"][i] < 0
    assert all(0.0 <= value <= 1.0 for value in batched["token_accuracy"])


def test_score_questions_reports_each_requested_metric(policy, tokenizer):
    questions = [Question(ANSWER_TEMPLATE.format(title="France", question="What is the capital of France?"), "Paris")]
    metrics = ["answer_loglik", "token_accuracy", "exact_match", "f1"]
    scores = score_questions(policy, tokenizer, questions, metrics, RewardConfig())
    assert set(scores) == set(metrics)
    assert scores["answer_loglik"] > math.log(0.05)  # a model this size knows Paris
    assert 0.0 <= scores["f1"] <= 1.0


def test_judge_unreachable_is_one_clear_error():
    config = JudgeConfig(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(SealError, match=r"llm_judge at http://127.0.0.1:9/v1 failed"):
        judge_answers(config, [Question("Q?", "A")], ["A"])
