"""Sampling shared among data-parallel ranks, drawing the same completions whatever the number of ranks.

The prompts are cut into groups of the backend's `group_size` in a fixed order, and group g is drawn with
its own seed, `seed + GROUP_SEED_STRIDE * g`: a group's completions depend on its prompts and that seed
only, so a rank can draw any set of groups. The first group keeps `seed` itself, so a run whose prompts
fit one group draws what a single call with `seed` always drew.
"""

from __future__ import annotations

from seal_lightning.distributed import Ranks
from seal_lightning.sampling.base import Completion, Sampler

# Far enough apart that groups' seeds never meet the small offsets added for rounds and inner seeds.
GROUP_SEED_STRIDE = 1_000_003


def group_seeds(prompts: int, group_size: int, seed: int) -> list[int]:
    """The seed each prompt is drawn with."""
    return [seed + GROUP_SEED_STRIDE * (index // group_size) for index in range(prompts)]


def sample_shared(sampler: Sampler, prompts: list[str], k: int, seed: int, ranks: Ranks) -> list[list[Completion]]:
    """k completions per prompt, in prompt order, on every rank; each rank draws its share of the groups."""
    size = sampler.group_size(k)
    seeds = group_seeds(len(prompts), size, seed)
    groups = [list(range(start, min(start + size, len(prompts)))) for start in range(0, len(prompts), size)]
    mine = [index for group in ranks.share([len(g) for g in groups]) for index in groups[group]]
    drawn = sampler.sample([prompts[i] for i in mine], k, [seeds[i] for i in mine]) if mine else []
    completions: dict[int, list[Completion]] = {}
    for indices, texts in ranks.gather((mine, drawn)):
        completions.update(zip(indices, texts, strict=True))
    return [completions[index] for index in range(len(prompts))]
