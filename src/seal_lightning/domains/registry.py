"""Which domains exist. Each registers what it accepts and adds: its `evaluate` rows, metrics and graders,
the defaults it sets, its config section and the check of that section. Nothing outside a domain's own
package names it, so a third domain registers the same way (`register`) without an edit here.

The built-in domains register when their packages are imported (`seal_lightning.knowledge`,
`seal_lightning.arc`); those imports are light, and a spec builds its `Domain` lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seal_lightning.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from seal_lightning.config import SealConfig
    from seal_lightning.domains.base import Domain

# A grader scores one generated answer against the gold one, in [0, 1].
Grader = Callable[[str, str], float]
# The built-in domains and the packages that register them, in the order they are listed.
BUILTIN = {"knowledge": "seal_lightning.knowledge", "arc": "seal_lightning.arc"}


@dataclass(frozen=True)
class DomainSpec:
    name: str
    # Makes the domain from (config, tokenizer): a callable, or "module:attribute" imported on first use
    # (the built-in domains' modules load torch and transformers; registering them must stay light).
    factory: Callable[[SealConfig, PreTrainedTokenizerBase], Domain] | str
    # The rows `evaluate.conditions` may name, and the metrics rewards and tables may use.
    conditions: tuple[str, ...]
    metrics: tuple[str, ...]
    # Generated-answer metrics this domain adds (teacher-forced ones and llm_judge are everyone's).
    graders: Mapping[str, Grader] = field(default_factory=dict)
    # Dotlist overrides set below any config file when this domain is selected.
    defaults: tuple[str, ...] = ()
    # The domain's own config section (a dataclass), at the key `name`, and its check.
    section: type | None = None
    validate: Callable[[Any], None] | None = None
    # Self-edits are documents to learn: `continual` and continued pretraining need that.
    documents: bool = False

    def build(self, config: SealConfig, tokenizer: PreTrainedTokenizerBase) -> Domain:
        factory = self.factory
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            factory = getattr(importlib.import_module(module), attribute)
        return factory(config, tokenizer)


_REGISTERED: dict[str, DomainSpec] = {}


def register(spec: DomainSpec) -> None:
    known = _REGISTERED.get(spec.name)
    if known is not None and known is not spec:
        raise ValueError(f"a domain named {spec.name!r} is already registered")
    _REGISTERED[spec.name] = spec


def registered() -> dict[str, DomainSpec]:
    """Every domain: the built-in ones first (whichever was imported first), then others as registered."""
    for package in BUILTIN.values():
        importlib.import_module(package)
    names = [*BUILTIN, *(name for name in _REGISTERED if name not in BUILTIN)]
    return {name: _REGISTERED[name] for name in names}


def domain_spec(name: str) -> DomainSpec:
    specs = registered()
    if name not in specs:
        raise ConfigError(f"domain={name!r} is not one of: {', '.join(specs)}")
    return specs[name]


def grader(metric: str) -> Grader:
    for spec in registered().values():
        if metric in spec.graders:
            return spec.graders[metric]
    raise ConfigError(f"no registered domain grades the metric {metric!r}")
