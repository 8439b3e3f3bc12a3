"""replay and replay_mix: earlier passages' self-edit documents rehearsed in later updates.

The memory is an Avalanche storage policy. `replay` rehearses all of it in every update; `replay_mix`
mixes in a fixed share, as Avalanche's `ReplayPlugin` mixes memory samples into each minibatch.
"""

from __future__ import annotations

import math
import random

from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.training.storage_policy import ExemplarsBuffer, ExperienceBalancedBuffer, ReservoirSamplingBuffer

from seal_lightning.continual.config import MixedReplayConfig, ReplayConfig
from seal_lightning.continual.learner import ContinualPlugin, SequentialEditor
from seal_lightning.continual.stream import Example, examples_of


class Replay(ContinualPlugin):
    name = "replay"

    def __init__(self, config: ReplayConfig) -> None:
        self.storage: ExemplarsBuffer = (
            ExperienceBalancedBuffer(config.memory_size, adaptive_size=True)
            if config.policy == "balanced"
            else ReservoirSamplingBuffer(config.memory_size)
        )

    def before_training_exp(
        self, learner: SequentialEditor, experience: DatasetExperience, examples: list[Example]
    ) -> list[Example]:
        return examples + self.rehearsed(examples)

    def rehearsed(self, examples: list[Example]) -> list[Example]:
        """The remembered documents this update adds to the passage's own `examples`: all of them."""
        return examples_of(self.storage.buffer)

    def after_training_exp(self, learner: SequentialEditor, experience: DatasetExperience) -> None:
        self.storage.post_adapt(learner, experience)


class MixedReplay(Replay):
    """Rehearse `share` x as many remembered documents as the passage has, drawn afresh for each update:
    the update's cost grows by that share instead of by the whole memory, and the passage's own documents
    keep most of each epoch."""

    name = "replay_mix"

    def __init__(self, config: MixedReplayConfig, seed: int) -> None:
        super().__init__(config)
        self.share = config.share
        self.rng = random.Random(seed)

    def rehearsed(self, examples: list[Example]) -> list[Example]:
        memory = examples_of(self.storage.buffer)
        return self.rng.sample(memory, min(len(memory), math.ceil(self.share * len(examples))))
