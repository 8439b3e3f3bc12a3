"""K LoRA adapters stacked on one frozen linear layer, each token routed through its own adapter.

The layer behind the batched inner loop (`multilora.py`): one forward serves every adapter of a stack,
as two batched matmuls per layer, and each adapter receives exactly its own tokens' gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class Routing:
    """Which adapter each token of the current forward goes through (-1: none).

    The layers gather each adapter's tokens into one zero-padded slab, [adapters present, most tokens,
    features], so the adapters run as two batched matmuls per layer whatever the number of adapters,
    and scatter the results back. The indices depend only on the input's shape, so they are built once
    per forward and shared by every layer.
    """

    def __init__(self) -> None:
        self.token_adapter: torch.Tensor | None = None  # [rows, length]
        self.row_adapter: torch.Tensor | None = None  # [rows], for generation, where the length grows
        self._cache: tuple[tuple[int, ...], RoutingIndex] | None = None

    def set_tokens(self, token_adapter: torch.Tensor) -> None:
        self.token_adapter, self.row_adapter, self._cache = token_adapter, None, None

    def set_rows(self, row_adapter: torch.Tensor) -> None:
        self.token_adapter, self.row_adapter, self._cache = None, row_adapter, None

    def index(self, shape: tuple[int, ...]) -> RoutingIndex:
        """The gather/scatter indices for an input of `shape` (its last dimension is the features)."""
        key = tuple(shape[:-1])
        if self._cache is None or self._cache[0] != key:
            if self.token_adapter is not None:
                flat = self.token_adapter.reshape(-1)
            else:
                assert self.row_adapter is not None, "set the routing before a forward"
                flat = self.row_adapter[:, None].expand(key).reshape(-1)
            self._cache = (key, RoutingIndex.build(flat))
        return self._cache[1]


@dataclass
class RoutingIndex:
    """For T flattened tokens: `adapters` [P] present, `slab` [P, width] token positions per adapter
    (T for padding: a zero row), and `back` [T] each token's position in the flattened slab (P * width
    for a token without an adapter: a zero row)."""

    adapters: torch.Tensor
    slab: torch.Tensor
    back: torch.Tensor

    @classmethod
    def build(cls, token_adapter: torch.Tensor) -> RoutingIndex:
        tokens = token_adapter.numel()
        routed = (token_adapter >= 0).nonzero().squeeze(-1)
        order = routed[torch.argsort(token_adapter[routed], stable=True)]
        adapters, counts = torch.unique_consecutive(token_adapter[order], return_counts=True)
        width = int(counts.max()) if counts.numel() else 0
        # Slot of each routed token inside its adapter's row of the slab.
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(order.numel(), device=order.device) - torch.repeat_interleave(starts, counts)
        row = torch.repeat_interleave(torch.arange(adapters.numel(), device=order.device), counts)
        slab = torch.full((adapters.numel(), width), tokens, dtype=torch.long, device=order.device)
        slab[row, slot] = order
        back = torch.full((tokens,), adapters.numel() * width, dtype=torch.long, device=order.device)
        back[order] = row * width + slot
        return cls(adapters, slab, back)


class StackedLoRALinear(nn.Module):
    """A frozen linear layer plus K LoRA adapters, [K, r, in] and [K, out, r], routed per token.

    The adapters, their compute and (through them) their optimizer state stay in float32 whatever the base
    dtype, as PEFT keeps a LoRA adapter on a bfloat16 model: the input is cast up, the update is added to
    the base output in float32, and the sum is cast back to the base dtype.
    """

    def __init__(
        self, base: nn.Linear, initial: list[tuple[torch.Tensor, torch.Tensor]], scaling: float, routing: Routing
    ):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.stack([a for a, _ in initial]).float())
        self.lora_B = nn.Parameter(torch.stack([b for _, b in initial]).float())
        self.scaling = scaling
        self.routing = routing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        index = self.routing.index(tuple(x.shape))
        rows = x.reshape(-1, x.shape[-1]).to(self.lora_A.dtype)
        # Indexing the stacks: the backward is an index_add, so each adapter gets exactly its own gradient.
        a_weights = self.lora_A.index_select(0, index.adapters)
        b_weights = self.lora_B.index_select(0, index.adapters)
        routed = RoutedLoRA.apply(rows, a_weights, b_weights, index.slab, index.back, self.scaling)
        return (out + routed.view(out.shape)).to(out.dtype)


class RoutedLoRA(torch.autograd.Function):
    """The routed adapters' update of `rows` [T, in]: gathered into a zero-padded slab [P, width, in], two
    batched matmuls, scattered back to [T, out].

    Backward rebuilds the slab from the rows instead of keeping it. The slab is padded to the adapter with
    the most tokens, and every adapted layer would keep its own, while the rows are the layer's input,
    which the layers reading one input (q and v) keep once between them.
    """

    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        a_weights: torch.Tensor,
        b_weights: torch.Tensor,
        slab_index: torch.Tensor,
        back: torch.Tensor,
        scaling: float,
    ) -> torch.Tensor:
        slab = gather_rows(rows, slab_index)
        hidden = torch.bmm(slab, a_weights.transpose(1, 2))
        delta = torch.bmm(hidden, b_weights.transpose(1, 2)).mul_(scaling)
        ctx.save_for_backward(rows, a_weights, b_weights, slab_index, back, hidden)
        ctx.scaling = scaling
        return gather_rows(delta.reshape(-1, delta.shape[-1]), back)

    @staticmethod
    def backward(ctx: Any, grad_routed: torch.Tensor) -> tuple[Any, ...]:
        rows, a_weights, b_weights, slab_index, back, hidden = ctx.saved_tensors
        # Each routed token has one slot in the slab, so gathering by the slab's indices inverts the scatter.
        grad_delta = gather_rows(grad_routed, slab_index).mul_(ctx.scaling)
        grad_b = torch.bmm(grad_delta.transpose(1, 2), hidden)
        grad_hidden = torch.bmm(grad_delta, b_weights)
        grad_a = torch.bmm(grad_hidden.transpose(1, 2), gather_rows(rows, slab_index))
        grad_rows = None
        if ctx.needs_input_grad[0]:
            grad_slab = torch.bmm(grad_hidden, a_weights)
            grad_rows = gather_rows(grad_slab.reshape(-1, grad_slab.shape[-1]), back)
        return grad_rows, grad_a, grad_b, None, None, None


def gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`rows` [n, features] picked by `index` (any shape; n picks a zero row), as [*index.shape, features]."""
    padded = torch.cat([rows, rows.new_zeros(1, rows.shape[-1])])
    return padded.index_select(0, index.reshape(-1)).view(*index.shape, rows.shape[-1])
