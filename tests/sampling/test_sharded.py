"""Sampling shared among ranks: each group of prompts is drawn from its own seed, on the real built-in model."""

from __future__ import annotations

from seal_lightning.config import SamplerConfig
from seal_lightning.distributed import Ranks
from seal_lightning.models import chat_prompt
from seal_lightning.sampling.hf import TransformersSampler
from seal_lightning.sampling.sharded import GROUP_SEED_STRIDE, group_seeds, sample_shared

TOPICS = ["the sea", "a fruit", "a mountain", "a city", "the wind"]


def test_groups_get_their_own_seeds_and_the_first_keeps_the_seed():
    assert group_seeds(5, 2, seed=7) == [7, 7, 7 + GROUP_SEED_STRIDE, 7 + GROUP_SEED_STRIDE, 7 + 2 * GROUP_SEED_STRIDE]


def test_a_group_draws_the_same_completions_wherever_it_is_drawn(policy, tokenizer):
    """What makes the ranks' shares add up to the one-process draw: a group drawn alone (as a rank draws its
    share) gets exactly what it gets among all the groups in one call."""
    sampler = TransformersSampler(SamplerConfig(max_new_tokens=12, batch_size=4), policy, tokenizer)
    prompts = [chat_prompt(tokenizer, f"Write one sentence about {topic}.") for topic in TOPICS]
    assert sampler.group_size(2) == 2
    together = sample_shared(sampler, prompts, 2, seed=3, ranks=Ranks())
    seeds = group_seeds(len(prompts), 2, seed=3)
    alone = [sampler.sample(prompts[i : i + 2], 2, seeds[i : i + 2]) for i in (4, 2, 0)]
    assert alone[2] + alone[1] + alone[0] == together
    # One group with one seed is what a single call with that seed has always drawn.
    assert sample_shared(sampler, prompts[:2], 2, seed=3, ranks=Ranks()) == together[:2]
    assert len({c.text for texts in together for c in texts}) > 5  # sampled, not copies
