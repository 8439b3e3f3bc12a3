"""Rewards: how well a (possibly updated) model answers an item's held-out questions.

`answer_loglik` (mean log-probability of the gold answer tokens) is dense and cheap, the default
for the built-in model; `token_accuracy` (share of gold answer tokens the model predicts first,
teacher-forced) comes from the same forward pass and is bounded like an accuracy. Greedy answers
are graded by `exact_match` and `f1` (SQuAD normalisation) or `llm_judge` (an OpenAI-compatible
endpoint, like the paper's GPT-4.1 grader) for passages, and by `grid_match` (the paper's binary
ARC reward) or `cell_accuracy` for ARC grids. Which metrics a domain accepts is in `config.DOMAINS`.
"""

from __future__ import annotations

import collections
import os
import re
import string
from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.arc.grids import text_to_grid
from seal_lightning.config import TEACHER_FORCED_METRICS, JudgeConfig, RewardConfig
from seal_lightning.data.knowledge import Question
from seal_lightning.errors import SealError
from seal_lightning.finetune import IGNORE_INDEX, pad_batch
from seal_lightning.models import chat_prompt
from seal_lightning.sampling.hf import generate_texts

PUNCTUATION = frozenset(string.punctuation)

JUDGE_PROMPT = (
    "You are grading a student's answer to a question. Decide only from the gold answer whether the "
    "student's answer is correct; do not use outside knowledge. Minor differences in wording, case or "
    "punctuation are fine if the meaning is the same.\n\n"
    "Question: {question}\nGold answer: {gold}\nStudent answer: {prediction}\n\n"
    "Reply with a single word: yes or no."
)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    overlap = sum(common.values())
    if not predicted or not expected:
        return float(predicted == expected)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def grid_match(prediction: str, gold: str) -> float:
    """1.0 when the first grid in the answer is the gold grid, cell for cell."""
    predicted = text_to_grid(prediction)
    return float(predicted is not None and predicted == text_to_grid(gold))


def cell_accuracy(prediction: str, gold: str) -> float:
    """Share of the gold grid's cells the predicted grid has right; 0.0 for a grid of another shape."""
    predicted, expected = text_to_grid(prediction), text_to_grid(gold)
    if (
        predicted is None
        or expected is None
        or len(predicted) != len(expected)
        or len(predicted[0]) != len(expected[0])
    ):
        return 0.0
    cells = [
        p == e for row_p, row_e in zip(predicted, expected, strict=True) for p, e in zip(row_p, row_e, strict=True)
    ]
    return sum(cells) / len(cells)


# Graders of one greedy answer against its gold answer (llm_judge, which batches calls, is separate).
GRADERS = {"exact_match": exact_match, "f1": token_f1, "grid_match": grid_match, "cell_accuracy": cell_accuracy}


def question_prompts(tokenizer: PreTrainedTokenizerBase, questions: Sequence[Question]) -> list[str]:
    return [chat_prompt(tokenizer, q.question) for q in questions]


def answer_sequences(
    tokenizer: PreTrainedTokenizerBase, questions: Sequence[Question]
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per question: the question prompt then the gold answer; labels on the answer only."""
    sequences = []
    for prompt, question in zip(question_prompts(tokenizer, questions), questions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(question.answer, add_special_tokens=False)["input_ids"]
        sequences.append((prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids))
    return sequences


@torch.no_grad()
def teacher_forced_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    batch_size: int,
) -> dict[str, list[float]]:
    """Per question, from one forward pass over question + gold answer (no generation):
    `answer_loglik`, the mean log-probability per answer token, and `token_accuracy`, the share of
    answer tokens that are the model's top prediction given everything before them."""
    sequences = answer_sequences(tokenizer, questions)
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {"answer_loglik": [], "token_accuracy": []}
    for start in range(0, len(sequences), batch_size):
        batch = pad_batch(
            [{"input_ids": ids, "labels": labels} for ids, labels in sequences[start : start + batch_size]],
            tokenizer.pad_token_id,
        )
        batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # The token at position t is predicted by the logits at t - 1.
        targets = batch["labels"][:, 1:]
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        token_log_probs = log_probs.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
        answer = targets != IGNORE_INDEX
        lengths = answer.sum(-1)
        scores["answer_loglik"].extend(((token_log_probs * answer).sum(-1) / lengths).tolist())
        hits = (log_probs.argmax(-1) == targets) & answer
        scores["token_accuracy"].extend((hits.sum(-1) / lengths).tolist())
    model.train(was_training)
    return scores


def answer_loglik(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    batch_size: int,
) -> list[float]:
    """Mean log-probability per gold answer token, given the question (teacher forcing, no generation)."""
    return teacher_forced_scores(model, tokenizer, questions, batch_size)["answer_loglik"]


def judge_answers(config: JudgeConfig, questions: Sequence[Question], predictions: Sequence[str]) -> list[float]:
    """1.0 where the judge says yes. The API key comes from the environment variable the config names."""
    from openai import OpenAI, OpenAIError

    client = OpenAI(
        base_url=config.base_url,
        api_key=os.environ.get(config.api_key_env, "EMPTY"),
        timeout=config.timeout_s,
    )
    grades = []
    for question, prediction in zip(questions, predictions, strict=True):
        prompt = JUDGE_PROMPT.format(question=question.question, gold=question.answer, prediction=prediction)
        try:
            reply = client.chat.completions.create(
                model=config.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0.0,
                max_tokens=4,
            )
        except OpenAIError as exc:
            raise SealError(f"llm_judge at {config.base_url} failed: {str(exc).splitlines()[0]}") from None
        verdict = (reply.choices[0].message.content or "").strip().lower()
        grades.append(float(verdict.startswith("yes")))
    return grades


def greedy_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    config: RewardConfig,
    batch_size: int | None = None,
) -> list[str]:
    prompts = question_prompts(tokenizer, questions)
    texts = generate_texts(
        model, tokenizer, prompts, max_new_tokens=config.max_new_tokens, batch_size=batch_size or config.batch_size
    )
    return [candidates[0].text for candidates in texts]


def grade(metric: str, questions: Sequence[Question], predictions: Sequence[str], config: RewardConfig) -> list[float]:
    """Per-question grades of greedy answers under one generated-answer metric."""
    if metric == "llm_judge":
        return judge_answers(config.judge, questions, predictions)
    return [GRADERS[metric](prediction, q.answer) for prediction, q in zip(predictions, questions, strict=True)]


def score_questions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    metrics: Sequence[str],
    config: RewardConfig,
    answer: Callable[[Sequence[Question]], list[str]] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the questions; greedy answers are generated once for all that need them
    (by `answer` where given, else by the model's `generate`)."""
    results: dict[str, float] = {}
    forced = [metric for metric in metrics if metric in TEACHER_FORCED_METRICS]
    if forced:
        scores = teacher_forced_scores(model, tokenizer, questions, config.batch_size)
        results |= {metric: _mean(scores[metric]) for metric in forced}
    generated = [metric for metric in metrics if metric not in TEACHER_FORCED_METRICS]
    if generated:
        predictions = answer(questions) if answer else greedy_answers(model, tokenizer, questions, config)
        for metric in generated:
            results[metric] = _mean(grade(metric, questions, predictions, config))
    return results


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
