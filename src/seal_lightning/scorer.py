"""Adapt, then score: the one place where self-edits update a model and the updated model is measured.

fit's E-step, `evaluate`, the held-out evaluation and the continual stream all score through
`SelfEditScorer`. It chooses sequential PEFT adapters or stacked ones (`inner.batched`), trains them
(`inner.py`, `multilora.py`), answers through them (its own `generate`, or the sampler's engine where
the backend serves adapters) and grades the answers (`rewards.py`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import TEACHER_FORCED_METRICS, RewardConfig
from seal_lightning.domains import Domain, Item, Question, SelfEditUpdate
from seal_lightning.inner import adapted, tokenized
from seal_lightning.multilora import MultiLoRAModel, stack_key, stacked_adapters
from seal_lightning.rewards import (
    answer_sequences,
    grade,
    mean_grade,
    question_prompts,
    set_means,
    teacher_forced_scores,
)
from seal_lightning.sampling.base import AdapterAnswerer
from seal_lightning.sampling.hf import greedy_texts


def greedy_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[Question],
    config: RewardConfig,
    batch_size: int | None = None,
    route: Callable[[torch.Tensor], None] | None = None,
    groups: Sequence[int] | None = None,
) -> list[str]:
    return greedy_texts(
        model,
        tokenizer,
        question_prompts(tokenizer, questions),
        max_new_tokens=config.max_new_tokens,
        batch_size=batch_size or config.batch_size,
        route=route,
        groups=groups,
    )


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
        results |= {metric: mean_grade(scores[metric]) for metric in forced}
    generated = [metric for metric in metrics if metric not in TEACHER_FORCED_METRICS]
    if generated:
        predictions = answer(questions) if answer else greedy_answers(model, tokenizer, questions, config)
        for metric in generated:
            results[metric] = mean_grade(grade(metric, questions, predictions, config))
    return results


@dataclass(frozen=True)
class InnerResult:
    reward: float
    baseline: float


@dataclass(frozen=True)
class Job:
    """One inner loop: train on `update` with `seed`, then score each question set in `questions` (one per
    item the update covers: one item in the single-passage setting, several in continued pretraining)."""

    update: SelfEditUpdate
    seed: int
    questions: tuple[tuple[Question, ...], ...]


Scores = dict[str, float]


class SelfEditScorer:
    """Adapt, then score: the one place where self-edits update a model and the updated model is measured.

    Jobs whose updates say `inner.batched` train together as stacked adapters (those sharing training
    settings, whatever their items); the others train one by one with PEFT. A rejected self-edit trains
    nothing and scores as the model without an update (its baseline), so it never gains. With an
    `answerer` (vLLM through LoRA requests), every generated answer of this scorer comes from it, the
    baseline's too, so a gain never compares two answer engines.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        domain: Domain,
        reward_config: RewardConfig,
        baselines: dict[str, float] | None = None,
        answerer: AdapterAnswerer | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.domain = domain
        self.reward_config = reward_config
        self.baselines = dict(baselines or {})
        self.answerer = answerer

    def baseline(self, item: Item) -> float:
        """The reward of the model without an update, computed once per item."""
        if item.key not in self.baselines:
            self.baselines[item.key] = self.unadapted(self.domain.questions(item), [self.reward_config.name])[
                self.reward_config.name
            ]
        return self.baselines[item.key]

    def unadapted(self, questions: Sequence[Question], metrics: Sequence[str]) -> Scores:
        """The metrics of the model as it is, its answers from the answerer where there is one."""
        answer = None
        if self.answerer is not None:
            answerer = self.answerer
            prompts = question_prompts(self.tokenizer, questions)
            answer = lambda _: answerer(prompts, [None] * len(prompts))  # noqa: E731
        return score_questions(self.model, self.tokenizer, questions, metrics, self.reward_config, answer)

    def score_many(self, updates: Sequence[tuple[Item, SelfEditUpdate, int]]) -> list[InnerResult]:
        """The reward (`reward.name`) after each (item, update, seed) inner loop, against the item's baseline."""
        jobs = [Job(update, seed, (self.domain.questions(item),)) for item, update, seed in updates]
        measured = self.measure(jobs, [self.reward_config.name])
        return [
            InnerResult(reward=scores[0][self.reward_config.name], baseline=self.baseline(item))
            for (item, _, _), scores in zip(updates, measured, strict=True)
        ]

    def measure(self, jobs: Sequence[Job], metrics: Sequence[str]) -> list[list[Scores]]:
        """For each job, the metrics of the adapted model on each of its question sets."""
        results: dict[int, list[Scores]] = {}
        # Updates train together where their settings allow one stack (each adapter keeps its own lr and
        # epochs, which an ARC self-edit chooses).
        groups: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            if job.update.error is not None:
                results[index] = [self.unadapted(questions, metrics) for questions in job.questions]
            elif job.update.inner.batched:
                groups.setdefault(stack_key(job.update.inner), []).append(index)
            else:
                with adapted(self.model, self.tokenizer, job.update, job.seed) as model:
                    results[index] = [
                        score_questions(model, self.tokenizer, questions, metrics, self.reward_config)
                        for questions in job.questions
                    ]
        for indices in groups.values():
            for index, scores in zip(indices, self.measure_stacked([jobs[i] for i in indices], metrics), strict=True):
                results[index] = scores
        return [results[index] for index in range(len(jobs))]

    def measure_stacked(self, jobs: Sequence[Job], metrics: Sequence[str]) -> list[list[Scores]]:
        """Jobs trained as one stack of adapters and scored in one pass: every question set goes through its
        own job's adapter, teacher-forced in one packed forward, greedy answers in one routed batch."""
        examples = [tokenized(job.update, self.tokenizer) for job in jobs]
        seeds = [job.seed for job in jobs]
        sets = [(k, questions) for k, job in enumerate(jobs) for questions in job.questions]
        owners = [k for k, questions in sets for _ in questions]
        flat = [question for _, questions in sets for question in questions]
        # Each question's set, so that scores average per set.
        set_of = [s for s, (_, questions) in enumerate(sets) for _ in questions]
        configs = [job.update.inner for job in jobs]
        with stacked_adapters(self.model, self.tokenizer, examples, seeds, configs) as multi:
            per_question = self.routed(multi, owners, flat, metrics)
        by_metric = {metric: set_means(values, set_of, len(sets)) for metric, values in per_question.items()}
        means = [{metric: values[index] for metric, values in by_metric.items()} for index in range(len(sets))]
        by_job: list[list[Scores]] = [[] for _ in jobs]
        for (k, _), scores in zip(sets, means, strict=True):
            by_job[k].append(scores)
        return by_job

    def routed(
        self, multi: MultiLoRAModel, owners: Sequence[int], questions: Sequence[Question], metrics: Sequence[str]
    ) -> dict[str, list[float]]:
        """Each metric per question, question i answered through adapter owners[i] of `multi`: teacher-forced
        in one packed forward, greedy answers in one routed batch."""
        per_question: dict[str, list[float]] = {}
        forced = [metric for metric in metrics if metric in TEACHER_FORCED_METRICS]
        if forced:
            sequences = answer_sequences(self.tokenizer, questions)
            values = multi.sequence_scores(
                [(k, ids, labels) for k, (ids, labels) in zip(owners, sequences, strict=True)]
            )
            per_question |= {metric: values[metric] for metric in forced}
        generated = [metric for metric in metrics if metric not in TEACHER_FORCED_METRICS]
        if generated:
            predictions = self.stacked_answers(multi, owners, questions)
            per_question |= {metric: grade(metric, questions, predictions, self.reward_config) for metric in generated}
        return per_question

    def stacked_answers(self, multi: MultiLoRAModel, owners: Sequence[int], questions: Sequence[Question]) -> list[str]:
        """Greedy answers, question i through adapter owners[i]: from the answerer with the adapters exported
        as PEFT folders, else from one greedy batch, rows routed and prefixes shared per adapter."""
        if self.answerer is not None:
            prompts = question_prompts(self.tokenizer, questions)
            with tempfile.TemporaryDirectory(prefix="seal-adapters-") as folder:
                paths = [str(multi.export(k, Path(folder) / f"adapter_{k}")) for k in range(multi.num_adapters)]
                return self.answerer(prompts, [paths[k] for k in owners])
        adapter_of = torch.tensor(list(owners), device=multi.base.device)
        route = lambda rows: multi.routing.set_rows(adapter_of[rows])  # noqa: E731
        return greedy_answers(
            multi.base, self.tokenizer, questions, self.reward_config, len(questions), route, groups=owners
        )
