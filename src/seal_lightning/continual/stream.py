"""Passages as an Avalanche stream: each passage's self-edit documents are one experience.

An experience's dataset yields `(x, y, task_label)` like Avalanche's classification data: x is a
document's token ids, y the next-token targets (y[t] is the token after x[t], padding and the last
position ignored), so the cross-entropy of flattened logits against flattened y is the LM loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience, benchmark_from_datasets
from avalanche.benchmarks.utils import AvalancheDataset, DataAttribute, TaskAwareClassificationDataset
from torch.utils.data import Dataset

from seal_lightning.examples import IGNORE_INDEX

Example = dict[str, list[int]]


class DocumentDataset(Dataset):
    """Tokenized documents as (input ids, next-token targets) pairs."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        example = self.examples[index]
        return torch.tensor(example["input_ids"]), torch.tensor([*example["labels"][1:], IGNORE_INDEX])


def collate_documents(pad_token_id: int):
    """Right-pads a batch of (x, y, task) items. Causal attention never looks right, so padded
    positions cannot change the logits of real ones and no attention mask is needed."""

    def collate(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> list[torch.Tensor]:
        xs, ys, tasks = zip(*items, strict=True)
        x = torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True, padding_value=pad_token_id)
        y = torch.nn.utils.rnn.pad_sequence(list(ys), batch_first=True, padding_value=IGNORE_INDEX)
        return [x, y, torch.tensor(tasks)]

    return collate


def document_dataset(examples: Sequence[Example], pad_token_id: int) -> AvalancheDataset:
    """An Avalanche dataset of one passage's documents (task label 0: one model serves every passage)."""
    return AvalancheDataset(
        [DocumentDataset(examples)],
        data_attributes=[DataAttribute([0] * len(examples), "targets_task_labels", use_in_getitem=True)],
        collate_fn=collate_documents(pad_token_id),
    )


def examples_of(dataset: AvalancheDataset) -> list[Example]:
    """The training examples behind dataset items (as `LoRAFineTuneModule.fit` takes them)."""
    examples = []
    for index in range(len(dataset)):
        x, y, _ = dataset[index]
        examples.append({"input_ids": x.tolist(), "labels": [IGNORE_INDEX, *y[:-1].tolist()]})
    return examples


def passage_stream(documents: Sequence[Sequence[Example]], pad_token_id: int) -> list[DatasetExperience]:
    """One experience per passage, in stream order (`current_experience` is the position)."""
    datasets = [document_dataset(examples, pad_token_id) for examples in documents]
    return list(benchmark_from_datasets(train=datasets).train_stream)


def target_token_view(dataset: AvalancheDataset) -> TaskAwareClassificationDataset:
    """The experience as a classification dataset whose classes are vocabulary tokens: one sample per
    trained next-token target. LwF distils only the output units of classes seen so far, which for a
    language model are the tokens its edits were trained to predict."""
    targets = [token for index in range(len(dataset)) for token in dataset[index][1].tolist() if token != IGNORE_INDEX]
    return TaskAwareClassificationDataset(
        [torch.utils.data.TensorDataset(torch.tensor(targets))],
        data_attributes=[
            DataAttribute(targets, "targets"),
            DataAttribute([0] * len(targets), "targets_task_labels", use_in_getitem=True),
        ],
    )
