"""experiments/heldout_table.py: one line per run, and the seeds of one setting pooled."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from seal_lightning.heldout import saved_records
from seal_lightning.store import RunStore

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "heldout_table.py"
ITEMS = ("a", "b", "c")


def load_script(path: Path = SCRIPT) -> ModuleType:
    """Import an experiment script by its path: experiments/ is not a package."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, start: list[float], gain: list[float], rounds: int = 1) -> Path:
    """A finished run whose SEAL row moved by `gain` per item by its last round and whose no_update row
    did not move."""
    trained = {
        "policy_no_update": start,
        "policy_selfedit": [s + g for s, g in zip(start, gain, strict=True)],
        "policy_selfedit_base": start,
    }
    rows = {0: {"no_update": start, "passage": start, "passage_selfedit": start}}
    rows |= {round_index: trained for round_index in range(1, rounds + 1)}
    for round_index, conditions in rows.items():
        folder = run_dir / "heldout" / f"round_{round_index}-0123456789"
        folder.mkdir(parents=True)
        lines = [
            json.dumps({"condition": condition, "item": item, "answer_loglik": value})
            for condition, values in conditions.items()
            for item, value in zip(ITEMS, values, strict=True)
        ]
        (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    for round_index in range(1, rounds + 1):
        (run_dir / f"round_{round_index}").mkdir()
        (run_dir / f"round_{round_index}" / "summary.json").write_text(json.dumps({"wall_time_s": 120.0}))
    return run_dir


def test_pooled_line_averages_the_seeds_per_passage(tmp_path):
    script = load_script()
    runs = [
        write_run(tmp_path / "seed_0", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6]),
        write_run(tmp_path / "seed_1", [-6.5, -6.0, -5.5], [0.6, 0.8, 1.0]),
    ]
    runs = {run_dir: saved_records(RunStore(run_dir)) for run_dir in runs}
    first = script.run_line(tmp_path / "seed_0", runs[tmp_path / "seed_0"], "", "answer_loglik", 2000)
    assert first.startswith("| seed_0 |  | 3 | 1 | -6.000 | +0.400 ")
    line = script.pooled_line(runs, "answer_loglik", 2000)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[:3] == ["pooled, 2 runs", "seeds and passages resampled", "3"]
    seal, base, no_update, adds = cells[5:9]
    assert seal.startswith("+0.600 [") and seal.endswith("*")
    assert no_update == "+0.000 [+0.000, +0.000]" and base == no_update
    assert adds.startswith("+0.600 [")


def test_pooled_line_needs_the_same_passages(tmp_path):
    script = load_script()
    runs = [write_run(tmp_path / "seed_0", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6])]
    other = write_run(tmp_path / "other", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6])
    for results in other.glob("heldout/*/results.jsonl"):
        results.write_text(results.read_text().replace('"item": "a"', '"item": "z"'))
    records = {run_dir: saved_records(RunStore(run_dir)) for run_dir in [*runs, other]}
    cells = [cell.strip() for cell in script.pooled_line(records, "answer_loglik", 2000).strip("|").split("|")]
    assert cells[2] == "2", "only the passages every run scored are pooled"
    missing = tmp_path / "missing"
    nothing = saved_records(RunStore(missing))
    assert script.run_line(missing, nothing, "", "answer_loglik", 100) is None, "no held-out result, no line"


def test_pooled_runs_must_end_at_the_same_round(tmp_path):
    """Pooling a 1-round run with a 2-round run would mix two settings: the script stops with one line."""
    write_run(tmp_path / "seed_0", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6])
    write_run(tmp_path / "seed_1", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6], rounds=2)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--pooled", str(tmp_path / "seed_0"), str(tmp_path / "seed_1")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "ended at different rounds: seed_0 round 1, seed_1 round 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_versus_pairs_two_settings_by_seed_and_passage(tmp_path):
    """Setting a's change minus setting b's, per seed (paired by passage) and pooled over the seeds."""
    script = load_script()
    start = [-6.0, -7.0, -5.0]
    a = [
        write_run(tmp_path / "a" / "seed_0", start, [0.2, 0.4, 0.6]),
        write_run(tmp_path / "a" / "seed_1", start, [0.6, 0.8, 1.0]),
    ]
    b = [
        write_run(tmp_path / "b" / "seed_0", start, [0.1, 0.1, 0.1]),
        write_run(tmp_path / "b" / "seed_1", start, [0.2, 0.2, 0.2]),
    ]
    b.append(write_run(tmp_path / "b" / "seed_9", start, [5.0, 5.0, 5.0]))
    runs, others = ({run_dir: saved_records(RunStore(run_dir)) for run_dir in setting} for setting in (a, b))
    lines = script.versus_lines(runs, others, "answer_loglik", 2000)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert [row[:2] for row in rows] == [["seed_0", "3"], ["seed_1", "3"], ["pooled, 2 seeds", "3"]], (
        "seed_9 is unpaired"
    )
    assert rows[0][2].startswith("+0.300 [") and rows[1][2].startswith("+0.600 [")
    assert rows[2][2].startswith("+0.450 [") and rows[2][2].endswith("*")
    assert rows[2][4] == "+0.000 [+0.000, +0.000]", "no_update moved in neither setting"
    one_seed = script.versus_lines(dict([next(iter(runs.items()))]), others, "answer_loglik", 2000)
    assert len(one_seed) == 1 and one_seed[0].startswith("| seed_0 |"), "one seed: no pooled line repeating it"


def test_versus_refuses_unpaired_or_unequal_runs(tmp_path):
    """No seed in both settings, or a pair that ended at different rounds: one line, exit 2."""
    start, gain = [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6]
    mine = write_run(tmp_path / "a" / "seed_0", start, gain)
    unpaired = write_run(tmp_path / "b" / "seed_1", start, gain)
    longer = write_run(tmp_path / "c" / "seed_0", start, gain, rounds=2)
    for other, message in (
        (unpaired, "no finished run's name is in both"),
        (longer, "ended at different rounds: seed_0 round 1, seed_0 round 2"),
    ):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), str(mine), "--versus", str(other)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
