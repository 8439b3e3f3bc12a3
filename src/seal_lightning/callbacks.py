"""Lifecycle hooks of the ReST-EM loop, the way Avalanche names its plugin hooks.

A `ReSTEMCallback` is also a Lightning `Callback`: the M-step's Trainer receives the same callbacks,
so one object can follow both the outer loop (these hooks) and the M-step's training (Lightning's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
from transformers import PreTrainedModel

if TYPE_CHECKING:
    from seal_lightning.outer import ReSTEM


class ReSTEMCallback(L.Callback):
    def on_restem_start(self, restem: ReSTEM) -> None:
        """Before the first round (also when resuming)."""

    def before_e_step(self, restem: ReSTEM, round_index: int, policy: PreTrainedModel, policy_path: str) -> None:
        """The round's policy is loaded (and saved at `policy_path`); self-edits are about to be sampled."""

    def on_restem_end(self, restem: ReSTEM) -> None:
        """After the last round, or when the loop stops with an error."""
