"""experiments/keep_records.py: a kept run reads in experiments/heldout_table.py as the run itself did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_heldout_table import load_script, write_run

from seal_lightning.heldout import saved_records
from seal_lightning.store import PARTIAL, RunStore

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "keep_records.py"


def test_kept_run_gives_the_same_line_without_its_weights(tmp_path):
    runs, records = tmp_path / "runs", tmp_path / "records"
    run_dir = write_run(runs / "heldout_seeds" / "seed_0", [-6.0, -7.0, -5.0], [0.2, 0.4, 0.6], rounds=2)
    (run_dir / "round_2" / "policy").mkdir()
    (run_dir / "round_2" / "policy" / "model.safetensors").write_bytes(b"\0" * 1024)
    (run_dir / "round_1" / "selfedits.json").write_text("{}")  # what experiments/share_estep.sh copies
    # Writes a killed process left unfinished (RunStore removes them when a run is next held), not results.
    (run_dir / "round_2" / f"{PARTIAL}scores.jsonl.x1").write_text('{"item": "a"}\n')
    (run_dir / "heldout" / "round_2-0123456789" / f"{PARTIAL}results.jsonl.x2").write_text("{}\n")
    # An older evaluation of round 2 under other settings: the latest one is what counts, and what is kept.
    older = run_dir / "heldout" / "round_2-older00000"
    older.mkdir()
    (older / "results.jsonl").write_text('{"condition": "policy_selfedit", "item": "a", "answer_loglik": 9.0}\n')
    os.utime(older / "results.jsonl", (0, 0))

    kept = load_script(SCRIPT).keep(run_dir, records, runs)

    assert kept == records / "heldout_seeds" / "seed_0"
    assert not list(kept.rglob("*.safetensors")) and not (kept / "heldout" / "round_2-older00000").exists()
    assert not list(kept.rglob(f"{PARTIAL}*"))
    assert sorted(str(p.relative_to(kept)) for p in kept.glob("round_*/*")) == [
        "round_1/selfedits.json",
        "round_1/summary.json",
        "round_2/summary.json",
    ]
    original, copy = saved_records(RunStore(run_dir)), saved_records(RunStore(kept))
    assert copy == original
    table = load_script()
    assert table.run_line(kept, copy, "", "answer_loglik", 500) == table.run_line(
        run_dir, original, "", "answer_loglik", 500
    ).replace("seed_0", kept.name)


def test_refuses_unfinished_runs(tmp_path):
    """A run without an evaluation after a round holds nothing heldout_table.py could use."""
    unfinished = tmp_path / "runs" / "seed_1"
    unfinished.mkdir(parents=True)
    with pytest.raises(ValueError, match="no held-out evaluation after a round"):
        load_script(SCRIPT).keep(unfinished, tmp_path / "records", tmp_path / "runs")


def test_refuses_runs_outside_runs_in_one_line(tmp_path):
    """A directory outside runs/ has no place under experiments/records/: one line, exit 2, nothing kept."""
    outside = write_run(tmp_path / "elsewhere" / "seed_0", [-6.0, -7.0, -5.0], [0.1, 0.1, 0.1])
    result = subprocess.run([sys.executable, str(SCRIPT), str(outside)], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "is not under" in result.stderr and "Traceback" not in result.stderr


def test_where_names_the_place_without_keeping(tmp_path):
    """The experiment scripts find kept runs, theirs or another session's, from this one mapping."""
    keep_records = load_script(SCRIPT)
    place = keep_records.kept_place(
        tmp_path / "runs" / "heldout_mstep" / "paper", tmp_path / "records", tmp_path / "runs"
    )
    assert place == tmp_path / "records" / "heldout_mstep" / "paper"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--where", "runs/demo_seeds/seed_9"],
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()) == keep_records.RECORDS / "demo_seeds" / "seed_9"
    assert not (keep_records.RECORDS / "demo_seeds" / "seed_9").exists()
