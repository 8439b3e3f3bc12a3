"""The real built-in model and a three-passage stream, for each strategy's tests of what its plugin does."""

from __future__ import annotations

import pytest

from seal_lightning.config import InnerConfig, ModelConfig
from seal_lightning.continual.learner import SequentialEditor
from seal_lightning.continual.stream import passage_stream
from seal_lightning.examples import tokenize_example
from seal_lightning.knowledge.builtin import builtin_passages
from seal_lightning.models import load_model

INNER = InnerConfig(epochs=2, lr=3e-3, batch_size=2)
TARGETS = list(INNER.lora.target_modules)


@pytest.fixture
def model():
    """A fresh copy: sequential edits merge into the model they are given."""
    return load_model(ModelConfig())


@pytest.fixture(scope="session")
def stream(tokenizer):
    """Three passages; each experience is the passage and its sentences as documents (3 to 5 of them)."""
    documents = []
    for passage in builtin_passages("train", 0)[:3]:
        sentences = [s.strip() + "." for s in passage["context"].split(".") if s.strip()]
        texts = [f"{passage['title']}\n{passage['context']}", *(f"{passage['title']}\n{s}" for s in sentences)]
        documents.append([tokenize_example(tokenizer, "", text, 128) for text in texts])
    return passage_stream(documents, tokenizer.pad_token_id)


@pytest.fixture(scope="session")
def run():
    """`run(model, tokenizer, plugins, experiences, inner=INNER)`: the editor and each step's report."""

    def learn_all(model, tokenizer, plugins, experiences, inner=INNER):
        editor = SequentialEditor(model, tokenizer, inner, plugins, seed=0)
        return editor, [editor.learn(experience) for experience in experiences]

    return learn_all
