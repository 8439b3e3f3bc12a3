"""The ARC self-edit: a JSON tool call choosing augmentations and training settings, parsed as untrusted.

The model writes, for example,

    {"augmentations": ["basic", "size"], "learning_rate": 0.0005, "epochs": 2, "loss": "outputs"}

`augmentations` names families of arc.augmentations; `loss` "outputs" trains on the output grids'
tokens only, "all" on the whole example. Whatever the model writes is data: it is length-capped,
parsed by pydantic's JSON parser (which bounds nesting and number sizes) and checked strictly, and
the worst it can do is be rejected. Values of the right type but out of range are clamped, with a note.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from seal_lightning.arc.augmentations import FAMILIES
from seal_lightning.arc.config import ArcConfig, ToolCallConfig
from seal_lightning.errors import ConfigError

# Longer outputs are rejected before parsing: a tool call is a few dozen characters.
MAX_SELFEDIT_CHARS = 10_000
MAX_REASON_CHARS = 200
KEYS = ("augmentations", "learning_rate", "epochs", "loss")


@dataclass(frozen=True)
class TTTChoice:
    """How one task is trained at test time."""

    augmentations: tuple[str, ...]
    learning_rate: float
    epochs: int
    loss: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "augmentations": list(self.augmentations),
                "learning_rate": self.learning_rate,
                "epochs": self.epochs,
                "loss": self.loss,
            }
        )


@dataclass(frozen=True)
class ChoiceLimits:
    min_lr: float
    max_lr: float
    max_epochs: int

    @classmethod
    def from_config(cls, arc: ArcConfig) -> ChoiceLimits:
        return cls(min_lr=arc.min_lr, max_lr=arc.max_lr, max_epochs=arc.max_epochs)


@dataclass(frozen=True)
class ParsedSelfEdit:
    """Exactly one of `choice` and `error` is set; `notes` lists every value that was clamped."""

    choice: TTTChoice | None
    error: str | None
    notes: tuple[str, ...] = ()


class _ToolCall(BaseModel):
    # Strict: "3" is not an integer and true is not a number; None marks a key left out.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    augmentations: list[Literal["basic", "size", "chain", "repeat"]] | None = None
    learning_rate: float | None = None
    epochs: int | None = None
    loss: Literal["all", "outputs"] | None = None


def parse_selfedit(text: str, default: TTTChoice, limits: ChoiceLimits) -> ParsedSelfEdit:
    """The model's choice, with keys it left out taken from `default`. Never raises."""
    return _parse_safely(text, default, limits)


def configured_choice(config: ToolCallConfig, limits: ChoiceLimits) -> TTTChoice:
    """A choice from the config (arc.standard, arc.oracle), checked as strictly as a self-edit (unknown
    families, a bad loss), except that a value out of range is an error, not clamped."""
    text = json.dumps(asdict(config))
    parsed = _parse_safely(text, None, limits)
    if parsed.choice is not None and parsed.notes:
        parsed = ParsedSelfEdit(None, "; ".join(parsed.notes) + " (outside arc.min_lr, arc.max_lr, arc.max_epochs)")
    if parsed.choice is None:
        raise ConfigError(f"ARC choice {_one_line(text)}: {parsed.error}")
    return parsed.choice


def _parse_safely(text: str, default: TTTChoice | None, limits: ChoiceLimits) -> ParsedSelfEdit:
    try:
        return _parse(text, default, limits)
    except (ValueError, RecursionError, OverflowError) as exc:  # defensive: pydantic reports these itself
        return ParsedSelfEdit(None, _one_line(f"{type(exc).__name__}: {exc}"))


def _parse(text: str, default: TTTChoice | None, limits: ChoiceLimits) -> ParsedSelfEdit:
    if len(text) > MAX_SELFEDIT_CHARS:
        return ParsedSelfEdit(None, f"self-edit longer than {MAX_SELFEDIT_CHARS} characters ({len(text)})")
    snippet = first_object(text)
    if snippet is None:
        return ParsedSelfEdit(None, "no JSON object")
    try:
        call = _ToolCall.model_validate_json(snippet)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return ParsedSelfEdit(None, _one_line(f"{where}: {first['msg']}" if where else first["msg"]))
    given = call.model_dump(include=call.model_fields_set)
    values = {**({} if default is None else asdict(default)), **given}
    for key in KEYS:
        if key not in values:
            return ParsedSelfEdit(None, f"{key}: missing")
        if values[key] is None:
            return ParsedSelfEdit(None, f"{key}: may not be null")
    learning_rate, epochs = values["learning_rate"], values["epochs"]
    if learning_rate <= 0:
        return ParsedSelfEdit(None, f"learning_rate must be positive, got {learning_rate}")
    if epochs < 1:
        return ParsedSelfEdit(None, f"epochs must be at least 1, got {_integer(epochs)}")
    notes = []
    clamped_lr = min(max(learning_rate, limits.min_lr), limits.max_lr)
    if clamped_lr != learning_rate:
        notes.append(f"learning_rate {learning_rate} clamped to {clamped_lr}")
    if epochs > limits.max_epochs:
        notes.append(f"epochs {_integer(epochs)} clamped to {limits.max_epochs}")
    choice = TTTChoice(
        # Canonical order without repeats, so equal choices compare and serialise equal.
        augmentations=tuple(family for family in FAMILIES if family in values["augmentations"]),
        learning_rate=float(clamped_lr),
        epochs=min(epochs, limits.max_epochs),
        loss=values["loss"],
    )
    return ParsedSelfEdit(choice, None, tuple(notes))


def first_object(text: str) -> str | None:
    """The first balanced `{...}` of the text (braces inside strings do not count): small models keep
    writing after their JSON, and only the object itself is the tool call."""
    start = text.find("{")
    if start < 0:
        return None
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    return None


def _integer(value: int) -> str:
    """Python refuses to print integers of over 4300 digits, and the model may write one."""
    return str(value) if value.bit_length() <= 64 else f"<an integer of {value.bit_length()} bits>"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."
