"""Forgetting strategies as `ContinualPlugin`s: Avalanche's code where it exists, driven through the facade.

- naive: the paper's setting, each edit merged as it is.
- replay, replay_mix: earlier passages' documents rehearsed in later updates (all of the memory, or a share).
- ewc: Avalanche's `EWCPlugin` on the edited projections.
- lwf: Avalanche's `LwFPlugin`, distilling toward the model before the edit on earlier passages' documents.
- gated, gate_search: ours; merge an update at the largest scale that keeps a probe of earlier passages
  within a tolerance (a few scales, or bisection).
- olora: each edit's LoRA kept out of the input subspaces of earlier edits (O-LoRA's penalty).
- routed: ours, after Expert Gate; every edit kept as its own adapter, each question routed to one of them.

Strategies combine: `replay_mix+olora` runs both plugins in one sequence (the lowest merge scale wins).
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.continual.config import parts
from seal_lightning.continual.learner import ContinualPlugin
from seal_lightning.continual.strategies.ewc import EWC
from seal_lightning.continual.strategies.gated import GatedMerge, GateSearch
from seal_lightning.continual.strategies.lwf import LwF
from seal_lightning.continual.strategies.olora import OrthogonalLoRA
from seal_lightning.continual.strategies.replay import MixedReplay, Replay
from seal_lightning.continual.strategies.routed import RoutedBank


def build_plugins(
    name: str, config: SealConfig, tokenizer: PreTrainedTokenizerBase, seed: int
) -> list[ContinualPlugin]:
    """The plugins of one strategy, fresh for one sequence of the stream; a combined one (`a+b`) has
    every part's, in order."""
    return [plugin for part in parts(name) for plugin in _single(part, config, tokenizer, seed)]


def _single(name: str, config: SealConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> list[ContinualPlugin]:
    continual = config.continual
    targets = list(config.inner.lora.target_modules)
    match name:
        case "naive":
            return []
        case "replay":
            return [Replay(continual.replay)]
        case "replay_mix":
            return [MixedReplay(continual.replay_mix, seed)]
        case "ewc":
            return [EWC(continual.ewc, targets, config.inner.batch_size)]
        case "lwf":
            return [LwF(continual.lwf, targets, tokenizer.pad_token_id, seed)]
        case "gated":
            return [GatedMerge(continual.gated, tokenizer, config.reward.batch_size)]
        case "gate_search":
            return [GateSearch(continual.gate_search, tokenizer, config.reward.batch_size)]
        case "olora":
            return [OrthogonalLoRA(continual.olora)]
        case "routed":
            return [RoutedBank(config.inner.lora, tokenizer)]
    raise ValueError(f"unknown strategy {name!r}")  # validate_continual refuses it first
