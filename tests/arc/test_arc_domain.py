"""The ARC domain: tool-call self-edits become leave-one-out test-time-training updates."""

import pytest

from seal_lightning.arc.data import ArcTask
from seal_lightning.arc.domain import RESPONSE_PREFIX, ArcDomain, leave_one_out, task_message
from seal_lightning.configure import load_config

A, B, C = ((1, 0), (0, 0)), ((0, 2), (0, 0)), ((0, 0), (3, 0))
TASK = ArcTask(
    id="toy",
    train=((A, B), (B, C), (C, ((0, 0), (0, 4)))),
    test=((((5, 0), (0, 0)), ((0, 5), (0, 0))),),
)


@pytest.fixture
def domain(tokenizer):
    return ArcDomain(load_config(None, ["domain=arc", "arc.max_examples=5"]), tokenizer)


def test_leave_one_out_uses_every_demonstration_once_as_the_query():
    examples = leave_one_out(TASK.train)
    assert [query for _, query in examples] == list(TASK.train)
    assert all(query not in context and len(context) == 2 for context, query in examples)


def test_a_selfedit_becomes_augmented_examples_with_its_own_settings(domain):
    # The completion continues the response prefix that ends the prompt.
    update = domain.update(TASK, 'basic"], "learning_rate": 0.002, "epochs": 3}\nThat should do.')
    assert update.error is None
    assert (update.inner.lr, update.inner.epochs) == (0.002, 3)
    assert not update.prompt_loss  # "loss" left out: the standard configuration's "outputs"
    # Three plain leave-one-out examples always, augmented ones up to arc.max_examples.
    assert len(update.examples) == 5 and any("sampled down" in note for note in update.notes)
    prompt, completion = update.examples[0]
    assert completion == "02\n00" and "Test input:\n10\n00" in prompt
    assert "Test input:\n10\n00" not in domain.update(TASK, 'basic"]}').examples[1][0]


def test_configured_selfedits_are_whole_objects(domain):
    texts = [*domain.conditions()["ttt_standard"].selfedits, *domain.conditions()["oracle"].selfedits]
    assert len(texts) == 1 + len(domain.config.arc.oracle)
    for text in texts:
        update = domain.update(TASK, text)
        assert update.error is None and update.examples, text


def test_loss_all_covers_the_prompt_and_clamps_are_noted(domain):
    update = domain.update(TASK, 'repeat"], "loss": "all", "learning_rate": 9, "epochs": 1}')
    assert update.prompt_loss and update.inner.lr == domain.config.arc.max_lr
    assert any("clamped" in note for note in update.notes)


@pytest.mark.parametrize("completion", ["", "sure! here you go", 'rm -rf"]}', 'basic"], "epochs": "3"}'])
def test_a_rejected_selfedit_trains_nothing_and_says_why(domain, completion):
    update = domain.update(TASK, completion)
    assert update.error and not update.examples


def test_questions_hold_the_demonstrations_and_test_input_but_not_the_solution(domain):
    (question,) = domain.questions(TASK)
    assert question.question == task_message(TASK.train, TASK.test[0][0])
    assert question.answer == "05\n00"
    assert question.answer not in question.question


def test_examples_longer_than_inner_max_length_are_dropped(tokenizer):
    domain = ArcDomain(load_config(None, ["domain=arc", "inner.max_length=8"]), tokenizer)
    update = domain.update(TASK, 'basic"]}')
    assert update.error == "no training example fits inner.max_length=8"


def test_selfedit_prompt_shows_the_demonstrations_and_the_schema(domain):
    prompt = domain.selfedit_prompt(TASK)
    assert "Example 3\nInput:\n00\n30\nOutput:\n00\n04" in prompt
    assert '"learning_rate"' in prompt and domain.standard.to_json() in prompt
    assert prompt.endswith(RESPONSE_PREFIX)
