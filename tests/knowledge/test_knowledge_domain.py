from seal_lightning.domains import Question
from seal_lightning.knowledge.data import Passage
from seal_lightning.knowledge.domain import ANSWER_TEMPLATE, documents_from_selfedit, selfedit_prompt

PASSAGE = Passage("Odrava", "Odrava is a town.", (Question("What is Odrava?", "a town"),))


def test_each_nonempty_line_is_a_document_plus_the_passage():
    docs = documents_from_selfedit(PASSAGE, "1. It is small.\n\n   \n2. It is old.  \n")
    assert docs == ["Odrava\n1. It is small.", "Odrava\n2. It is old.", "Odrava\nOdrava is a town."]


def test_empty_selfedit_still_trains_on_the_passage():
    assert documents_from_selfedit(PASSAGE, "") == ["Odrava\nOdrava is a town."]


def test_prompt_is_the_implications_template():
    prompt = selfedit_prompt(PASSAGE)
    assert prompt.startswith("Let's read the following passage and produce a list of implications")
    assert prompt.endswith("Passage:\nOdrava\nOdrava is a town.\n\nImplications:\n")


def test_update_trains_on_every_document_token_and_questions_omit_the_passage(knowledge):
    domain = knowledge()
    update = domain.update(PASSAGE, "It is small.")
    assert update.examples == (("", "Odrava\nIt is small."), ("", "Odrava\nOdrava is a town."))
    assert update.error is None and not update.prompt_loss
    (question,) = domain.questions(PASSAGE)
    assert question.question == ANSWER_TEMPLATE.format(title="Odrava", question="What is Odrava?")
    assert "Odrava is a town." not in question.question


def test_questions_name_the_topic_as_the_reference_code_asks_them(knowledge):
    """Many SQuAD questions are ambiguous without their passage's title; the reference asks
    "Topic: {title}\n{question}" inside its answer template."""
    (question,) = knowledge().questions(PASSAGE)
    assert question.question == (
        "Let's answer a question directly and concisely.\nQuestion: Topic: Odrava\nWhat is Odrava?\nAnswer:\n"
    )
