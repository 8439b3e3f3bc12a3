"""gated and gate_search: the probe, and the scale each gate merges at."""

from __future__ import annotations

import pytest
import torch

from seal_lightning.config import ModelConfig
from seal_lightning.continual.config import GatedConfig, GateSearchConfig
from seal_lightning.continual.strategies.gated import GatedMerge, GateSearch
from seal_lightning.continual.stream import examples_of
from seal_lightning.models import load_model


def test_gated_merge_rejects_an_update_that_hurts_the_probe(model, tokenizer, stream, run):
    gate = GatedMerge(GatedConfig(tolerance=0.0, scales=[1.0], probe_documents=5), tokenizer, batch_size=8)
    editor, _ = run(model, tokenizer, [gate], stream[:1])
    weight = editor.model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    report = editor.learn(stream[1])
    (decision,) = gate.decisions
    assert decision["drop"] > 0 and report.scale == 0.0
    # Rejected: nothing was merged.
    assert torch.equal(editor.model.model.layers[0].self_attn.q_proj.weight, weight)


def test_gated_merge_accepts_within_tolerance(model, tokenizer, stream, run):
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


def test_gate_search_finds_the_largest_passing_scale_to_its_precision(tokenizer):
    gate = GateSearch(GateSearchConfig(steps=6), tokenizer, batch_size=8)
    tried = []

    def passes(scale: float) -> bool:
        tried.append(scale)
        return scale <= 0.3

    chosen = gate.choose_scale(passes)
    assert 0.3 - 2**-6 <= chosen <= 0.3 and tried[0] == 1.0 and len(tried) == 7
    assert gate.choose_scale(lambda scale: True) == 1.0
    assert gate.choose_scale(lambda scale: False) == 0.0


def test_gate_search_merges_between_zero_and_full_scale_within_tolerance(model, tokenizer, stream, run):
    """With a tolerance below the full update's drop, the gate merges a part of the update, not all or none."""
    probe = GatedMerge(GatedConfig(tolerance=100.0, scales=[1.0], probe_documents=2), tokenizer, batch_size=8)
    run(load_model(ModelConfig()), tokenizer, [probe], stream[:2])
    full_drop = probe.decisions[0]["drop"]
    assert full_drop > 0
    gate = GateSearch(GateSearchConfig(tolerance=full_drop / 2, steps=6, probe_documents=2), tokenizer, 8)
    _, reports = run(model, tokenizer, [gate], stream[:2])
    (decision,) = gate.decisions
    assert decision["drop"] == pytest.approx(full_drop, abs=1e-4)  # the same update, trained with the same seed
    assert 0 < reports[1].scale < 1 and decision["drop_merged"] <= full_drop / 2
