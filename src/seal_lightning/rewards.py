"""Rewards: how well a (possibly updated) model answers a passage's questions without the passage.

`answer_loglik` (mean log-probability of the gold answer tokens) is dense and cheap, the default
for the built-in model; `exact_match` and `f1` grade greedy answers with SQuAD normalisation;
`llm_judge` asks an OpenAI-compatible endpoint, like the paper's GPT-4.1 grader.
"""

from __future__ import annotations

import collections
import os
import re
import string
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import JudgeConfig, RewardConfig
from seal_lightning.data.knowledge import Question
from seal_lightning.errors import SealError
from seal_lightning.models import chat_prompt
from seal_lightning.sampling.hf import generate_texts
from seal_lightning.selfedit import ANSWER_TEMPLATE

GENERATED_METRICS = ("exact_match", "f1", "llm_judge")
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


def question_prompts(tokenizer: PreTrainedTokenizerBase, questions: Sequence[Question]) -> list[str]:
    return [chat_prompt(tokenizer, ANSWER_TEMPLATE.format(question=q.question)) for q in questions]


@torch.no_grad()
def answer_loglik(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    batch_size: int,
) -> list[float]:
    """Mean log-probability per gold answer token, given the question (teacher forcing, no generation)."""
    prompts = question_prompts(tokenizer, questions)
    sequences, answer_spans = [], []
    for prompt, question in zip(prompts, questions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(question.answer, add_special_tokens=False)["input_ids"]
        sequences.append(prompt_ids + answer_ids)
        answer_spans.append((len(prompt_ids), len(prompt_ids) + len(answer_ids)))
    was_training = model.training
    model.eval()
    scores: list[float] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        for row, (begin, end) in enumerate(answer_spans[start : start + batch_size]):
            # The token at position t is predicted by the logits at t - 1.
            targets = input_ids[row, begin:end].to(model.device)
            token_log_probs = log_probs[row, begin - 1 : end - 1].gather(-1, targets[:, None]).squeeze(-1)
            scores.append(token_log_probs.mean().item())
    model.train(was_training)
    return scores


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


def score_questions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    metrics: Sequence[str],
    config: RewardConfig,
) -> dict[str, float]:
    """Mean of each metric over the questions; greedy answers are generated once for all that need them."""
    results: dict[str, float] = {}
    if "answer_loglik" in metrics:
        results["answer_loglik"] = _mean(answer_loglik(model, tokenizer, questions, config.batch_size))
    if any(metric in GENERATED_METRICS for metric in metrics):
        predictions = [
            texts[0]
            for texts in generate_texts(
                model,
                tokenizer,
                question_prompts(tokenizer, questions),
                max_new_tokens=config.max_new_tokens,
                batch_size=config.batch_size,
            )
        ]
        golds = [q.answer for q in questions]
        if "exact_match" in metrics:
            results["exact_match"] = _mean(list(map(exact_match, predictions, golds)))
        if "f1" in metrics:
            results["f1"] = _mean(list(map(token_f1, predictions, golds)))
        if "llm_judge" in metrics:
            results["llm_judge"] = _mean(judge_answers(config.judge, questions, predictions))
    return results


def reward(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    config: RewardConfig,
) -> float:
    """The configured reward (`reward.name`) of a model on one passage's questions."""
    return score_questions(model, tokenizer, questions, [config.name], config)[config.name]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
