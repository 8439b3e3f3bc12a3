"""Lifecycle hooks of the ReST-EM loop, the way Avalanche names its plugin hooks.

A `ReSTEMCallback` is also a Lightning `Callback`: the M-step's Trainer receives the same callbacks,
so one object can follow both the outer loop (these hooks) and the M-step's training (Lightning's),
and add a penalty to each M-step loss (`mstep_penalty`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import lightning as L
import torch
from transformers import PreTrainedModel

if TYPE_CHECKING:
    from seal_lightning.mstep import ReSTEMPolicyModule
    from seal_lightning.outer import ReSTEM


class ReSTEMCallback(L.Callback):
    def on_restem_start(self, restem: ReSTEM) -> None:
        """Before the first round (also when resuming)."""

    def before_e_step(self, restem: ReSTEM, round_index: int, policy: PreTrainedModel, policy_path: str) -> None:
        """The round's policy is loaded (and saved at `policy_path`); self-edits are about to be sampled."""

    def mstep_penalty(self, module: ReSTEMPolicyModule, budget: int) -> Iterable[torch.Tensor]:
        """A regulariser added to each M-step training step's loss, as parts that sum to it; none by default.
        Each part is backwarded before the next is drawn: parts of about `budget` padded tokens hold no more
        activations than the step's own micro-batches."""
        return ()

    def after_round(self, restem: ReSTEM, round_index: int, policy_path: str) -> None:
        """Round `round_index` is finished (now, or in an earlier run) and its policy saved at `policy_path`."""

    def on_restem_end(self, restem: ReSTEM) -> None:
        """After the last round, or when the loop stops with an error."""
