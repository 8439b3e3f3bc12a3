"""Each strategy on the real built-in model: what its plugin does to the loss, the memory and the merge."""

from __future__ import annotations

import pytest
import torch

from seal_lightning.config import InnerConfig, ModelConfig
from seal_lightning.continual.config import EWCConfig, GatedConfig, LwFConfig, ReplayConfig
from seal_lightning.continual.learner import SequentialEditor
from seal_lightning.continual.strategies import EWC, GatedMerge, LwF, Replay
from seal_lightning.continual.stream import examples_of, passage_stream
from seal_lightning.examples import tokenize_example
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.models import load_model

INNER = InnerConfig(epochs=2, lr=3e-3, batch_size=2)
TARGETS = list(INNER.lora.target_modules)


@pytest.fixture
def model():
    """A fresh copy: sequential edits merge into the model they are given."""
    return load_model(ModelConfig())


@pytest.fixture(scope="module")
def stream(tokenizer):
    """Three passages; each experience is the passage and its sentences as documents (3 to 5 of them)."""
    documents = []
    for passage in builtin_passages("train", 0)[:3]:
        sentences = [s.strip() + "." for s in passage["context"].split(".") if s.strip()]
        texts = [f"{passage['title']}\n{passage['context']}", *(f"{passage['title']}\n{s}" for s in sentences)]
        documents.append([tokenize_example(tokenizer, "", text, 128) for text in texts])
    return passage_stream(documents, tokenizer.pad_token_id)


def run(model, tokenizer, plugins, experiences):
    editor = SequentialEditor(model, tokenizer, INNER, plugins, seed=0)
    return editor, [editor.learn(experience) for experience in experiences]


def test_replay_balanced_memory_holds_an_equal_share_of_each_passage(model, tokenizer, stream):
    replay = Replay(ReplayConfig(memory_size=4, policy="balanced"))
    _, reports = run(model, tokenizer, [replay], stream[:2])
    first, second = (examples_of(e.dataset) for e in stream[:2])
    memory = examples_of(replay.storage.buffer)
    assert len(memory) == 4
    assert sum(example in first for example in memory) == 2
    assert sum(example in second for example in memory) == 2
    # The second update trained on its own documents plus the memory of the first passage (all 4 slots).
    assert reports[1].examples == len(second) + 4


def test_replay_reservoir_memory_is_bounded_and_drawn_from_the_stream(model, tokenizer, stream):
    replay = Replay(ReplayConfig(memory_size=3, policy="reservoir"))
    run(model, tokenizer, [replay], stream[:2])
    memory = examples_of(replay.storage.buffer)
    seen = [example for e in stream[:2] for example in examples_of(e.dataset)]
    assert len(memory) == 3 and all(example in seen for example in memory)


def test_ewc_penalty_is_zero_on_the_first_passage_and_positive_after(model, tokenizer, stream):
    ewc = EWC(EWCConfig(ewc_lambda=1e6, mode="online", decay_factor=1.0), TARGETS, batch_size=2)
    editor, _ = run(model, tokenizer, [ewc], stream[:1])
    first = list(ewc.penalties)
    editor.learn(stream[1])
    second = ewc.penalties[len(first) :]
    assert first and all(p == 0.0 for p in first)
    # The new adapter starts at zero (LoRA's B = 0), so the first step is free; later steps are not.
    assert second[0] == pytest.approx(0.0, abs=1e-9)
    assert max(second) > 0
    importances = ewc.plugin.importances[1]
    assert set(importances) == {name for name, _ in ewc.facade.model.named_parameters()}
    assert all(name.endswith(("q_proj", "v_proj")) for name in importances)


def test_lwf_distils_only_after_the_first_passage(model, tokenizer, stream):
    lwf = LwF(LwFConfig(alpha=1.0, temperature=2.0, batch_size=2), TARGETS, tokenizer.pad_token_id, seed=0)
    editor, _ = run(model, tokenizer, [lwf], stream[:1])
    first = list(lwf.penalties)
    editor.learn(stream[1])
    second = lwf.penalties[len(first) :]
    assert first == []  # nothing to distil on before a passage has been learnt
    assert second and max(second) > 0
    # The teacher is a frozen copy of the merged model before the second edit, not the model itself.
    teacher = lwf.plugin.lwf.prev_model.lm
    assert teacher is not editor.model
    assert not any(p.requires_grad for p in teacher.parameters())
    assert lwf.plugin.lwf.prev_classes_by_task[0]  # the tokens the edits were trained to predict


def test_gated_merge_rejects_an_update_that_hurts_the_probe(model, tokenizer, stream):
    gate = GatedMerge(GatedConfig(tolerance=0.0, scales=[1.0], probe_documents=5), tokenizer, batch_size=8)
    editor, _ = run(model, tokenizer, [gate], stream[:1])
    weight = editor.model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    report = editor.learn(stream[1])
    (decision,) = gate.decisions
    assert decision["drop"] > 0 and report.scale == 0.0
    # Rejected: nothing was merged.
    assert torch.equal(editor.model.model.layers[0].self_attn.q_proj.weight, weight)


def test_gated_merge_accepts_within_tolerance(model, tokenizer, stream):
    gate = GatedMerge(GatedConfig(tolerance=100.0, scales=[1.0, 0.5], probe_documents=2), tokenizer, batch_size=8)
    _, reports = run(model, tokenizer, [gate], stream[:2])
    assert [r.scale for r in reports] == [1.0, 1.0]
    assert len(gate.probe) == sum(min(2, len(examples_of(e.dataset)) - 2) for e in stream[:2])


def test_gated_merge_never_trains_on_its_probe_documents(tokenizer, stream):
    """The probe must measure what later edits do to an earlier passage, not recall of lines it trained on."""
    gate = GatedMerge(GatedConfig(probe_documents=2), tokenizer, batch_size=8)
    examples = examples_of(stream[0].dataset)
    assert len(examples) >= 4  # two lines to hold back, one to train, and the passage's own document
    trained = gate.before_training_exp(None, stream[0], examples)  # type: ignore[arg-type]
    assert trained == examples[:-3] + examples[-1:]
    assert gate.held_back == examples[-3:-1]
    assert not any(document in trained for document in gate.held_back)


def test_naive_merges_every_update(model, tokenizer, stream):
    weight = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    editor, reports = run(model, tokenizer, [], stream)
    assert [r.scale for r in reports] == [1.0, 1.0, 1.0]
    assert not torch.equal(editor.model.model.layers[0].self_attn.q_proj.weight, weight)
