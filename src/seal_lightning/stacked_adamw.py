"""AdamW over stacked adapters, per adapter: what lets a stack train each adapter as if alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class StackedAdamW(torch.optim.Optimizer):
    """torch.optim.AdamW's update, per adapter: its own step count and learning rate (ARC self-edits
    choose theirs), and only adapters marked active move.

    The update reads and writes the active adapters' slices only, so a step late in a stack, where a
    few long self-edits still train, costs in proportion to those few.
    """

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        num_adapters: int,
        lr: float | Sequence[float],
        weight_decay: float = 0.01,
    ):
        rates = torch.tensor([lr] * num_adapters if isinstance(lr, float | int) else list(lr), dtype=torch.float32)
        if rates.shape != (num_adapters,):
            raise ValueError(f"{num_adapters} adapters but {rates.numel()} learning rates")
        super().__init__(params, {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay})
        self.rates = rates
        self.active = torch.ones(num_adapters, dtype=torch.bool)
        self.steps = torch.zeros(num_adapters)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.steps += self.active.float()
        ids = self.active.nonzero().squeeze(-1)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            eps, decay = group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                on_device = ids.to(param.device)
                shape = (-1,) + (1,) * (param.dim() - 1)
                steps = self.steps[ids].view(shape).to(param.device)
                lr = self.rates[ids].view(shape).to(param.device)
                grad = param.grad.index_select(0, on_device)
                exp_avg = state["exp_avg"].index_select(0, on_device).lerp_(grad, 1 - beta1)
                exp_avg_sq = (
                    state["exp_avg_sq"].index_select(0, on_device).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                )
                denom = (exp_avg_sq.sqrt() / (1 - beta2**steps).sqrt()).add_(eps)
                updated = param.index_select(0, on_device).mul_(1 - lr * decay)
                updated.sub_((lr / (1 - beta1**steps)) * exp_avg / denom)
                param.index_copy_(0, on_device, updated)
                state["exp_avg"].index_copy_(0, on_device, exp_avg)
                state["exp_avg_sq"].index_copy_(0, on_device, exp_avg_sq)
        return loss
