import pytest

from seal_lightning.knowledge.graders import exact_match, normalize_answer, token_f1


@pytest.mark.parametrize(
    ("text", "normal"),
    [("The Brimmel Company!", "brimmel company"), ("  an  Apple, a pear ", "apple pear"), ("1,874.", "1874")],
)
def test_squad_normalisation(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_and_f1():
    assert exact_match("the Odrava", "Odrava") == 1.0
    assert exact_match("Odrava town", "Odrava") == 0.0
    # prediction 3 tokens, gold 2, overlap 2: precision 2/3, recall 1: F1 = 0.8
    assert token_f1("Brimmel Lantern Company", "Brimmel Lantern") == pytest.approx(0.8)
    assert token_f1("nothing alike", "Odrava") == 0.0
    assert token_f1("", "") == 1.0
