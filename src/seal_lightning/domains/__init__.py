"""The experiments SEAL adapts models in, behind one interface (`Domain`), registered in `registry.py`."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.domains.base import Condition, Domain, Item, Question, SelfEditUpdate
from seal_lightning.domains.registry import domain_spec

__all__ = ["Condition", "Domain", "Item", "Question", "SelfEditUpdate", "build_domain"]


def build_domain(config: SealConfig, tokenizer: PreTrainedTokenizerBase) -> Domain:
    return domain_spec(config.domain).build(config, tokenizer)
