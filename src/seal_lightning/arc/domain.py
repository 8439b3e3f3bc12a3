"""Few-shot abstract reasoning (SEAL.md, domain 2): the self-edit is a tool call, not text to learn.

The policy reads a task's demonstrations and answers with JSON choosing data augmentations and
training settings. That choice becomes a test-time-training update: leave-one-out examples built
from the demonstrations (each one in turn is the query, the others its context), expanded with the
chosen augmentations (each transform applied to every grid of an example) and trained with the
chosen learning rate, epochs and loss coverage. The model is then asked for each test output.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Sequence
from typing import ClassVar

from transformers import PreTrainedTokenizerBase

from seal_lightning.arc.augmentations import Transform, fits, transforms_for
from seal_lightning.arc.data import ArcTask, Pair, load_arc_tasks, load_heldout_arc_tasks
from seal_lightning.arc.grids import Grid, grid_to_text
from seal_lightning.arc.toolcall import ChoiceLimits, TTTChoice, configured_choice, parse_selfedit
from seal_lightning.config import SealConfig
from seal_lightning.domains.base import Condition, HeldOutRow, Question, SelfEditUpdate
from seal_lightning.examples import example_length
from seal_lightning.models import chat_prompt

TASK_TEMPLATE = (
    "Find the rule that maps each input grid to its output grid, then apply it to the test input. "
    "Grids are rows of digits 0-9 (colours), one row per line.\n\n{demonstrations}\n\nTest input:\n{query}\nOutput:"
)

SELFEDIT_TEMPLATE = (
    "A puzzle maps each input grid to an output grid by a hidden rule. Grids are rows of digits 0-9, "
    "one row per line.\n\n{demonstrations}\n\n"
    "A solver will be trained on these examples before it answers a new input. Choose its training. "
    "Reply with one JSON object and nothing else, with the keys:\n"
    '"augmentations": a list of any of "basic" (rotations, flips, transposes), "size" (scaled-up grids), '
    '"chain" (two transforms composed), "repeat" (tiled copies);\n'
    '"learning_rate": a number from {min_lr:g} to {max_lr:g};\n'
    '"epochs": a whole number from 1 to {max_epochs};\n'
    '"loss": "all" (learn every token) or "outputs" (learn the output grids only).\n'
    "For example: {example}"
)


# The policy's answer starts here (it is part of the prompt, and put back before parsing): a small model
# then writes the tool call instead of prose or code. It does make at least one family compulsory.
RESPONSE_PREFIX = '{"augmentations": ["'


def demonstrations_text(pairs: Sequence[Pair]) -> str:
    return "\n\n".join(
        f"Example {index}\nInput:\n{grid_to_text(source)}\nOutput:\n{grid_to_text(target)}"
        for index, (source, target) in enumerate(pairs, start=1)
    )


def task_message(demonstrations: Sequence[Pair], query: Grid) -> str:
    """The user message that asks for the output of `query`, given the demonstrations."""
    return TASK_TEMPLATE.format(demonstrations=demonstrations_text(demonstrations), query=grid_to_text(query))


def leave_one_out(pairs: Sequence[Pair]) -> list[tuple[list[Pair], Pair]]:
    """Each demonstration in turn as the query, the others as its context."""
    return [([p for j, p in enumerate(pairs) if j != i], pair) for i, pair in enumerate(pairs)]


def augmented(example: tuple[list[Pair], Pair], transform: Transform) -> tuple[list[Pair], Pair] | None:
    """The example with `transform` applied to every grid; None where a grid outgrows ARC's size limit."""
    context, (source, target) = example
    grids = [transform(grid) for pair in [*context, (source, target)] for grid in pair]
    if not all(fits(grid) for grid in grids):
        return None
    pairs = [(grids[i], grids[i + 1]) for i in range(0, len(grids), 2)]
    return pairs[:-1], pairs[-1]


class ArcDomain:
    name = "arc"
    heldout_rows: ClassVar[dict[str, HeldOutRow]] = {
        "icl": HeldOutRow("icl", "policy_icl"),
        "ttt_standard": HeldOutRow("ttt_standard", None),
        "seal": HeldOutRow("ttt_selfedit", "seal"),
        "policy_selfedit_base": HeldOutRow("ttt_selfedit", "policy_selfedit_base"),
    }
    headline = "seal"
    # The row without an update: the headline minus it is what learning the self-edit adds.
    unadapted = "icl"

    def __init__(self, config: SealConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.limits = ChoiceLimits.from_config(config.arc)
        self.standard = configured_choice(config.arc.standard, self.limits)
        self.oracle = [configured_choice(choice, self.limits) for choice in config.arc.oracle]

    def load(self, path: str | None = None) -> list[ArcTask]:
        return load_arc_tasks(self.config.data, self.config.arc, path)

    def load_heldout(self) -> list[ArcTask]:
        return load_heldout_arc_tasks(self.config.data, self.config.arc)

    def selfedit_prompt(self, item: ArcTask) -> str:
        message = SELFEDIT_TEMPLATE.format(
            demonstrations=demonstrations_text(item.train),
            min_lr=self.limits.min_lr,
            max_lr=self.limits.max_lr,
            max_epochs=self.limits.max_epochs,
            example=self.standard.to_json(),
        )
        return chat_prompt(self.tokenizer, message) + RESPONSE_PREFIX

    def update(self, item: ArcTask, completion: str) -> SelfEditUpdate:
        """The test-time-training update a self-edit asks for; a rejected one carries the reason."""
        # A sampled completion continues the response prefix; a configured one (arc.standard) is whole.
        text = completion if completion.lstrip().startswith("{") else RESPONSE_PREFIX + completion
        parsed = parse_selfedit(text, self.standard, self.limits)
        if parsed.choice is None:
            return SelfEditUpdate(examples=(), inner=self.config.inner, error=parsed.error, notes=parsed.notes)
        return self.training(item, parsed.choice, parsed.notes)

    def training(self, item: ArcTask, choice: TTTChoice, notes: tuple[str, ...] = ()) -> SelfEditUpdate:
        base = leave_one_out(item.train)
        extra = [
            example
            for transform in transforms_for(choice.augmentations)
            for example in (augmented(original, transform) for original in base)
            if example is not None
        ]
        # The plain leave-one-out examples always stay; augmented ones fill up to arc.max_examples.
        room = max(self.config.arc.max_examples - len(base), 0)
        if len(extra) > room:
            rng = random.Random(zlib.crc32(item.key.encode()))
            extra = rng.sample(extra, room)
            notes = (*notes, f"augmented examples sampled down to {room} (arc.max_examples)")
        examples = [self.example(context, query) for context, query in [*base, *extra]]
        kept = [e for e in examples if example_length(self.tokenizer, *e) <= self.config.inner.max_length]
        if len(kept) < len(examples):
            notes = (*notes, f"{len(examples) - len(kept)} examples longer than inner.max_length dropped")
        inner = dataclasses.replace(self.config.inner, lr=choice.learning_rate, epochs=choice.epochs)
        error = None if kept else f"no training example fits inner.max_length={self.config.inner.max_length}"
        return SelfEditUpdate(
            examples=tuple(kept), inner=inner, prompt_loss=choice.loss == "all", error=error, notes=notes
        )

    def example(self, context: list[Pair], query: Pair) -> tuple[str, str]:
        source, target = query
        return chat_prompt(self.tokenizer, task_message(context, source)), grid_to_text(target)

    def questions(self, item: ArcTask) -> tuple[Question, ...]:
        return tuple(
            Question(task_message(item.train, source), grid_to_text(solution)) for source, solution in item.test
        )

    def conditions(self) -> dict[str, Condition]:
        return {
            "icl": Condition("none"),
            "ttt_standard": Condition("fixed", (self.standard.to_json(),)),
            "ttt_selfedit": Condition("sampled"),
            "seal": Condition("sampled", writer="policy", adapted="policy"),
            "policy_icl": Condition("none", adapted="policy"),
            "policy_selfedit_base": Condition("sampled", writer="policy", adapted="model"),
            "oracle": Condition("fixed", tuple(choice.to_json() for choice in self.oracle)),
        }
