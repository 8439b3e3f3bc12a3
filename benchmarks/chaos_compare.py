"""Compare two run directories of the same command: the uninterrupted one and the one killed and resumed.

Every file is compared by what it holds: JSON and JSONL by value (records as multisets, so a duplicated or
lost line shows), safetensors by tensor, the rest byte for byte; the MLflow store by its runs (names,
status, params, last metric values, artifact paths). Timings differ by nature and are left out.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

# Timings, memory peaks and the run's own path; the lock's holder and MLflow's run ids (the store is compared by run).
VOLATILE_KEY = re.compile(r"(time|seconds|_s$|_gib$|^run_dir$)")
NOT_COMPARED = {".lock", "mlflow.db", "mlflow_runs.json", "phases.json"}
# Lists that PEFT writes from a set, in an order that changes with each process's hash seed.
UNORDERED_KEYS = {"target_modules"}
TOLERANCE = 1e-6


def compare_run_dirs(reference: Path, resumed: Path) -> list[str]:
    """Every way `resumed` differs from `reference` (empty: none)."""
    ours, theirs = _files(reference), _files(resumed)
    differences = [f"missing after the kills: {name}" for name in sorted(ours - theirs)]
    differences += [f"left behind or extra: {name}" for name in sorted(theirs - ours)]
    for name in sorted(ours & theirs):
        problems = _compare_file(reference / name, resumed / name, (str(reference), str(resumed)))
        differences += [f"{name}: {problem}" for problem in problems]
    return differences + _compare_mlflow(reference, resumed)


def _files(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.name not in NOT_COMPARED and "mlartifacts" not in path.parts
    }


def _compare_file(a: Path, b: Path, roots: tuple[str, str]) -> list[str]:
    """By contents, each run's own folder name taken out of its text."""
    if a.suffix == ".safetensors":
        return _compare_tensors(a, b)
    try:
        text_a, text_b = (
            path.read_text(encoding="utf-8").replace(root, "<run_dir>")
            for path, root in zip((a, b), roots, strict=True)
        )
    except UnicodeDecodeError:
        return [] if a.read_bytes() == b.read_bytes() else ["contents differ"]
    if a.suffix == ".jsonl":
        return _compare_records(*([json.loads(line) for line in text.split("\n") if line] for text in (text_a, text_b)))
    if a.suffix in (".json", ".yaml"):
        return _differences(*(yaml.safe_load(text) for text in (text_a, text_b)), "")
    return [] if text_a == text_b else ["contents differ"]


def _compare_records(a: list[dict], b: list[dict]) -> list[str]:
    """Lines as multisets, matched by everything but their floats (a resumed run may write them in
    another order); then the floats of matched lines."""
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(b)} lines, uninterrupted {len(a)}")
    keys_a, keys_b = Counter(map(_shape, a)), Counter(map(_shape, b))
    for key, count in (keys_b - keys_a).items():
        problems.append(f"{count} extra or duplicated line(s) {key[:160]}")
    for key, count in (keys_a - keys_b).items():
        problems.append(f"{count} line(s) lost {key[:160]}")
    ordered_a, ordered_b = sorted(a, key=_shape), sorted(b, key=_shape)
    if not problems:
        for index, (x, y) in enumerate(zip(ordered_a, ordered_b, strict=True)):
            problems += _differences(x, y, f"line {index}")
    return problems


def _shape(record: Any) -> str:
    """A record without its floats (and timings): what identifies it."""

    def strip(value: Any) -> Any:
        if isinstance(value, float):
            return "<float>"
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not VOLATILE_KEY.search(k)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(record), sort_keys=True, ensure_ascii=False)


def _differences(a: Any, b: Any, where: str) -> list[str]:
    """Where two JSON values differ; floats within TOLERANCE (relative) are equal, timing keys are skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        problems = [f"{where}.{k} only on one side" for k in set(a) ^ set(b) if not VOLATILE_KEY.search(k)]
        for key in sorted(set(a) & set(b)):
            if key in UNORDERED_KEYS:
                problems += _differences(sorted(a[key]), sorted(b[key]), f"{where}.{key}")
            elif not VOLATILE_KEY.search(key):
                problems += _differences(a[key], b[key], f"{where}.{key}")
        return problems
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(b)} entries, uninterrupted {len(a)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [p for index, (x, y) in pairs for p in _differences(x, y, f"{where}[{index}]")]
    if isinstance(a, float) and isinstance(b, float):
        if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            return []
    elif a == b:
        return []
    return [f"{where}: {str(b)[:80]!r}, uninterrupted {str(a)[:80]!r}"]


def _compare_tensors(a: Path, b: Path) -> list[str]:
    """Weights must be equal bit for bit: training redone after a kill starts from the same state and seed."""
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    if set(x) != set(y):
        return [f"tensor names differ: {sorted(set(x) ^ set(y))[:5]}"]
    unequal = [name for name in x if not x[name].equal(y[name])]
    if not unequal:
        return []
    worst = max((x[n].float() - y[n].float()).abs().max().item() for n in unequal)
    return [f"{len(unequal)} of {len(x)} tensors differ (largest difference {worst:.3g})"]


def _compare_mlflow(reference: Path, resumed: Path) -> list[str]:
    a, b = _mlflow_view(reference), _mlflow_view(resumed)
    problems = []
    if set(a) != set(b):
        names_a, names_b = Counter(name for name, _ in a), Counter(name for name, _ in b)
        problems.append(f"MLflow runs {dict(names_b)}, uninterrupted {dict(names_a)}")
    for key in sorted(set(a) & set(b)):
        problems += [f"MLflow {p}" for p in _differences(a[key], b[key], f"{key[0]}")]
    return problems


def _mlflow_view(run_dir: Path) -> dict[tuple[str, int], dict]:
    """Each run (by name and its rank among runs of that name) as status, params, last metrics, artifacts."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = sorted(
        (run for experiment in client.search_experiments() for run in client.search_runs([experiment.experiment_id])),
        key=lambda run: (run.info.run_name, run.info.start_time),
    )
    seen: Counter[str] = Counter()
    view = {}
    for run in runs:
        seen[run.info.run_name] += 1
        view[(run.info.run_name, seen[run.info.run_name])] = {
            "status": run.info.status,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "artifacts": sorted(_artifact_paths(client, run.info.run_id, None)),
        }
    return view


def _artifact_paths(client: Any, run_id: str, folder: str | None) -> list[str]:
    paths = []
    for entry in client.list_artifacts(run_id, folder):
        paths += _artifact_paths(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return paths
