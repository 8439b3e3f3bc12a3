"""Keep a fit run directory's results in git, without its weights: each round's latest held-out evaluation
and the files of each round's own folder (summary, self-edits, scores, baselines, phases): about half a
megabyte per run, against gigabytes with the weights.

`runs/` is not tracked, so a run's per-passage results die with the machine, and with them the chance to
pool its seed with seeds run later. A kept run reads in experiments/heldout_table.py like the real one, and
it holds what experiments/share_estep.sh copies (round 0's evaluation, round 1's E-step), so a new session
runs only what it adds:

    python experiments/keep_records.py runs/heldout_seeds/seed_2     # -> experiments/records/heldout_seeds/seed_2
    python experiments/heldout_table.py --pooled experiments/records/heldout_seeds/seed_*

`--where` prints the places without keeping anything, so the experiment scripts find a kept run (theirs or
another session's) from this one mapping.

A run directory must lie under `runs/` (its path there is its path under experiments/records/) and must have
finished a held-out evaluation after round 0. Keeping a run again replaces what was kept.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from seal_lightning.heldout import latest_evaluations
from seal_lightning.store import PARTIAL, RunStore

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
RECORDS = ROOT / "experiments" / "records"


def kept_place(run_dir: Path, records: Path = RECORDS, runs: Path = RUNS) -> Path:
    """Where a run under `runs` is kept: its path under `records`. The run need not exist."""
    try:
        return records / run_dir.resolve().relative_to(runs.resolve())
    except ValueError:
        raise ValueError(f"{run_dir} is not under {runs}: its place in {records} is its path there") from None


def keep(run_dir: Path, records: Path = RECORDS, runs: Path = RUNS) -> Path:
    """Copy the run's latest held-out evaluation of every round and the files of its round folders (not
    their adapter and policy folders, nor writes a killed process left unfinished) to its place under
    `records`; return that place."""
    kept = kept_place(run_dir, records, runs)
    evaluations = latest_evaluations(RunStore(run_dir)) if run_dir.is_dir() else {}
    if not any(round_index > 0 for round_index in evaluations):
        raise ValueError(f"{run_dir} has no held-out evaluation after a round: nothing to keep")
    shutil.rmtree(kept, ignore_errors=True)
    for folder in evaluations.values():
        shutil.copytree(run_dir / folder, kept / folder, ignore=shutil.ignore_patterns(f"{PARTIAL}*"))
    for result in run_dir.glob("round_*/*"):
        if result.is_file() and not result.name.startswith(PARTIAL):
            target = kept / result.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(result, target)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--where", action="store_true", help="print each run's place, keep nothing")
    args = parser.parse_args()
    for run_dir in args.runs:
        try:
            print(kept_place(run_dir) if args.where else keep(run_dir))
        except ValueError as exc:
            parser.error(str(exc))


if __name__ == "__main__":
    main()
