"""olora: the penalty on each edit's overlap with earlier edits' subspaces, and what it does to training."""

from __future__ import annotations

import pytest
import torch

from seal_lightning.config import InnerConfig, ModelConfig
from seal_lightning.continual.config import OLoRAConfig
from seal_lightning.continual.strategies.olora import OrthogonalLoRA, overlap
from seal_lightning.models import load_model


def test_overlap_is_zero_for_orthogonal_rows_and_the_squared_norm_inside():
    basis = torch.eye(4)[:, :2]  # the span of the first two input directions
    assert overlap(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), basis) == 0
    assert overlap(torch.tensor([[3.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 5.0]]), basis) == pytest.approx(10.0)


def test_bases_are_orthonormal_and_span_each_edits_down_projections(model, tokenizer, stream, run):
    olora = OrthogonalLoRA(OLoRAConfig(orthogonality=1.0))
    _, reports = run(model, tokenizer, [olora], stream[:2])
    assert "olora_overlap" not in reports[0].plugins and "olora_overlap" in reports[1].plugins
    rank = 32
    for basis in olora.bases.values():
        assert basis.shape[1] == 2 * rank
        torch.testing.assert_close(basis.T @ basis, torch.eye(2 * rank), atol=1e-4, rtol=0)


def test_the_penalty_moves_a_later_edit_out_of_earlier_subspaces(tokenizer, stream, run):
    """The same second edit (same data, same seed) trained without and with the penalty: with it, much less
    of its A lies in the first edit's subspace."""
    inner = InnerConfig(epochs=3, lr=3e-3, batch_size=2)  # measured: shares 0.068 without, 0.015 with
    shares = {}
    for weight in (0.0, 10.0):
        olora = OrthogonalLoRA(OLoRAConfig(orthogonality=weight))
        _, reports = run(load_model(ModelConfig()), tokenizer, [olora], stream[:2], inner)
        shares[weight] = reports[1].plugins["olora_overlap"]
    assert shares[10.0] < 0.5 * shares[0.0]
