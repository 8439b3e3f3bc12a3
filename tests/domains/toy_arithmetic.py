"""A toy third domain, written outside src/: arithmetic facts. It registers itself as the built-in domains
do (`python -c "import toy_arithmetic; from seal_lightning.cli import main; main([...])"`), with its own
config section, evaluate rows, defaults and a grader of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from seal_lightning.domains import Question
from seal_lightning.domains.base import Condition, HeldOutRow, SelfEditUpdate
from seal_lightning.domains.registry import DomainSpec, register
from seal_lightning.errors import ConfigError
from seal_lightning.models import chat_prompt


@dataclass
class ArithmeticConfig:
    facts: int = 4
    first: int = 11


@dataclass(frozen=True)
class Fact:
    a: int
    b: int

    @property
    def key(self) -> str:
        return f"{self.a}+{self.b}"

    @property
    def title(self) -> str:
        return self.key


class ArithmeticDomain:
    name = "arithmetic"
    heldout_rows: ClassVar[dict[str, HeldOutRow]] = {
        "no_update": HeldOutRow("no_update", "policy_no_update"),
        "fact_selfedit": HeldOutRow("fact_selfedit", "policy_selfedit"),
    }
    headline = "fact_selfedit"
    unadapted = "no_update"

    def __init__(self, config, tokenizer) -> None:
        self.config, self.tokenizer = config, tokenizer

    def load(self, path: str | None = None) -> list[Fact]:
        first = self.config.arithmetic.first
        return [Fact(first + 7 * i, 30 + 5 * i) for i in range(self.config.arithmetic.facts)]

    def load_heldout(self) -> list[Fact]:
        return [Fact(3, 4), Fact(12, 20)]

    def selfedit_prompt(self, item: Fact) -> str:
        return chat_prompt(self.tokenizer, f"Write one sentence that says what {item.a} plus {item.b} is.")

    def update(self, item: Fact, completion: str) -> SelfEditUpdate:
        fact = f"{item.a} plus {item.b} is {item.a + item.b}."
        return SelfEditUpdate(examples=(("", fact), ("", completion)), inner=self.config.inner)

    def questions(self, item: Fact) -> tuple[Question, ...]:
        return (Question(f"What is {item.a} plus {item.b}?", str(item.a + item.b)),)

    def conditions(self) -> dict[str, Condition]:
        return {
            "no_update": Condition("none"),
            "fact_selfedit": Condition("sampled"),
            "policy_no_update": Condition("none", adapted="policy"),
            "policy_selfedit": Condition("sampled", writer="policy", adapted="policy"),
        }


def starts_with_sum(prediction: str, gold: str) -> float:
    return float(prediction.strip().startswith(gold))


def check(section: ArithmeticConfig) -> None:
    if section.facts < 2:
        raise ConfigError(f"arithmetic.facts must be at least 2, got {section.facts}")


register(
    DomainSpec(
        name="arithmetic",
        factory=ArithmeticDomain,
        conditions=("no_update", "fact_selfedit", "policy_no_update", "policy_selfedit"),
        metrics=("answer_loglik", "token_accuracy", "starts_with_sum"),
        graders={"starts_with_sum": starts_with_sum},
        defaults=(
            "evaluate.conditions=[no_update,fact_selfedit]",
            "evaluate.metrics=[answer_loglik,starts_with_sum]",
            "tracking.experiment=seal-arithmetic",
        ),
        section=ArithmeticConfig,
        validate=check,
    )
)
