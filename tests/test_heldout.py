"""The held-out table of fit: rows per round, and changes from round 0 paired by item."""

from seal_lightning.heldout import changes, format_heldout, row_values
from seal_lightning.knowledge.domain import KnowledgeDomain

DOMAIN = KnowledgeDomain
ITEMS = ("a", "b", "c", "d")


def records(condition_values: dict[str, list[float]]) -> list[dict]:
    return [
        {"condition": condition, "item": item, "answer_loglik": value}
        for condition, values in condition_values.items()
        for item, value in zip(ITEMS, values, strict=True)
    ]


ROUNDS = {
    0: records({"no_update": [-7, -8, -7, -8], "passage": [-6] * 4, "passage_selfedit": [-6, -5, -6, -5]}),
    1: records(
        {
            "policy_no_update": [-7.5, -8.5, -7.5, -8.5],
            "policy_selfedit": [-5.5, -4.5, -5.5, -4.5],
            "policy_selfedit_base": [-6, -5, -6, -5],
        }
    ),
}


def test_a_trained_round_is_read_through_its_own_conditions():
    values = dict(row_values(DOMAIN, ROUNDS[1], 1, "answer_loglik"))
    # passage: round 0 only; the last row is what learning the self-edit adds over answering without it.
    assert set(values) == {"no_update", "passage_selfedit", "policy_selfedit_base", "passage_selfedit_minus_no_update"}
    assert values["passage_selfedit"]["b"] == -4.5
    assert values["passage_selfedit_minus_no_update"]["b"] == 4.0
    start = dict(row_values(DOMAIN, ROUNDS[0], 0, "answer_loglik"))
    # At round 0 the starting model writes for itself: the diagnostic row is the SEAL row.
    assert start["policy_selfedit_base"] == start["passage_selfedit"]


def test_changes_are_paired_by_item_against_round_0():
    found = dict(changes(DOMAIN, ROUNDS, 1, "answer_loglik", resamples=2000))
    assert (found["passage_selfedit"].mean, found["passage_selfedit"].low) == (0.5, 0.5)
    assert found["no_update"].mean == -0.5 and found["no_update"].high == -0.5
    assert found["policy_selfedit_base"].mean == 0.0 and not found["policy_selfedit_base"].excludes_zero
    assert found["passage_selfedit_minus_no_update"].mean == 1.0
    assert changes(DOMAIN, ROUNDS, 0, "answer_loglik", 100) == []


def test_the_table_ends_with_the_verdicts_on_the_headline_row_and_on_what_learning_adds():
    text = format_heldout(DOMAIN, ROUNDS, ["answer_loglik"], resamples=2000)
    assert "held-out answer_loglik: mean over 4 items" in text
    header, *rows = text.splitlines()[1:7]
    round_0_ends = header.index("round 0") + len("round 0")
    assert all(row[round_0_ends - 1].isdigit() for row in rows), "round 0's column is aligned in every row"
    assert text.splitlines()[-2:] == [
        "SEAL on held-out items after round 1 (passage_selfedit, answer_loglik): +0.500 [+0.500, +0.500] vs round 0, "
        "above zero",
        "of which learning the self-edits, apart from answering without one (passage_selfedit_minus_no_update): "
        "+1.000 [+1.000, +1.000], above zero",
    ]
