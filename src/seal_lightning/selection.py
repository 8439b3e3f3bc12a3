"""The E-step's selection: which scored self-edits the M-step learns from (ReST-EM's filter)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoredSelfEdit:
    item: str
    sample: int
    completion: str
    reward: float
    baseline: float
    # Why the domain rejected the self-edit (it then scores the baseline and is never kept), and what
    # it clamped or dropped.
    error: str | None = None
    notes: tuple[str, ...] = ()
    # Stopped at sampler.max_new_tokens: learnt without an end-of-sequence token if kept.
    truncated: bool = False

    @property
    def gain(self) -> float:
        return self.reward - self.baseline

    @property
    def candidate(self) -> bool:
        """Whether the M-step may learn it: not rejected, not empty (the reference drops empty ones), and with
        a reward (NaN where every judge grade of it failed: nothing says it is good)."""
        return self.error is None and bool(self.completion.strip()) and not math.isnan(self.reward)


def select_best(
    scored: list[ScoredSelfEdit], min_gain: float | None, solved_at: float | None = None
) -> list[ScoredSelfEdit]:
    """The self-edits the M-step learns from, per item: every candidate whose reward reaches `solved_at`,
    else the best candidate; with `min_gain`, only those whose gain reaches it."""
    by_item: dict[str, list[ScoredSelfEdit]] = defaultdict(list)
    for edit in scored:
        if edit.candidate:
            by_item[edit.item].append(edit)
    kept = []
    for edits in by_item.values():
        solved = [e for e in edits if solved_at is not None and e.reward >= solved_at]
        kept.extend(solved or [max(edits, key=lambda e: e.reward)])
    return [edit for edit in kept if min_gain is None or edit.gain >= min_gain]
