"""The `continual` command's settings: the stream, the strategies and each strategy's hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

from seal_lightning.errors import ConfigError


@dataclass
class ReplayConfig:
    """Self-edit documents of earlier passages, rehearsed in later updates (an Avalanche storage policy)."""

    # Documents the memory holds across the whole stream.
    memory_size: int = 32
    # balanced: an equal share per passage (ExperienceBalancedBuffer); reservoir: uniform over the stream.
    policy: str = "balanced"


@dataclass
class MixedReplayConfig(ReplayConfig):
    """Replay as Avalanche's ReplayPlugin mixes it: a share of the memory in each update, not all of it."""

    # Remembered documents added to an update, as a share of the passage's own documents (drawn afresh).
    share: float = 0.5


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
class ProbeGateConfig:
    """A gate: keep an update at the largest scale that does not hurt a probe of earlier passages."""

    # The largest drop of the probe (mean log-likelihood per token of earlier passages' held-back
    # documents) an update may cause; a negative drop is a gain.
    tolerance: float = 0.3
    # Documents held back per passage as its probe; they are not trained on.
    probe_documents: int = 2


@dataclass
class GatedConfig(ProbeGateConfig):
    # Scales tried in order; an update that fails at every scale is rejected (merged at scale 0).
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25])


@dataclass
class GateSearchConfig(ProbeGateConfig):
    # Halvings of [0, 1] after full scale fails: the merged scale is within 2**-steps of the largest that passes.
    steps: int = 6


@dataclass
class OLoRAConfig:
    """O-LoRA: each edit's LoRA A penalised for overlapping the row spaces of earlier edits' A matrices."""

    # Weight of the penalty (squared norm of A's rows inside earlier subspaces, summed over layers).
    orthogonality: float = 1.0


@dataclass
class ContinualConfig:
    """Sequential self-edits as a continual-learning stream (SEAL.md, the open problem)."""

    # Passages in the stream (the first ones of `data`), and random orders of them to average over.
    passages: int = 8
    sequences: int = 3
    # false: each passage's self-edit is sampled once from the starting policy, so every strategy learns the
    # same documents. true (the paper's protocol): each step's self-edit is sampled from the model as the
    # earlier edits left it, with transformers on the model in memory; strategies then see other documents.
    resample: bool = False
    # One or more of STRATEGIES (comma-separated), compared on the same self-edits.
    strategy: str = "naive"
    # Where each strategy's hyper-parameters live (NAME.yaml, merged over the defaults below).
    strategy_dir: str = "conf/strategies"
    # The accuracy in the matrix: teacher-forced answer-token accuracy is cheap and bounded;
    # exact_match / f1 / llm_judge grade greedy answers.
    metric: str = "token_accuracy"
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    replay_mix: MixedReplayConfig = field(default_factory=MixedReplayConfig)
    ewc: EWCConfig = field(default_factory=EWCConfig)
    lwf: LwFConfig = field(default_factory=LwFConfig)
    gated: GatedConfig = field(default_factory=GatedConfig)
    gate_search: GateSearchConfig = field(default_factory=GateSearchConfig)
    olora: OLoRAConfig = field(default_factory=OLoRAConfig)

    @property
    def strategies(self) -> list[str]:
        """The compared strategies; `a+b` is one strategy whose plugins are both a's and b's (spaces dropped)."""
        return ["+".join(parts(name)) for name in self.strategy.split(",") if name.strip()]

    @property
    def components(self) -> list[str]:
        """Every single strategy the compared ones use, each once (whose settings they read)."""
        return list(dict.fromkeys(part for name in self.strategies for part in parts(name)))


STRATEGIES = ("naive", "replay", "replay_mix", "ewc", "lwf", "gated", "gate_search", "olora", "routed")
# Strategies without hyper-parameters (and so without a file in `strategy_dir`).
WITHOUT_SETTINGS = ("naive", "routed")
# Strategies that run alone: routed merges no edit, so no other strategy has a merged model to work on.
ALONE = ("naive", "routed")
# Strategies that do one job two ways: combining them would rehearse twice or gate twice.
SAME_JOB = ({"replay", "replay_mix"}, {"gated", "gate_search"})


def parts(name: str) -> list[str]:
    """The single strategies a (possibly combined, `a+b`) strategy name is made of."""
    return [part.strip() for part in name.split("+")]


def _check_combination(name: str) -> None:
    combined = parts(name)
    if len(combined) == 1:
        return
    if set(ALONE) & set(combined) or len(set(combined)) != len(combined):
        raise ConfigError(
            f"continual.strategy combines {name!r}; combine distinct strategies other than {' and '.join(ALONE)}"
        )
    for job in SAME_JOB:
        if len(job & set(combined)) > 1:
            raise ConfigError(f"continual.strategy combines {name!r}; {' and '.join(sorted(job))} do one job")


def validate_continual(config: ContinualConfig) -> None:
    names = config.strategies
    if not names:
        raise ConfigError("continual.strategy is empty; name one or more of: " + ", ".join(STRATEGIES))
    for name in names:
        for part in parts(name):
            if part not in STRATEGIES:
                raise ConfigError(f"continual.strategy names {part!r}; valid strategies: {', '.join(STRATEGIES)}")
        _check_combination(name)
    if len({frozenset(parts(name)) for name in names}) != len(names):
        # `a+b` and `b+a` run the same plugins: a second spelling would only rerun the first.
        raise ConfigError(f"continual.strategy names a strategy twice: {config.strategy!r}")
    if config.passages < 2:
        raise ConfigError(
            f"continual.passages must be at least 2 (forgetting needs a later edit), got {config.passages}"
        )
    if (config.ewc.mode == "online") != (config.ewc.decay_factor is not None):
        raise ConfigError("continual.ewc.decay_factor must be set for mode=online and null for mode=separate")
    if not config.gated.scales or not all(0 < scale <= 1 for scale in config.gated.scales):
        raise ConfigError(f"continual.gated.scales must be numbers in (0, 1], got {config.gated.scales}")
