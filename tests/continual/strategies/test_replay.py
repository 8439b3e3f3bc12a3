"""replay and replay_mix: what the memory holds and what each update rehearses."""

from __future__ import annotations

from seal_lightning.continual.config import MixedReplayConfig, ReplayConfig
from seal_lightning.continual.strategies.replay import MixedReplay, Replay
from seal_lightning.continual.stream import examples_of


def test_replay_balanced_memory_holds_an_equal_share_of_each_passage(model, tokenizer, stream, run):
    replay = Replay(ReplayConfig(memory_size=4, policy="balanced"))
    _, reports = run(model, tokenizer, [replay], stream[:2])
    first, second = (examples_of(e.dataset) for e in stream[:2])
    memory = examples_of(replay.storage.buffer)
    assert len(memory) == 4
    assert sum(example in first for example in memory) == 2
    assert sum(example in second for example in memory) == 2
    # The second update trained on its own documents plus the memory of the first passage (all 4 slots).
    assert reports[1].examples == len(second) + 4


def test_replay_reservoir_memory_is_bounded_and_drawn_from_the_stream(model, tokenizer, stream, run):
    replay = Replay(ReplayConfig(memory_size=3, policy="reservoir"))
    run(model, tokenizer, [replay], stream[:2])
    memory = examples_of(replay.storage.buffer)
    seen = [example for e in stream[:2] for example in examples_of(e.dataset)]
    assert len(memory) == 3 and all(example in seen for example in memory)


def test_replay_mix_rehearses_a_share_of_the_memory_drawn_afresh(model, tokenizer, stream, run):
    mixed = MixedReplay(MixedReplayConfig(memory_size=8, policy="reservoir", share=0.5), seed=0)
    own = [examples_of(e.dataset) for e in stream]
    editor, reports = run(model, tokenizer, [mixed], stream[:1])
    assert reports[0].examples == len(own[0])  # nothing remembered before the first passage
    drawn = []
    for index in (1, 2):
        examples = mixed.before_training_exp(editor, stream[index], own[index])
        extra = examples[len(own[index]) :]
        memory = examples_of(mixed.storage.buffer)
        # share x the passage's own documents, from the memory, not the whole memory (as replay rehearses)
        assert len(extra) == min(len(memory), -(-len(own[index]) // 2)) < len(memory)
        assert all(example in memory for example in extra)
        drawn.append(extra)
        mixed.after_training_exp(editor, stream[index])
    assert drawn[0] != drawn[1]
