"""Greedy answers that share prompt prefixes and drop finished rows: the same tokens as `generate`, on the
real built-in model."""

from __future__ import annotations

import itertools

import torch

from seal_lightning.config import LoRAConfig
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.knowledge.data import Passage
from seal_lightning.knowledge.domain import answer_questions
from seal_lightning.multilora import MultiLoRAModel
from seal_lightning.rewards import question_prompts
from seal_lightning.sampling.hf import common_prefix_length, generate_texts, greedy_texts

PASSAGE = Passage.from_row(builtin_passages("validation")[0])


def prompts(tokenizer) -> list[str]:
    # Question prompts of different lengths, and one that asks for a long answer, so rows end far apart.
    return [*question_prompts(tokenizer, answer_questions(PASSAGE)), "Tell me a long story about a lighthouse."]


def generated(policy, tokenizer, texts: list[str], max_new_tokens: int) -> list[str]:
    completions = generate_texts(policy, tokenizer, texts, max_new_tokens=max_new_tokens, batch_size=len(texts))
    return [candidates[0].text for candidates in completions]


def test_greedy_texts_are_generates_greedy_texts(policy, tokenizer):
    texts = prompts(tokenizer)
    expected = generated(policy, tokenizer, texts, max_new_tokens=40)
    assert greedy_texts(policy, tokenizer, texts, max_new_tokens=40, batch_size=3) == expected
    assert greedy_texts(policy, tokenizer, texts, max_new_tokens=40, batch_size=len(texts)) == expected
    # The questions share their chat template and title; the story, alone in its group, shares with itself.
    questions = [0] * (len(texts) - 1) + [1]
    shared = greedy_texts(policy, tokenizer, texts, max_new_tokens=40, batch_size=len(texts), groups=questions)
    assert shared == expected


def test_common_prefix_leaves_every_prompt_a_token_of_its_own():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert common_prefix_length([[1, 2, 3]]) == 2
    assert common_prefix_length([[7], [7, 8]]) == 0


def test_each_group_runs_its_prefix_once_then_rows_leave_as_they_end(policy, tokenizer):
    texts = prompts(tokenizer)
    groups = [0, 0, 1, 1, 1, 2, 2][: len(texts)]
    heard: list[list[int]] = []
    greedy_texts(
        policy,
        tokenizer,
        texts,
        max_new_tokens=40,
        batch_size=len(texts),
        route=lambda rows: heard.append(rows.tolist()),
        groups=groups,
    )
    # Group 2's prompts share no token (one has no chat template): they run whole.
    assert heard[0] == [0, 2], "one prefix row per group that shares a prefix"
    assert heard[1] == list(range(len(texts)))
    assert len(heard) > 2, "answers of different lengths must shrink the batch"
    for before, after in itertools.pairwise(heard[1:]):
        assert set(after) < set(before)


def test_each_row_keeps_its_adapter_as_the_batch_shrinks(policy, tokenizer):
    texts = prompts(tokenizer) * 2
    owners = torch.tensor([0] * (len(texts) // 2) + [1] * (len(texts) // 2))
    multi = MultiLoRAModel.from_seeds(policy, LoRAConfig(rank=4, alpha=8), seeds=[0, 1])
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():  # adapters start as no-ops (B = 0): make them differ
            for layer in multi.layers.values():
                layer.lora_B.copy_(0.05 * torch.randn(layer.lora_B.shape, generator=generator))
        multi.routing.set_rows(owners)
        expected = generated(policy, tokenizer, texts, max_new_tokens=24)
        routed = greedy_texts(
            policy,
            tokenizer,
            texts,
            max_new_tokens=24,
            batch_size=len(texts),
            route=lambda rows: multi.routing.set_rows(owners[rows]),
            groups=owners.tolist(),
        )
    finally:
        multi.remove()
    assert routed == expected
    assert expected[: len(texts) // 2] != expected[len(texts) // 2 :], "the two adapters must answer differently"
