"""The experiments SEAL adapts models in, behind one interface (`Domain`)."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.domains.base import Condition, Domain, Item, SelfEditUpdate

__all__ = ["Condition", "Domain", "Item", "SelfEditUpdate", "build_domain"]


def build_domain(config: SealConfig, tokenizer: PreTrainedTokenizerBase) -> Domain:
    if config.domain == "arc":
        from seal_lightning.domains.arc import ArcDomain

        return ArcDomain(config, tokenizer)
    from seal_lightning.domains.knowledge import KnowledgeDomain

    return KnowledgeDomain(config, tokenizer)
