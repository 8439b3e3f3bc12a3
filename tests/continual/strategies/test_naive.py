"""naive: every update merged as it is (the paper's setting)."""

from __future__ import annotations

import torch


def test_naive_merges_every_update(model, tokenizer, stream, run):
    weight = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    editor, reports = run(model, tokenizer, [], stream)
    assert [r.scale for r in reports] == [1.0, 1.0, 1.0]
    assert not torch.equal(editor.model.model.layers[0].self_attn.q_proj.weight, weight)
