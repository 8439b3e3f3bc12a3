"""Knowledge incorporation (SEAL.md, domain 1): a passage's self-edit is a list of implications,
each trained on as a document; the model is then asked the passage's questions without the passage."""

from __future__ import annotations

from typing import ClassVar

from transformers import PreTrainedTokenizerBase

from seal_lightning.config import SealConfig
from seal_lightning.domains.base import Condition, HeldOutRow, Question, SelfEditUpdate
from seal_lightning.knowledge.data import Passage, load_heldout_passages, load_passages
from seal_lightning.models import chat_prompt

IMPLICATIONS_TEMPLATE = (
    "Let's read the following passage and produce a list of implications derived directly or "
    "indirectly from the content.\n\nPassage:\n{title}\n{context}\n\nImplications:\n"
)

# How a question is put to the model when it is scored, as the reference code asks it: the passage is not in
# the prompt, its title is (many SQuAD questions are ambiguous without it).
ANSWER_TEMPLATE = "Let's answer a question directly and concisely.\nQuestion: Topic: {title}\n{question}\nAnswer:\n"


def selfedit_prompt(passage: Passage) -> str:
    return IMPLICATIONS_TEMPLATE.format(title=passage.title, context=passage.context)


def passage_document(passage: Passage) -> str:
    return f"{passage.title}\n{passage.context}"


def documents_from_selfedit(passage: Passage, completion: str) -> list[str]:
    """Each non-empty line becomes "{title}\\n{line}"; the passage itself is always one more document."""
    lines = [line.strip() for line in completion.splitlines()]
    return [f"{passage.title}\n{line}" for line in lines if line] + [passage_document(passage)]


def answer_questions(passage: Passage) -> tuple[Question, ...]:
    """The passage's questions as the scored model sees them."""
    return tuple(
        Question(ANSWER_TEMPLATE.format(title=passage.title, question=q.question), q.answer) for q in passage.questions
    )


class KnowledgeDomain:
    name = "knowledge"
    heldout_rows: ClassVar[dict[str, HeldOutRow]] = {
        "no_update": HeldOutRow("no_update", "policy_no_update"),
        "passage": HeldOutRow("passage", None),
        "passage_selfedit": HeldOutRow("passage_selfedit", "policy_selfedit"),
        # The trained policy writes, the starting model learns and answers: did the self-edits get better?
        "policy_selfedit_base": HeldOutRow("passage_selfedit", "policy_selfedit_base"),
    }
    headline = "passage_selfedit"
    # The row without an update: the headline minus it is what learning the self-edit adds.
    unadapted = "no_update"

    def __init__(self, config: SealConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.config = config
        self.tokenizer = tokenizer

    def load(self, path: str | None = None) -> list[Passage]:
        return load_passages(self.config.data, path)

    def load_heldout(self) -> list[Passage]:
        return load_heldout_passages(self.config.data)

    def selfedit_prompt(self, item: Passage) -> str:
        return chat_prompt(self.tokenizer, selfedit_prompt(item))

    def update(self, item: Passage, completion: str) -> SelfEditUpdate:
        """Documents with no prompt: the loss covers every token, as in continued pre-training."""
        documents = documents_from_selfedit(item, completion)
        return SelfEditUpdate(examples=tuple(("", doc) for doc in documents), inner=self.config.inner)

    def questions(self, item: Passage) -> tuple[Question, ...]:
        return answer_questions(item)

    def conditions(self) -> dict[str, Condition]:
        return {
            "no_update": Condition("none"),
            # The empty self-edit: the passage alone.
            "passage": Condition("fixed", ("",)),
            "passage_selfedit": Condition("sampled"),
            "passage_external": Condition("external"),
            "policy_no_update": Condition("none", adapted="policy"),
            "policy_selfedit": Condition("sampled", writer="policy", adapted="policy"),
            "policy_selfedit_base": Condition("sampled", writer="policy", adapted="model"),
        }
