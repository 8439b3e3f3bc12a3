"""Packing the batched inner loop's documents into rows, and scheduling each adapter's batches into steps.

Documents of many adapters share each training step. They are packed into rows (position ids restart
per document, so transformers builds a block-diagonal causal mask and no document sees another), and
each adapter's batches are placed from a staggered start step so every step carries a similar load.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from seal_lightning.examples import IGNORE_INDEX
from seal_lightning.finetune import epoch_batches

# Candidate row widths for packing (a row is never narrower than its longest sequence). Attention over a
# row costs its width squared however its documents split it, and padding costs like tokens: `pack`
# takes the width that makes their sum least.
ROW_WIDTHS = (128, 256, 512)
# At this row width attention costs a token about as much as all the linear layers do (measured on CPU
# with SmolLM2-135M: a quarter of them at 512).
ATTENTION_PARITY_WIDTH = 2048


@dataclass
class PackedBatch:
    """Rows of concatenated sequences. Per token: its adapter and its sequence (-1 for row padding);
    `labels` are already shifted (see `shifted_labels`); `active` marks the adapters present."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    token_adapter: torch.Tensor
    token_sequence: torch.Tensor
    active: torch.Tensor

    def to(self, device: torch.device) -> PackedBatch:
        return PackedBatch(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))

    def row_parts(self, size: int | None) -> Iterator[PackedBatch]:
        """The rows `size` at a time (None: all): a sequence never spans two rows, so each part holds whole
        sequences. `active` stays the whole batch's."""
        rows = self.input_ids.shape[0]
        for start in range(0, rows, size or rows):
            part = slice(start, start + (size or rows))
            per_token = ("input_ids", "position_ids", "labels", "token_adapter", "token_sequence")
            yield PackedBatch(*(getattr(self, name)[part] for name in per_token), self.active)


def pack(sequences: Sequence[tuple[int, list[int], list[int]]], num_adapters: int, pad_token_id: int) -> PackedBatch:
    """Pack (adapter, input_ids, shifted labels) sequences into rows, first-fit decreasing by length,
    at the cheapest of the ROW_WIDTHS.

    Position ids restart at each sequence, which makes transformers mask attention block-diagonally;
    the padding at a row's end is a segment of its own that nothing attends to and nothing learns from.
    """
    lengths = [len(ids) for _, ids, _ in sequences]
    packings = [first_fit_decreasing(lengths, max(width, *lengths)) for width in ROW_WIDTHS]
    shapes = [(len(rows), max(sum(lengths[i] for i in row) for row in rows)) for rows in packings]
    costs = [count * width * (1 + width / ATTENTION_PARITY_WIDTH) for count, width in shapes]
    cheapest = costs.index(min(costs))
    rows, shape = packings[cheapest], shapes[cheapest]
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    token_adapter = torch.full(shape, -1, dtype=torch.long)
    token_sequence = torch.full(shape, -1, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    active = torch.zeros(num_adapters, dtype=torch.bool)
    for r, row in enumerate(rows):
        start = 0
        for index in row:
            adapter, ids, shifted = sequences[index]
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            labels[r, start:end] = torch.tensor(shifted)
            token_adapter[r, start:end] = adapter
            token_sequence[r, start:end] = index
            position_ids[r, start:end] = torch.arange(len(ids))
            active[adapter] = True
            start = end
        position_ids[r, start:] = torch.arange(shape[1] - start)
    return PackedBatch(input_ids, position_ids, labels, token_adapter, token_sequence, active)


def first_fit_decreasing(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Sequence indices per row: longest first, each into the first row it fits in."""
    rows: list[list[int]] = []
    filled: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, used in enumerate(filled) if used + lengths[index] <= width), len(rows))
        if row == len(rows):
            rows.append([])
            filled.append(0)
        rows[row].append(index)
        filled[row] += lengths[index]
    return rows


def shifted_labels(labels: list[int]) -> list[int]:
    """Label of position t = token t+1 (what the logits at t predict); the last position predicts nothing."""
    return [*labels[1:], IGNORE_INDEX]


def step_batches(
    documents: Sequence[Sequence[dict[str, list[int]]]],
    seeds: Sequence[int],
    epochs: Sequence[int],
    batch_sizes: Sequence[int],
    pad_token_id: int,
) -> list[PackedBatch]:
    """The stack's steps: adapter k's batches (its own epochs and batch size), in the order a sequential
    run would see them, one per step from its start step on (see `staggered_starts`)."""
    schedules = [
        epoch_batches(list(examples), batch_size, epochs_k, seed)
        for examples, seed, epochs_k, batch_size in zip(documents, seeds, epochs, batch_sizes, strict=True)
    ]
    tokens = [[sum(len(example["input_ids"]) for example in batch) for batch in schedule] for schedule in schedules]
    starts = staggered_starts(tokens)
    steps = []
    for j in range(max(start + len(schedule) for start, schedule in zip(starts, schedules, strict=True))):
        sequences = [
            (k, example["input_ids"], shifted_labels(example["labels"]))
            for k, (start, schedule) in enumerate(zip(starts, schedules, strict=True))
            if 0 <= j - start < len(schedule)
            for example in schedule[j - start]
        ]
        steps.append(pack(sequences, len(schedules), pad_token_id))
    return steps


def staggered_starts(tokens: Sequence[Sequence[int]]) -> list[int]:
    """The step at which each adapter starts, given its tokens per step.

    Adapters are independent, so any start is exact. The stack needs as many steps as the longest
    adapter has; starting every adapter at once would leave its last steps to that one adapter, with a
    few tokens each, where a step costs mostly fixed overhead. Instead each adapter (most tokens first)
    starts where the tokens already placed over its span are least (least sum of squared step totals),
    so every step carries a similar load.
    """
    horizon = max(len(steps) for steps in tokens)
    load = [0] * horizon
    starts = [0] * len(tokens)
    for k in sorted(range(len(tokens)), key=lambda k: -sum(tokens[k])):
        steps = tokens[k]
        added = [
            sum((load[start + i] + n) ** 2 - load[start + i] ** 2 for i, n in enumerate(steps))
            for start in range(horizon - len(steps) + 1)
        ]
        starts[k] = added.index(min(added))
        for i, n in enumerate(steps):
            load[starts[k] + i] += n
    return starts
