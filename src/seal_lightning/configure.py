"""Merging the schema (`config.py`), a command's defaults, a YAML file and `key=value` overrides, then checking.

OmegaConf structured configs check keys and types against the dataclasses, so a typo or a wrong type
fails before any model is loaded; `validate` checks what types alone cannot, each failure one line.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seal_lightning.config import DataConfig, SealConfig
from seal_lightning.continual.config import STRATEGIES, WITHOUT_SETTINGS, ContinualConfig, validate_continual
from seal_lightning.domains.registry import domain_spec, registered
from seal_lightning.errors import ConfigError, not_found

CHOICES: dict[str, tuple[str, ...]] = {
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.device": ("auto", "cpu", "cuda"),
    "sampler.backend": ("hf", "vllm"),
    "outer.strategy": ("ddp", "fsdp"),
    "continual.replay.policy": ("balanced", "reservoir"),
    "continual.replay_mix.policy": ("balanced", "reservoir"),
    "continual.ewc.mode": ("separate", "online"),
    "data.builtin_split": ("train", "validation", "test"),
}
POSITIVE: tuple[str, ...] = (
    "sampler.k", "sampler.max_new_tokens", "sampler.batch_size", "inner.lr", "inner.epochs",
    "inner.batch_size", "inner.max_length", "inner.seeds", "inner.max_adapters", "inner.lora.rank", "outer.rounds",
    "outer.lr", "outer.epochs", "outer.batch_size", "outer.max_length", "outer.lora.rank",
    "reward.max_new_tokens", "reward.batch_size", "reward.judge.timeout_s", "heldout.selfedits", "heldout.resamples",
    "continual.passages", "continual.sequences",
    "continual.replay.memory_size", "continual.replay_mix.memory_size", "continual.lwf.batch_size",
    "continual.lwf.temperature", "continual.gated.probe_documents", "continual.gate_search.probe_documents",
    "continual.gate_search.steps", "arc.max_examples", "arc.min_lr", "arc.max_lr", "arc.max_epochs",
    "sampler.vllm.max_model_len", "sampler.vllm.max_lora_rank", "sampler.vllm.max_loras",
    "sampler.vllm.tensor_parallel_size", "sampler.vllm.cpu_kv_cache_gib", "inner.lora.alpha",
    "outer.lora.alpha",
)  # fmt: skip
NON_NEGATIVE: tuple[str, ...] = (
    "sampler.temperature",
    "outer.anchor",
    "reward.judge.retries",
    "reward.judge.backoff_s",
    "continual.replay_mix.share",
    "continual.ewc.ewc_lambda",
    "continual.lwf.alpha",
    "continual.gated.tolerance",
    "continual.gate_search.tolerance",
    "continual.olora.orthogonality",
)
# Fractions: a None value (vLLM's memory share: the backend's default) is not checked.
FRACTIONS: tuple[tuple[str, str], ...] = (
    ("sampler.top_p", "(0, 1]"),
    ("sampler.vllm.gpu_memory_utilization", "(0, 1]"),
    ("inner.lora.dropout", "[0, 1)"),
    ("outer.lora.dropout", "[0, 1)"),
)


def load_config(
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    defaults: Sequence[str] = (),
    strategy_files: bool = False,
) -> SealConfig:
    """Merge schema defaults, a command's `defaults`, an optional YAML file and overrides, then check.

    The selected domain's defaults (its `DomainSpec`) sit right above the schema defaults. With
    `strategy_files`, each selected continual strategy's `{strategy_dir}/NAME.yaml` is merged over
    the schema defaults of `continual.NAME`, below the config file and the overrides.
    """
    overrides = [expand_shorthand(item) for item in overrides]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        layers = [OmegaConf.from_dotlist(list(defaults))] if defaults else []
        if config_file is not None:
            layers.append(read_yaml(Path(config_file), "config file"))
        if overrides:
            layers.append(_parse_overrides(overrides))
        merged: DictConfig = OmegaConf.merge(OmegaConf.structured(schema()), *layers)
        below = [OmegaConf.from_dotlist(list(domain_spec(merged.domain).defaults))]
        if strategy_files:
            below += _strategy_layers(merged)
        merged = OmegaConf.merge(OmegaConf.structured(schema()), *below, *layers)
        config: SealConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe(exc, overrides)) from None
    validate(config)
    return config


def _strategy_layers(merged: DictConfig) -> list[DictConfig]:
    """`continual.NAME` nodes read from each selected strategy's YAML file (naive and routed have no settings)."""
    folder = Path(merged.continual.strategy_dir)
    layers = []
    for name in ContinualConfig(strategy=merged.continual.strategy).components:
        if name not in STRATEGIES or name in WITHOUT_SETTINGS:
            continue
        path = folder / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"{not_found('strategy file', path)} (continual.strategy_dir={folder})")
        layers.append(OmegaConf.create({"continual": {name: read_yaml(path, "strategy file")}}))
    return layers


def read_yaml(path: Path, what: str) -> DictConfig:
    """A YAML mapping, or one line naming the file and what is wrong with it (yaml's own errors span lines)."""
    if not path.is_file():
        raise ConfigError(not_found(what, path))
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{what} {path} must hold a mapping of sections (key: value), not a list")
    return loaded


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:  # one at a time, so that the error names the override that is broken
        try:
            OmegaConf.from_dotlist([item])
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r} is not valid YAML: {_yaml_problem(exc)}") from None
    return OmegaConf.from_dotlist(overrides)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`did not find expected ',' or ']' (line 2, column 1)` from yaml's multi-line message."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


# `sampler=vllm` is short for `sampler.backend=vllm`.
SHORTHANDS = {"sampler": "sampler.backend"}


def expand_shorthand(override: str) -> str:
    key, sep, value = override.partition("=")
    return f"{SHORTHANDS[key]}={value}" if sep and key in SHORTHANDS else override


def _describe(exc: OmegaConfBaseException, overrides: Sequence[str]) -> str:
    """OmegaConf errors span several lines; keep the first and name the full key, or else the override
    that fails on its own (a merge error, such as a string given for a section, names no key)."""
    message = str(exc).splitlines()[0].strip()
    key = getattr(exc, "full_key", None) or next((item for item in overrides if _fails_alone(item)), None)
    if key and key not in message:
        message = f"{key}: {message}"
    return f"invalid config: {message}"


def _fails_alone(override: str) -> bool:
    try:
        OmegaConf.merge(OmegaConf.structured(schema()), OmegaConf.from_dotlist([override]))
    except OmegaConfBaseException:
        return True
    return False


def schema() -> type[SealConfig]:
    """SealConfig with each registered domain's own section (ARC's `arc`) at the domain's name."""
    sections = tuple((name, spec.section) for name, spec in registered().items() if spec.section is not None)
    return _schema(sections)


@functools.cache
def _schema(sections: tuple[tuple[str, type], ...]) -> type[SealConfig]:
    fields = [(name, section, dataclasses.field(default_factory=section)) for name, section in sections]
    return dataclasses.make_dataclass("SealConfig", fields, bases=(SealConfig,), namespace={"__module__": __name__})


def validate(config: SealConfig) -> None:
    """Checks that types alone cannot express: closed choices and positive numbers."""
    as_dict = OmegaConf.structured(config)
    for key, choices in CHOICES.items():
        value = OmegaConf.select(as_dict, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}")
    domain = domain_spec(config.domain)
    if config.reward.name not in domain.metrics:
        raise ConfigError(f"reward.name={config.reward.name!r} is not one of: {', '.join(domain.metrics)}")
    for key, choices in (
        ("evaluate.conditions", domain.conditions),
        ("evaluate.metrics", domain.metrics),
        ("heldout.metrics", domain.metrics),
        ("continual.metric", domain.metrics),
    ):
        values = OmegaConf.select(as_dict, key)
        for value in [values] if isinstance(values, str) else values:
            if value not in choices:
                raise ConfigError(
                    f"{key} contains {value!r}; valid entries for domain={config.domain}: {', '.join(choices)}"
                )
    for key in POSITIVE:
        if OmegaConf.select(as_dict, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {OmegaConf.select(as_dict, key)}")
    for key in ("inner.memory.micro_batch_size", "outer.memory.micro_batch_size"):  # None: the whole batch
        value = OmegaConf.select(as_dict, key)
        if value is not None and value <= 0:
            raise ConfigError(f"{key} must be positive or null, got {value}")
    for key in NON_NEGATIVE:
        if OmegaConf.select(as_dict, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {OmegaConf.select(as_dict, key)}")
    for key, interval in FRACTIONS:
        value = OmegaConf.select(as_dict, key)
        if value is None:
            continue
        above = value >= 0 if interval.startswith("[") else value > 0
        below = value <= 1 if interval.endswith("]") else value < 1
        if not (above and below):
            raise ConfigError(f"{key} must be in {interval}, got {value}")
    for key in ("inner.lora.target_modules", "outer.lora.target_modules"):
        if not OmegaConf.select(as_dict, key):
            raise ConfigError(f"{key} is empty; name the modules LoRA adapts (for example [q_proj, v_proj])")
    if "passage_external" in config.evaluate.conditions and config.evaluate.external_selfedits is None:
        raise ConfigError("evaluate.conditions has passage_external but evaluate.external_selfedits is not set")
    if not config.heldout.metrics:
        raise ConfigError("heldout.metrics is empty; name at least one metric")
    validate_data(config.data)
    if config.evaluate.cpt_passages is not None:
        if not domain.documents:
            raise ConfigError(
                f"evaluate.cpt_passages (continued pretraining) needs a domain whose self-edits are documents, "
                f"not domain={config.domain}"
            )
        if config.evaluate.cpt_passages < 1:
            raise ConfigError(f"evaluate.cpt_passages must be positive, got {config.evaluate.cpt_passages}")
    validate_continual(config.continual)
    for name, spec in registered().items():
        if spec.validate is not None:
            spec.validate(getattr(config, name))


def validate_data(config: DataConfig) -> None:
    """One way to say what each round reads."""
    if config.rounds is not None:
        if not config.rounds:
            raise ConfigError("data.rounds is empty; name one data file per round")
        for key in ("path", "per_round"):
            if getattr(config, key) is not None:
                raise ConfigError(f"set data.rounds or data.{key}, not both: data.rounds names every round's file")
    for key in ("limit", "per_round", "heldout_limit"):
        value = getattr(config, key)
        if value is not None and value <= 0:
            raise ConfigError(f"data.{key} must be positive, got {value}")
    if config.reuse_items and (config.rounds is not None or config.per_round is not None):
        raise ConfigError("data.reuse_items gives every round all items; it cannot be combined with rounds/per_round")


def to_yaml(config: SealConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def to_flat_dict(config: SealConfig) -> dict[str, Any]:
    """`{"inner.lora.rank": 32, ...}`: the shape MLflow params want."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        else:
            flat[prefix] = node

    walk("", OmegaConf.to_container(OmegaConf.structured(config)))
    return flat
