"""Keep what experiments/heldout_table.py reads from fit run directories, in git: each round's latest held-out
results and each round's summary.json, no weights (a few hundred KB per run, against gigabytes).

`runs/` is not tracked, so a run's per-passage results die with the machine, and with them the chance to
pool its seed with seeds run later. Kept records are run directories that heldout_table.py reads like the
real ones, so a new session runs only the seeds it adds:

    python experiments/keep_records.py runs/heldout_seeds/seed_2     # -> experiments/records/heldout_seeds/seed_2
    python experiments/heldout_table.py --pooled experiments/records/heldout_seeds/seed_*

A run directory must lie under `runs/` (its path there is its path under experiments/records/) and must have
finished a held-out evaluation after round 0. Keeping a run again replaces what was kept.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from seal_lightning.heldout import latest_evaluations
from seal_lightning.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"
RECORDS = ROOT / "experiments" / "records"


def keep(run_dir: Path, records: Path = RECORDS, runs: Path = RUNS) -> Path:
    """Copy the run's latest held-out evaluation of every round and its rounds' summaries to its place under
    `records`; return that place."""
    try:
        relative = run_dir.resolve().relative_to(runs.resolve())
    except ValueError:
        raise ValueError(f"{run_dir} is not under {runs}: its place in {records} is its path there") from None
    evaluations = latest_evaluations(RunStore(run_dir)) if run_dir.is_dir() else {}
    if not any(round_index > 0 for round_index in evaluations):
        raise ValueError(f"{run_dir} has no held-out evaluation after a round: nothing to keep")
    kept = records / relative
    shutil.rmtree(kept, ignore_errors=True)
    for folder in evaluations.values():
        shutil.copytree(run_dir / folder, kept / folder, ignore=shutil.ignore_patterns("*.tmp"))
    for summary in run_dir.glob("round_*/summary.json"):
        target = kept / summary.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(summary, target)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run_dir in args.runs:
        try:
            print(keep(run_dir))
        except ValueError as exc:
            parser.error(str(exc))


if __name__ == "__main__":
    main()
