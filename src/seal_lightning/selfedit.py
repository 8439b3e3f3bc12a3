"""Self-edit prompts and how a self-edit becomes training documents (SEAL.md, knowledge domain)."""

from __future__ import annotations

from seal_lightning.data.knowledge import Passage

IMPLICATIONS_TEMPLATE = (
    "Let's read the following passage and produce a list of implications derived directly or "
    "indirectly from the content.\n\nPassage:\n{title}\n{context}\n\nImplications:\n"
)

# How a question is put to the model when it is scored: the passage is not in the prompt.
ANSWER_TEMPLATE = "Answer the question directly and concisely.\nQuestion: {question}"


def selfedit_prompt(passage: Passage) -> str:
    return IMPLICATIONS_TEMPLATE.format(title=passage.title, context=passage.context)


def passage_document(passage: Passage) -> str:
    return f"{passage.title}\n{passage.context}"


def documents_from_selfedit(passage: Passage, completion: str) -> list[str]:
    """Each non-empty line becomes "{title}\\n{line}"; the passage itself is always one more document."""
    lines = [line.strip() for line in completion.splitlines()]
    return [f"{passage.title}\n{line}" for line in lines if line] + [passage_document(passage)]
