"""Each round's items, and the guard that keeps held-out items out of training."""

import json

import pytest

from seal_lightning.config import DataConfig, SealConfig
from seal_lightning.errors import DataError
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.rounds import check_heldout, round_items, trained_keys


def domain(tokenizer, **data):
    return KnowledgeDomain(SealConfig(data=DataConfig(**data)), tokenizer)


def keys(rounds):
    return [[item.key for item in items] for items in rounds]


def test_rounds_work_on_new_passages(tokenizer):
    """The defect this guards against: every round scored the same passages, so round 2 was scored on the
    passages whose best self-edits the policy had just been trained on."""
    rounds = round_items(domain(tokenizer, per_round=6), DataConfig(per_round=6), 2)
    assert [len(items) for items in rounds] == [6, 6]
    assert not set(keys(rounds)[0]) & set(keys(rounds)[1])
    everything = keys([domain(tokenizer).load()])[0]
    assert keys(rounds) == [everything[:6], everything[6:12]]


def test_by_default_the_items_are_split_evenly_over_the_rounds(tokenizer):
    data = DataConfig(limit=10)
    rounds = round_items(domain(tokenizer, limit=10), data, 3)
    assert [len(items) for items in rounds] == [3, 3, 3]


def test_too_few_items_for_the_rounds_is_one_clear_error(tokenizer):
    with pytest.raises(DataError, match="2 rounds of 6 items need 12, but the data holds 8"):
        round_items(domain(tokenizer, limit=8), DataConfig(limit=8, per_round=6), 2)


def test_reuse_gives_every_round_all_items(tokenizer):
    rounds = round_items(domain(tokenizer, limit=3), DataConfig(limit=3, reuse_items=True), 2)
    assert keys(rounds)[0] == keys(rounds)[1] and len(rounds[0]) == 3


def test_one_file_per_round_and_no_passage_in_two_rounds(tmp_path, tokenizer):
    def passage(title):
        return {"title": title, "context": f"{title} is a place.", "questions": [{"question": "Q?", "answer": "A"}]}

    first, second, overlapping = tmp_path / "1.json", tmp_path / "2.json", tmp_path / "3.json"
    first.write_text(json.dumps([passage("A"), passage("B")]))
    second.write_text(json.dumps([passage("C")]))
    overlapping.write_text(json.dumps([passage("B")]))
    data = DataConfig(rounds=[str(first), str(second)])
    rounds = round_items(domain(tokenizer, rounds=data.rounds), data, 2)
    assert [[item.title for item in items] for items in rounds] == [["A", "B"], ["C"]]
    with pytest.raises(DataError, match=r"outer\.rounds=3 but data\.rounds names 2 files"):
        round_items(domain(tokenizer), data, 3)
    with pytest.raises(DataError, match="'B' is in rounds 1 and 2"):
        round_items(domain(tokenizer), DataConfig(rounds=[str(first), str(overlapping)]), 2)


def test_heldout_items_must_be_new(tokenizer):
    heldout = list(domain(tokenizer).load_heldout())[:3]
    check_heldout(heldout, {item.key for item in domain(tokenizer).load()}, "the rounds train on")
    with pytest.raises(DataError, match="is among the items the rounds train on"):
        check_heldout(heldout, {heldout[1].key}, "the rounds train on")


def test_a_fit_policy_folder_knows_its_training_items(tmp_path):
    for index, names in ((1, ["a", "b"]), (2, ["c"]), (3, ["d"])):
        (tmp_path / f"round_{index}").mkdir()
        (tmp_path / f"round_{index}" / "selfedits.json").write_text(json.dumps({key: [] for key in names}))
    assert trained_keys(str(tmp_path / "round_2" / "policy")) == {"a", "b", "c"}
    assert trained_keys(str(tmp_path / "elsewhere")) == set()
    assert trained_keys("builtin") == set() and trained_keys(None) == set()
