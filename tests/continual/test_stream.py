from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from seal_lightning.continual.stream import examples_of, passage_stream, target_token_view
from seal_lightning.examples import IGNORE_INDEX

DOCS = [
    [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}],
    [{"input_ids": [1, 2], "labels": [1, 2]}],
]


def test_one_experience_per_passage_in_stream_order():
    stream = passage_stream(DOCS, pad_token_id=0)
    assert [e.current_experience for e in stream] == [0, 1]
    assert [len(e.dataset) for e in stream] == [2, 1]


def test_items_are_inputs_with_next_token_targets_and_a_task_label():
    x, y, task = passage_stream(DOCS, pad_token_id=0)[0].dataset[0]
    assert x.tolist() == [5, 6, 7] and y.tolist() == [6, 7, IGNORE_INDEX] and task == 0


def test_examples_round_trip_to_the_same_training_loss_positions():
    (examples,) = [examples_of(e.dataset) for e in passage_stream(DOCS[:1], pad_token_id=0)]
    # The first label is never a target (nothing predicts it), so it comes back ignored.
    assert examples == [
        {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]},
        {"input_ids": [8, 9], "labels": [IGNORE_INDEX, 9]},
    ]


def test_collate_right_pads_inputs_and_ignores_padded_targets():
    dataset = passage_stream(DOCS, pad_token_id=0)[0].dataset
    x, y, tasks = next(iter(DataLoader(dataset, batch_size=2, collate_fn=dataset.collate_fn)))
    assert torch.equal(x, torch.tensor([[5, 6, 7], [8, 9, 0]]))
    assert torch.equal(y, torch.tensor([[6, 7, IGNORE_INDEX], [9, IGNORE_INDEX, IGNORE_INDEX]]))
    assert tasks.tolist() == [0, 0]


def test_target_token_view_has_one_class_per_trained_token():
    view = target_token_view(passage_stream(DOCS, pad_token_id=0)[0].dataset)
    assert sorted(view.targets) == [6, 7, 9]
    assert set(view.task_set[0].targets.uniques) == {6, 7, 9}
