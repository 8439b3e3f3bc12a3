"""Tests for the built-in corpus of fictional facts."""

import re

import pytest

from seal_lightning.knowledge.builtin import SPLITS, builtin_passages

SIZES = {"train": 96, "validation": 24, "test": 48}
SEEDS = (0, 1, 7, 12345)


def all_passages(seed: int) -> list[dict]:
    return [p for split in SPLITS for p in builtin_passages(split, seed)]


def test_splits_constant() -> None:
    assert SPLITS == ("train", "validation", "test")


@pytest.mark.parametrize("split", SPLITS)
def test_same_seed_gives_same_passages(split: str) -> None:
    assert builtin_passages(split, seed=3) == builtin_passages(split, seed=3)
    assert builtin_passages(split) == builtin_passages(split, seed=0)


@pytest.mark.parametrize("split", SPLITS)
def test_other_seed_gives_other_passages(split: str) -> None:
    assert builtin_passages(split, seed=0) != builtin_passages(split, seed=1)


def test_returned_lists_are_independent_copies() -> None:
    passages = builtin_passages("train")
    passages[0]["questions"].clear()
    assert builtin_passages("train")[0]["questions"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("split", SPLITS)
def test_split_sizes(split: str, seed: int) -> None:
    assert len(builtin_passages(split, seed)) == SIZES[split]


@pytest.mark.parametrize("seed", SEEDS)
def test_titles_disjoint_across_splits(seed: int) -> None:
    titles = {split: {p["title"] for p in builtin_passages(split, seed)} for split in SPLITS}
    for split in SPLITS:
        assert len(titles[split]) == SIZES[split]
    assert titles["train"].isdisjoint(titles["validation"])
    assert titles["train"].isdisjoint(titles["test"])
    assert titles["validation"].isdisjoint(titles["test"])


@pytest.mark.parametrize("seed", SEEDS)
def test_no_entity_of_one_split_appears_in_another(seed: int) -> None:
    for split in SPLITS:
        others = " ".join(p["context"] for s in SPLITS if s != split for p in builtin_passages(s, seed))
        for passage in builtin_passages(split, seed):
            assert not re.search(rf"\b{re.escape(passage['title'])}\b", others), passage["title"]


@pytest.mark.parametrize("seed", SEEDS)
def test_passage_shape(seed: int) -> None:
    for passage in all_passages(seed):
        assert set(passage) == {"title", "context", "questions"}
        assert isinstance(passage["title"], str) and passage["title"]
        assert isinstance(passage["context"], str)
        assert 2 <= passage["context"].count(". ") + 1 <= 5
        assert len(passage["context"].split()) < 90
        for qa in passage["questions"]:
            assert set(qa) == {"question", "answer"}
            assert qa["question"].endswith("?")
            assert 1 <= len(qa["answer"].split()) <= 4


@pytest.mark.parametrize("seed", SEEDS)
def test_question_count(seed: int) -> None:
    for passage in all_passages(seed):
        assert 3 <= len(passage["questions"]) <= 6


@pytest.mark.parametrize("seed", SEEDS)
def test_every_answer_appears_in_its_context(seed: int) -> None:
    for passage in all_passages(seed):
        for qa in passage["questions"]:
            assert qa["answer"] in passage["context"], (qa, passage["context"])


@pytest.mark.parametrize("seed", SEEDS)
def test_every_question_names_its_entity(seed: int) -> None:
    for passage in all_passages(seed):
        for qa in passage["questions"]:
            assert passage["title"] in qa["question"], (qa, passage["title"])


@pytest.mark.parametrize("seed", SEEDS)
def test_answers_distinct_and_not_given_away(seed: int) -> None:
    for passage in all_passages(seed):
        answers = [qa["answer"].lower() for qa in passage["questions"]]
        assert len(set(answers)) == len(answers), answers
        for qa in passage["questions"]:
            assert qa["answer"].lower() not in qa["question"].lower(), qa


def test_years_in_range() -> None:
    for passage in all_passages(0):
        for year in re.findall(r"\bin (\d{4})\b", passage["context"]):
            assert 1600 <= int(year) <= 2000


@pytest.mark.parametrize("seed", SEEDS)
def test_no_gold_answer_of_one_split_is_a_gold_answer_of_another(seed: int) -> None:
    """Otherwise a policy trained on the train split could gain on the test split from priors over answers
    (small pools of trades and industries, years and counts drawn from the same ranges)."""
    answers = {s: {qa["answer"] for p in builtin_passages(s, seed) for qa in p["questions"]} for s in SPLITS}
    for split in SPLITS:
        for other in SPLITS:
            if split != other:
                assert not answers[split] & answers[other], (split, other, answers[split] & answers[other])


@pytest.mark.parametrize("split", SPLITS)
def test_every_split_mixes_several_kinds_of_passage(split: str) -> None:
    kinds = {tuple(qa["question"].replace(p["title"], "X") for qa in p["questions"]) for p in builtin_passages(split)}
    assert len(kinds) >= 3, kinds


@pytest.mark.parametrize("split", ["", "valid", "Train", "dev"])
def test_bad_split_raises(split: str) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        builtin_passages(split)
