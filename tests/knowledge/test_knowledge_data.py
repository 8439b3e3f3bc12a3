import json

import pytest

from seal_lightning.config import DataConfig
from seal_lightning.errors import DataError
from seal_lightning.knowledge.data import load_heldout_passages, load_knowledge_file, load_passages


def write(tmp_path, obj, name="d.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


GOOD = {"title": "T", "context": "C.", "questions": [{"question": "Q?", "answer": "A"}]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"title": "x"}, "expected a JSON list"),
        ([], "holds no passages"),
        ([GOOD, 3], "item 1: expected an object"),
        ([GOOD, {**GOOD, "title": ""}], "item 1: field 'title'"),
        ([{**GOOD, "context": 5}], "item 0: field 'context'"),
        ([{**GOOD, "questions": []}], "item 0: field 'questions'"),
        ([{**GOOD, "questions": [{"question": "Q?"}]}], "item 0: field 'questions[0].answer'"),
        ([{**GOOD, "completions": [1]}], "item 0: field 'completions'"),
    ],
)
def test_bad_files_name_file_item_and_field(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as info:
        load_knowledge_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_passages(DataConfig(path=str(tmp_path / "none.json")))


def test_good_file_and_limit(tmp_path):
    path = write(tmp_path, [GOOD, {**GOOD, "title": "U", "completions": ["a\nb"]}])
    passages = load_passages(DataConfig(path=str(path), limit=5))
    assert [p.title for p in passages] == ["T", "U"]
    assert passages[1].completions == ("a\nb",)
    assert passages[0].questions[0].answer == "A"
    assert passages[0].key != passages[1].key
    assert len(load_passages(DataConfig(path=str(path), limit=1))) == 1


def test_builtin_splits_load():
    assert len(load_passages(DataConfig(builtin_split="test"))) == 48
    assert len(load_passages(DataConfig(limit=3))) == 3


def test_heldout_passages_are_the_test_split_or_a_file(tmp_path):
    assert load_heldout_passages(DataConfig(heldout_limit=5)) == load_passages(DataConfig(builtin_split="test"))[:5]
    path = write(tmp_path, [GOOD])
    assert [p.title for p in load_heldout_passages(DataConfig(heldout=str(path)))] == ["T"]


def test_training_files_without_a_heldout_file_are_refused(tmp_path):
    """Fictional built-in passages are no held-out set for SQuAD training: the user must name one."""
    path = write(tmp_path, [GOOD])
    for config in (DataConfig(path=str(path)), DataConfig(rounds=[str(path)])):
        with pytest.raises(DataError, match=r"data\.heldout is not set"):
            load_heldout_passages(config)


@pytest.mark.parametrize(
    "name", ["squad/dev100.json", "squad/train_round1.json", "reference/qwen7b_base_selfedits_round1.json"]
)
def test_shared_squad_files_load(name, shared_file):
    passages = load_passages(DataConfig(path=str(shared_file(name))))
    assert len(passages) >= 50
    assert all(p.questions for p in passages)


def test_a_hostile_title_never_becomes_a_path(tmp_path):
    """Run-directory names come from item keys, which hash the title and context."""
    (passage,) = load_passages(DataConfig(path=str(write(tmp_path, [{**GOOD, "title": "../../etc/x"}]))))
    assert len(passage.key) == 12 and all(c in "0123456789abcdef" for c in passage.key)
