import json
import re

import pytest

from seal_lightning.arc.config import ArcConfig
from seal_lightning.arc.data import PAPER_TASKS, ArcTask, builtin_arc_tasks, load_arc_path, load_arc_tasks
from seal_lightning.config import DataConfig
from seal_lightning.errors import DataError

PAIR = {"input": [[1, 0], [0, 1]], "output": [[2]]}
TEST = {"input": [[0, 1], [1, 0]]}
TASK = {"train": [PAIR, PAIR], "test": [{**TEST, "output": [[3]]}]}
EXPECTED = ArcTask("t1", train=((((1, 0), (0, 1)), ((2,),)),) * 2, test=((((0, 1), (1, 0)), ((3,),)),))


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def load(path, **arc):
    return load_arc_tasks(DataConfig(path=str(path)), ArcConfig(**arc))


def test_challenges_with_sibling_solutions(tmp_path):
    challenges = {"t1": {"train": [PAIR, PAIR], "test": [TEST]}, "t2": {**TASK, "test": [TEST, TEST]}}
    path = write(tmp_path / "x_challenges.json", challenges)
    write(tmp_path / "x_solutions.json", {"t1": [[[3]]], "t2": [[[4]], [[5, 5]]]})
    tasks = load(path)
    assert tasks[0] == EXPECTED
    assert tasks[0].key == tasks[0].title == "t1"
    assert [output for _, output in tasks[1].test] == [((4,),), ((5, 5),)]


def test_challenges_with_named_solutions_and_inline_outputs(tmp_path):
    path = write(tmp_path / "c.json", {"t1": {"train": [PAIR, PAIR], "test": [TEST]}, "t2": TASK})
    solutions = write(tmp_path / "answers.json", {"t1": [[[3]]]})
    assert load(path, solutions=str(solutions))[0] == EXPECTED
    # Inline outputs need no solutions file.
    assert load(write(tmp_path / "inline_challenges.json", {"t1": TASK}))[0] == EXPECTED


def test_task_file_and_folder(tmp_path):
    assert load(write(tmp_path / "t1.json", TASK)) == [EXPECTED]
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ("b", "a", "c"):
        write(folder / f"{name}.json", TASK)
    (folder / "notes.txt").write_text("not a task")
    assert [task.id for task in load(folder)] == ["a", "b", "c"]


def test_selection_order_and_limit(tmp_path):
    path = write(tmp_path / "c.json", {name: TASK for name in ("a", "b", "c")})
    assert [t.id for t in load(path)] == ["a", "b", "c"]
    assert [t.id for t in load(path, tasks=["c", "a"])] == ["c", "a"]
    assert [t.id for t in load_arc_tasks(DataConfig(path=str(path), limit=2), ArcConfig(tasks=["c", "b", "a"]))] == [
        "c",
        "b",
    ]
    with pytest.raises(DataError, match=r"c\.json: no task 'zz' \(arc.tasks names it\)"):
        load(path, tasks=["a", "zz"])


def bad(**changes):
    return {"t1": {**TASK, **changes}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ([TASK], "expected a task or a JSON object of tasks by id"),
        ({}, "expected a task or a JSON object of tasks by id"),
        ({"t1": [1]}, "task t1: expected an object with 'train' and 'test', got list"),
        (bad(train=[]), "task t1: train: must be a non-empty list"),
        ({"t1": {"test": [TEST]}}, "task t1: train: must be a non-empty list"),
        (bad(test=[]), "task t1: test: must be a non-empty list"),
        (bad(train=[PAIR, 3]), "task t1: train[1]: expected an object with 'input' and 'output'"),
        (bad(train=[PAIR, {"output": [[1]]}]), "task t1: train[1]: expected an object"),
        (bad(train=[PAIR, {"input": [[1]]}]), "task t1: train[1].output: expected a list of rows, got NoneType"),
        (
            bad(train=[PAIR, PAIR, {"input": [[1]], "output": [[1, 2, 3], [4, 5]]}]),
            "task t1: train[2].output: row 1 has 2 cells, row 0 has 3",
        ),
        (bad(test=[{"input": [[1, 12]], "output": [[1]]}]), "task t1: test[0].input: row 0, column 1: 12 is not"),
        (bad(test=[TEST]), "task t1: test[0].output: missing, and arc.solutions is not set"),
    ],
)
def test_malformed_files_name_file_task_and_field(tmp_path, content, message):
    path = write(tmp_path / "x.json", content)
    with pytest.raises(DataError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_missing_solutions(tmp_path):
    path = write(tmp_path / "x_challenges.json", {"t1": {"train": [PAIR], "test": [TEST, TEST]}})
    with pytest.raises(
        DataError,
        match=re.escape(f"test[0].output: missing, and the solutions file {tmp_path / 'x_solutions.json'} does"),
    ):
        load(path)
    with pytest.raises(DataError, match=re.escape(f"data file not found: {tmp_path / 'none.json'}")):
        load(path, solutions=str(tmp_path / "none.json"))
    write(tmp_path / "x_solutions.json", {"t1": [[[1]]]})
    with pytest.raises(DataError, match=r"x_solutions\.json: task t1: no output for test\[1\]"):
        load(path)
    write(tmp_path / "x_solutions.json", {"t1": [[[1]], [[1, 2], [3]]]})
    with pytest.raises(DataError, match=r"x_solutions\.json: task t1: test\[1\]\.output: row 1 has 1 cells"):
        load(path)
    write(tmp_path / "x_solutions.json", [])
    with pytest.raises(DataError, match=r"x_solutions\.json: expected a JSON object"):
        load(path)


def test_missing_paths_and_bad_task_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load(tmp_path / "none.json")
    with pytest.raises(DataError, match=r"holds no \.json task files"):
        load(tmp_path)
    write(tmp_path / "a.json", TASK)
    write(tmp_path / "b.json", {"t1": TASK})
    with pytest.raises(DataError, match=r"b\.json: expected a task object"):
        load(tmp_path)
    with pytest.raises(DataError, match=r"a\.json: task a: test\[0\]\.output: row 0 has 0 cells"):
        load(write(tmp_path / "a.json", {**TASK, "test": [{**TEST, "output": [[]]}]}))


def test_builtin_paper_tasks_have_solutions():
    tasks = load_arc_tasks(DataConfig(), ArcConfig())
    assert [task.id for task in tasks] == list(PAPER_TASKS)
    assert all(task.train and task.test for task in tasks)
    assert len(load_arc_tasks(DataConfig(limit=3), ArcConfig())) == 3
    # ARC-AGI-1 evaluation tasks load by id too.
    assert [task.id for task in builtin_arc_tasks(["00576224", "44f52bb0"])] == ["00576224", "44f52bb0"]
    with pytest.raises(DataError, match="no task 'nope' in ARC-AGI-1"):
        load_arc_tasks(DataConfig(), ArcConfig(tasks=["44f52bb0", "nope"]))


def test_shared_challenges_match_builtin(shared_file):
    path = shared_file("arc/train_challenges.json")
    assert load_arc_path(path) == builtin_arc_tasks(PAPER_TASKS)
    assert load(path) == load_arc_tasks(DataConfig(), ArcConfig())
