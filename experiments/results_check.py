"""Results unchanged across a refactor: the demo, a 2-passage continual comparison and one ARC round, run at
two commits, and what they wrote compared file by file (not only the printed tables).

    bash scripts/run.sh python experiments/results_check.py BEFORE AFTER [--out DIR]

Each commit runs from its own git worktree in this environment (its `src/` first on the path), one command
at a time. Compared: every round's scored self-edits, kept set and summary, the held-out records, and the
continual accuracy matrices; wall-clock fields are left out. Exit status 0 when everything is identical.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (name, command line after `python -m seal_lightning`); the run directory is added per commit.
RUNS = (
    ("demo", ["fit", "--config", "conf/demo.yaml"]),
    (
        "continual",
        ["continual", "--config", "conf/continual.yaml", "continual.passages=2", "continual.sequences=1"],
    ),
    ("arc", ["fit", "domain=arc", "heldout.enabled=false"]),
)
# Files whose content is the result (globs under a run directory).
RESULT_FILES = (
    "round_*/selfedits_scored.jsonl",
    "round_*/kept.json",
    "round_*/summary.json",
    "heldout/round_*/results.jsonl",
    "continual/*/sequence_*.json",
)
TIMING_KEYS = {"wall_time_s", "step_seconds", "seconds"}


def run_commit(commit: str, out: Path) -> Path:
    """Every run of `RUNS` at `commit`, under out/<commit>/<name>; the printed output beside each."""
    folder = out / commit
    tree = Path(tempfile.mkdtemp(prefix=f"seal-check-{commit[:8]}-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True)
    try:
        env = os.environ | {"PYTHONPATH": str(tree / "src")}
        folder.mkdir(parents=True, exist_ok=True)
        for name, argv in RUNS:
            run_dir = folder / name
            print(f"{commit[:8]} {name} ...", flush=True)
            with open(folder / f"{name}.log", "w") as log:
                command = [sys.executable, "-m", "seal_lightning", *argv, f"run_dir={run_dir}"]
                subprocess.run(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)
    return folder


def without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def load(path: Path) -> object:
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [without_timings(json.loads(line)) for line in text.splitlines() if line.strip()]
    return without_timings(json.loads(text))


def largest_difference(a: object, b: object) -> float:
    """0.0 when equal; the largest absolute difference of numbers in the same place; inf when shapes differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((largest_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return 0.0
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(a - b)
    return 0.0 if a == b else math.inf


def result_files(run_dir: Path) -> dict[str, Path]:
    """The result files of a run directory by a name that does not depend on the code: held-out folders
    (`heldout/round_1-<hash of the settings>`) by their round, since the settings' keys may be renamed."""
    found = {}
    for pattern in RESULT_FILES:
        for path in run_dir.glob(pattern):
            parts = list(path.relative_to(run_dir).parts)
            if parts[0] == "heldout":
                parts[1] = parts[1].split("-")[0]
            found["/".join(parts)] = path
    return found


def compare(before: Path, after: Path) -> bool:
    same = True
    for name, _ in RUNS:
        first, second = result_files(before / name), result_files(after / name)
        for relative in sorted(first.keys() | second.keys()):
            if relative not in first or relative not in second:
                print(f"{name}/{relative}: only in {'before' if relative in first else 'after'}")
                same = False
                continue
            a, b = first[relative], second[relative]
            difference = largest_difference(load(a), load(b))
            print(f"{name}/{relative}: {'identical' if difference == 0 else f'differs (largest {difference:.3g})'}")
            same &= difference == 0
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--out", default="runs/results_check")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    commits = [
        subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        for ref in (args.before, args.after)
    ]
    before, after = (run_commit(commit, out) for commit in commits)
    print(f"before {commits[0][:8]}, after {commits[1][:8]}")
    for name, _ in RUNS:
        for label, folder in (("before", before), ("after", after)):
            tail = (folder / f"{name}.log").read_text().splitlines()[-12:]
            print(f"--- {name}, {label} ---\n" + "\n".join(tail))
    same = compare(before, after)
    print("results identical" if same else "results differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
