"""Packing documents of many adapters into rows, and staggering the adapters' starts."""

from seal_lightning.packing import ROW_WIDTHS, pack, staggered_starts


def test_pack_places_every_sequence_once_with_restarting_positions():
    lengths = [90, 70, 70, 40, 300, 20, 20, 5, 128]
    sequences = [(k % 3, list(range(1, n + 1)), [7] * n) for k, n in enumerate(lengths)]
    batch = pack(sequences, num_adapters=3, pad_token_id=0)
    assert batch.input_ids.shape[1] >= max(lengths)
    assert batch.input_ids.shape[1] <= max(max(lengths), *ROW_WIDTHS)
    for index, (adapter, ids, labels) in enumerate(sequences):
        where = batch.token_sequence == index
        assert int(where.sum()) == len(ids)
        assert batch.input_ids[where].tolist() == ids
        assert batch.labels[where].tolist() == labels
        assert batch.position_ids[where].tolist() == list(range(len(ids)))
        assert set(batch.token_adapter[where].tolist()) == {adapter}
    padding = batch.token_sequence == -1
    assert (batch.labels[padding] == -100).all() and (batch.token_adapter[padding] == -1).all()
    assert batch.active.tolist() == [True, True, True]


def test_staggered_starts_spread_short_adapters_over_the_longest_ones_span():
    tokens = [[100] * 3, [100] * 12, [100] * 3, [100] * 3, [100] * 3]
    starts = staggered_starts(tokens)
    assert starts[1] == 0  # the longest sets the stack's length
    assert all(0 <= start <= 12 - len(steps) for start, steps in zip(starts, tokens, strict=True))
    load = [0] * 12
    for start, steps in zip(starts, tokens, strict=True):
        for i, n in enumerate(steps):
            load[start + i] += n
    assert load == [200] * 12  # four 3-step adapters tile the 12 steps exactly
