"""Which items each ReST-EM round works on, and the check that held-out items are never among them.

The paper gives every round new passages (train_round1.json, then train_round2.json): a round scored
on passages whose best self-edits the policy was just fine-tuned on would report an inflated gain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from seal_lightning.config import DataConfig
from seal_lightning.domains import Domain, Item
from seal_lightning.errors import DataError


def round_items(domain: Domain, data: DataConfig, rounds: int) -> list[list[Item]]:
    """Round r's items: the file data.rounds[r-1]; else the r-th slice of data.per_round items (by default
    the items split evenly over the rounds); with data.reuse_items, all items every round."""
    if data.rounds is not None:
        if len(data.rounds) < rounds:
            raise DataError(f"outer.rounds={rounds} but data.rounds names {len(data.rounds)} files")
        per_round = [list(domain.load(path)) for path in data.rounds[:rounds]]
    else:
        items = list(domain.load())
        if data.reuse_items:
            return [items] * rounds
        size = data.per_round or len(items) // rounds
        if size == 0 or size * rounds > len(items):
            raise DataError(
                f"{rounds} rounds of {size or 1} items need {(size or 1) * rounds}, but the data holds {len(items)} "
                "(data.per_round, data.limit, outer.rounds)"
            )
        per_round = [items[r * size : (r + 1) * size] for r in range(rounds)]
    first_round: dict[str, int] = {}
    for index, items in enumerate(per_round, start=1):
        for item in items:
            if first_round.setdefault(item.key, index) != index:
                raise DataError(
                    f"{item.title!r} is in rounds {first_round[item.key]} and {index}: each round needs new items"
                )
    return per_round


def check_heldout(heldout: Sequence[Item], trained: set[str], what: str) -> None:
    """Held-out items must be new to the model: refuse any whose key is among those `what` trained or selected on."""
    shared = [item.title for item in heldout if item.key in trained]
    if shared:
        raise DataError(f"held-out item {shared[0]!r} (and {len(shared) - 1} more) is among the items {what}")


def trained_keys(model: str | None) -> set[str]:
    """The items a fit policy folder (RUN/round_N/policy) was trained or selected on: those of rounds 1..N of
    its run. Any other model (the built-in one, a hub id, a folder of one's own): none known."""
    if model is None:
        return set()
    folder = Path(model)
    round_name = folder.parent.name
    if folder.name != "policy" or not round_name.startswith("round_") or not round_name[6:].isdigit():
        return set()
    keys: set[str] = set()
    for index in range(1, int(round_name[6:]) + 1):
        selfedits = folder.parent.parent / f"round_{index}" / "selfedits.json"
        if selfedits.is_file():
            keys |= set(json.loads(selfedits.read_text(encoding="utf-8")))
    return keys
