"""ARC's settings: which tasks train and which evaluate, and the bounds on tool-call self-edits."""

from __future__ import annotations

from dataclasses import dataclass, field

from seal_lightning.errors import ConfigError


@dataclass
class ToolCallConfig:
    """A test-time-training configuration set in the config: the tool call a self-edit writes
    (arc/toolcall.py), checked by the same strict parser, with nothing clamped."""

    # Families of arc.augmentations: basic, size, chain, repeat.
    augmentations: list[str] = field(default_factory=lambda: ["basic"])
    learning_rate: float = 5.0e-4
    epochs: int = 2
    # "outputs": loss on the output grids' tokens only; "all": on the whole example.
    loss: str = "outputs"


def oracle_choices() -> list[ToolCallConfig]:
    return [
        ToolCallConfig(augmentations=[], learning_rate=5.0e-4, epochs=3, loss="outputs"),
        ToolCallConfig(augmentations=["basic"], learning_rate=5.0e-4, epochs=2, loss="outputs"),
        ToolCallConfig(augmentations=["basic", "chain"], learning_rate=1.0e-3, epochs=2, loss="all"),
        ToolCallConfig(augmentations=["basic", "size", "repeat"], learning_rate=1.0e-3, epochs=2, loss="outputs"),
    ]


@dataclass
class ArcConfig:
    """Few-shot abstract reasoning (SEAL.md, domain 2): which tasks, and the bounds on tool-call self-edits."""

    # Training task ids (domain=arc picks four small ones). None: every task of data.path, or the paper's 12
    # of the built-in ARC-AGI-1 set.
    tasks: list[str] | None = None
    # Held-out task ids that `evaluate` and fit's held-out evaluation score, never trained on (domain=arc
    # picks four small ones). None: every task of data.heldout, or the reference code's 10 evaluation tasks.
    eval_tasks: list[str] | None = None
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
    standard: ToolCallConfig = field(default_factory=ToolCallConfig)
    # The configurations the oracle row of `evaluate` tries on every task (it reports the best).
    oracle: list[ToolCallConfig] = field(default_factory=oracle_choices)


def validate_arc(config: ArcConfig) -> None:
    """The configured tool calls must parse: an error here, not after a model has loaded."""
    from seal_lightning.arc.toolcall import ChoiceLimits, configured_choice

    if config.tasks is not None and config.eval_tasks is not None:
        shared = sorted(set(config.tasks) & set(config.eval_tasks))
        if shared:
            raise ConfigError(
                f"arc.tasks and arc.eval_tasks share {', '.join(shared)}: held-out tasks are never trained on"
            )
    if config.min_lr > config.max_lr:
        raise ConfigError(f"arc.min_lr={config.min_lr} is above arc.max_lr={config.max_lr}")
    limits = ChoiceLimits.from_config(config)
    for key, choice in [
        ("arc.standard", config.standard),
        *((f"arc.oracle[{i}]", c) for i, c in enumerate(config.oracle)),
    ]:
        try:
            configured_choice(choice, limits)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None
