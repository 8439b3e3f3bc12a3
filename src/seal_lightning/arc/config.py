"""ARC's settings: which tasks train and which evaluate, and the bounds on tool-call self-edits."""

from __future__ import annotations

from dataclasses import dataclass, field

from seal_lightning.errors import ConfigError


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


def validate_arc(config: ArcConfig) -> None:
    """The configured tool calls must parse: an error here, not after a model has loaded."""
    from seal_lightning.arc.toolcall import ChoiceLimits, parse_choice

    if config.tasks is not None and config.eval_tasks is not None:
        shared = sorted(set(config.tasks) & set(config.eval_tasks))
        if shared:
            raise ConfigError(
                f"arc.tasks and arc.eval_tasks share {', '.join(shared)}: held-out tasks are never trained on"
            )
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
