"""The domain seam: what differs between SEAL's experiments sits behind `Domain`.

The outer loop, the inner loop, samplers, rewards, tracking and resume serve every domain. A domain
says what its items are, how the policy is asked for a self-edit, what training a self-edit asks
for, which questions score the updated model, and the rows of its `evaluate` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from seal_lightning.config import InnerConfig


@dataclass(frozen=True)
class Question:
    """A question the updated model answers without the item in context, and its gold answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class SelfEditUpdate:
    """One self-edit turned into an inner-loop update: train on `examples` with the `inner` settings.

    `examples` are (prompt, completion) pairs; the loss covers the completion, and the prompt too with
    `prompt_loss`. A rejected self-edit carries its `error`, trains nothing and scores as the baseline;
    `notes` record what was clamped or dropped on the way.
    """

    examples: tuple[tuple[str, str], ...]
    inner: InnerConfig
    prompt_loss: bool = False
    error: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    """A row of the `evaluate` table: which self-edits (if any) update a model before it is scored.

    source: "none" (score the model as it is), "fixed" (each of `selfedits`; the row reports the best,
    so several make an oracle), "sampled" (self-edits written by the `writer`), "external" (from
    `evaluate.external_selfedits`). `writer` and `adapted` name a role: "model" (the model under
    evaluation, `model.name`) or "policy" (a trained policy, `evaluate.policy`); the adapted one answers.
    """

    source: str
    selfedits: tuple[str, ...] = ()
    writer: str = "model"
    adapted: str = "model"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset({self.adapted, self.writer} if self.source == "sampled" else {self.adapted})


@dataclass(frozen=True)
class HeldOutRow:
    """A row of fit's held-out table: the condition that measures it on the starting model (round 0),
    and the one that measures it on a trained round's policy (None: measured at round 0 only)."""

    start: str
    trained: str | None


class Item(Protocol):
    @property
    def key(self) -> str:
        """A stable id for run bookkeeping."""
        ...

    @property
    def title(self) -> str: ...


class Domain(Protocol):
    name: str
    # fit's held-out table, by row label; `headline` is the row whose gain over round 0 says whether SEAL worked.
    heldout_rows: dict[str, HeldOutRow]
    headline: str
    unadapted: str

    def load(self, path: str | None = None) -> Sequence[Item]:
        """Training items (passages, tasks): those of `path`, else of `data.path` or the built-in set."""
        ...

    def load_heldout(self) -> Sequence[Item]:
        """Items no round trains or selects on: `data.heldout`, else the built-in held-out set."""
        ...

    def selfedit_prompt(self, item: Item) -> str:
        """The chat-formatted prompt that asks the policy for a self-edit of this item."""
        ...

    def update(self, item: Item, completion: str) -> SelfEditUpdate:
        """What the self-edit `completion` (untrusted model output) asks the inner loop to train on."""
        ...

    def questions(self, item: Item) -> tuple[Question, ...]:
        """Held-out questions whose answers score an updated model (the question is the whole user message)."""
        ...

    def conditions(self) -> dict[str, Condition]:
        """The rows this domain's `evaluate` table can have."""
        ...
