import pytest
import torch

from seal_lightning.domains import Question
from seal_lightning.rewards import question_prompts, teacher_forced_scores


def test_teacher_forced_scores_match_a_token_by_token_computation(policy, tokenizer):
    """Hand check: score each answer token with its own forward pass over the exact prefix."""
    questions = [
        Question("In what year was Seltam Uldunis born?", "1905"),
        Question("Where is Odrava?", "Wynae"),
        Question("What is the capital of France?", "Paris"),
    ]
    batched = teacher_forced_scores(policy, tokenizer, questions, batch_size=2)
    # Padding in a batch changes nothing.
    alone = teacher_forced_scores(policy, tokenizer, questions, batch_size=1)
    assert batched["answer_loglik"] == pytest.approx(alone["answer_loglik"], abs=1e-5)
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
