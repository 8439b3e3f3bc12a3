"""ewc: Avalanche's `EWCPlugin` on the edited projections."""

from __future__ import annotations

from avalanche.training.plugins import EWCPlugin

from seal_lightning.continual.config import EWCConfig
from seal_lightning.continual.strategies.avalanche_regularizer import AvalancheRegularizer


class EWC(AvalancheRegularizer):
    name = "ewc"

    def __init__(self, config: EWCConfig, target_modules: list[str], batch_size: int) -> None:
        plugin = EWCPlugin(config.ewc_lambda, mode=config.mode, decay_factor=config.decay_factor)
        super().__init__(plugin, target_modules, batch_size)
