"""Knowledge passages: the SQuAD-style JSON loader with validation, and the built-in corpus.

A file is a JSON list of `{"title", "context", "questions": [{"question", "answer"}]}`; items may
carry `completions` (self-edits written by some generator, as in ../shared/data/reference/).
Every item is checked so that a bad file fails with the file, the item index and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Sequence, Value

from seal_lightning.config import DataConfig
from seal_lightning.domains.base import Question
from seal_lightning.errors import DataError, not_found
from seal_lightning.knowledge.builtin import builtin_passages

FEATURES = Features(
    {
        "title": Value("string"),
        "context": Value("string"),
        "questions": [{"question": Value("string"), "answer": Value("string")}],
        "completions": Sequence(Value("string")),
    }
)


@dataclass(frozen=True)
class Passage:
    title: str
    context: str
    questions: tuple[Question, ...]
    completions: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """A stable id for run bookkeeping (titles repeat in SQuAD, contexts do not)."""
        return hashlib.sha1(f"{self.title}\n{self.context}".encode()).hexdigest()[:12]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Passage:
        return cls(
            title=row["title"],
            context=row["context"],
            questions=tuple(Question(q["question"], q["answer"]) for q in row["questions"]),
            completions=tuple(row.get("completions") or ()),
        )


def validate_items(items: Any, source: str) -> list[dict[str, Any]]:
    """Return the items in canonical form, or raise DataError naming the first bad field."""
    if not isinstance(items, list):
        raise DataError(f"{source}: expected a JSON list of passages, got {type(items).__name__}")
    if not items:
        raise DataError(f"{source}: holds no passages")
    rows = []
    for index, item in enumerate(items):
        where = f"{source}: item {index}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object, got {type(item).__name__}")
        for key in ("title", "context"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise DataError(f"{where}: field '{key}' must be a non-empty string")
        questions = item.get("questions")
        if not isinstance(questions, list) or not questions:
            raise DataError(f"{where}: field 'questions' must be a non-empty list")
        for q_index, qa in enumerate(questions):
            for key in ("question", "answer"):
                if not isinstance(qa, dict) or not isinstance(qa.get(key), str) or not qa[key].strip():
                    raise DataError(f"{where}: field 'questions[{q_index}].{key}' must be a non-empty string")
        completions = item.get("completions", [])
        if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
            raise DataError(f"{where}: field 'completions' must be a list of strings")
        rows.append(
            {
                "title": item["title"],
                "context": item["context"],
                "questions": [{"question": qa["question"], "answer": qa["answer"]} for qa in questions],
                "completions": completions,
            }
        )
    return rows


def load_knowledge_file(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(not_found("data file", path))
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers, deep nesting
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return Dataset.from_list(validate_items(items, str(path)), features=FEATURES)


def builtin_dataset(split: str, seed: int) -> Dataset:
    return Dataset.from_list(validate_items(builtin_passages(split, seed), f"builtin:{split}"), features=FEATURES)


def load_passages(config: DataConfig, path: str | None = None) -> list[Passage]:
    """Training passages: those of `path` (a round's file) or `data.path`, else the built-in corpus's
    `data.builtin_split`; the first `data.limit` of them."""
    path = path or config.path
    dataset = (
        load_knowledge_file(path) if path is not None else builtin_dataset(config.builtin_split, config.builtin_seed)
    )
    return _first(dataset, config.limit)


def load_heldout_passages(config: DataConfig) -> list[Passage]:
    """Held-out passages: `data.heldout`, else the built-in corpus's test split; the first `data.heldout_limit`."""
    if config.heldout is not None:
        return _first(load_knowledge_file(config.heldout), config.heldout_limit)
    if config.path is not None or config.rounds is not None:
        raise DataError(
            "data.heldout is not set while training reads data files: name a held-out file of the same kind "
            "(for example ../shared/data/squad/dev100.json), or set heldout.enabled=false"
        )
    return _first(builtin_dataset("test", config.builtin_seed), config.heldout_limit)


def _first(dataset: Dataset, limit: int | None) -> list[Passage]:
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return [Passage.from_row(row) for row in dataset]


def external_selfedits(path: str) -> dict[str, str]:
    """The first completion of each passage in a SQuAD-style file with `completions`, keyed by passage."""
    dataset = load_knowledge_file(path)
    found = {}
    for row in dataset:
        passage = Passage.from_row(row)
        if passage.completions:
            found[passage.key] = passage.completions[0]
    if not found:
        raise DataError(f"{path}: no passage has 'completions' (needed by passage_external)")
    return found
