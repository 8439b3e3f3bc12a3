"""A markdown table of fit runs' held-out results: one line per run directory, the change of each held-out
row from round 0 after the last round, paired by passage with its 95% bootstrap interval.

    python experiments/heldout_table.py runs/heldout_search/*            # every run of the search
    python experiments/heldout_table.py --notes experiments/notes.tsv DIR...
    python experiments/heldout_table.py --pooled runs/demo_seeds/*         # one setting, several seeds

`--notes` names a tab-separated file of `run name<TAB>what the run changed`; runs without a note show
their directory name only. `--pooled`, for runs of one setting on the same held-out passages (seeds),
adds a line that pools them: each row's mean change over runs and passages, with a bootstrap interval that
resamples the runs and, apart, the passages (`stats.crossed_bootstrap`), so it speaks for other seeds as
well as other passages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seal_lightning.configure import load_config
from seal_lightning.heldout import adaptation_label, changes, paired_items, row_values, saved_records
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.stats import PairedDifference, crossed_bootstrap
from seal_lightning.store import RunStore

ROWS = (KnowledgeDomain.headline, "policy_selfedit_base", KnowledgeDomain.unadapted, adaptation_label(KnowledgeDomain))


def run_line(run_dir: Path, records: dict[int, list[dict]], note: str, metric: str, resamples: int) -> str | None:
    rounds = [r for r in records if r > 0]
    if 0 not in records or not rounds:
        return None
    last = max(rounds)
    found = dict(changes(KnowledgeDomain, records, last, metric, resamples))
    if KnowledgeDomain.headline not in found:  # the last round's held-out evaluation did not finish
        return None
    start = dict(row_values(KnowledgeDomain, records[0], 0, metric))[KnowledgeDomain.headline]
    minutes = sum(json.loads((run_dir / f"round_{r}" / "summary.json").read_text())["wall_time_s"] for r in rounds) / 60
    cells = [cell(found.get(row)) for row in ROWS]
    return (
        f"| {run_dir.name} | {note} | {len(start)} | {last} | {sum(start.values()) / len(start):.3f} | "
        + " | ".join(cells)
        + f" | {minutes:.0f} |"
    )


def cell(change: PairedDifference | None) -> str:
    return "" if change is None else f"{change}{' *' if change.excludes_zero else ''}"


def item_changes(records: dict[int, list[dict]], metric: str) -> dict[str, dict[str, float]]:
    """Each row's change from round 0 after the run's last round, by held-out item."""
    pairs = paired_items(KnowledgeDomain, records, max(records), metric)
    return {row: {item: after - before for item, (after, before) in by_item.items()} for row, by_item in pairs}


def pooled_line(runs: dict[Path, dict[int, list[dict]]], metric: str, resamples: int) -> str:
    """Each row's change pooled over finished runs of one setting (their held-out records by run directory),
    on the passages they all scored."""
    lasts = {run_dir: max(records) for run_dir, records in runs.items()}
    if len(set(lasts.values())) > 1:
        ended = ", ".join(f"{run_dir.name} round {last}" for run_dir, last in lasts.items())
        raise ValueError(f"--pooled pools runs of one setting, but these ended at different rounds: {ended}")
    per_run = [item_changes(records, metric) for records in runs.values()]
    cells, passages = [], 0
    for row in ROWS:
        shared = sorted(set.intersection(*(set(changes_of_run.get(row, {})) for changes_of_run in per_run)))
        if not shared:
            cells.append("")
            continue
        passages = max(passages, len(shared))
        values = np.array([[changes_of_run[row][item] for item in shared] for changes_of_run in per_run])
        cells.append(cell(crossed_bootstrap(values, resamples)))
    return f"| pooled, {len(runs)} runs | seeds and passages resampled | {passages} | | | " + " | ".join(cells) + " | |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--notes", type=Path)
    parser.add_argument("--pooled", action="store_true", help="add a line that pools the runs (seeds of one setting)")
    parser.add_argument("--metric", default="answer_loglik")
    parser.add_argument("--resamples", type=int, default=load_config().heldout.resamples)
    args = parser.parse_args()
    notes = {}
    if args.notes:
        for line in args.notes.read_text().splitlines():
            if line.strip():
                name, _, note = line.partition("\t")
                notes[name] = note
    print(
        f"| run | what it changes | held-out passages | rounds | round 0 SEAL row ({args.metric}) "
        "| passage_selfedit change | policy_selfedit_base change | no_update change "
        "| passage_selfedit - no_update change | training min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    unfinished, finished = [], {}
    for run_dir in args.runs:
        records = saved_records(RunStore(run_dir))
        line = run_line(run_dir, records, notes.get(run_dir.name, ""), args.metric, args.resamples)
        if line is None:
            unfinished.append(run_dir.name)
        else:
            finished[run_dir] = records
            print(line)
    if args.pooled and len(finished) > 1:
        try:
            print(pooled_line(finished, args.metric, args.resamples))
        except ValueError as exc:
            parser.error(str(exc))
    print(
        f"\nChanges: last round minus round 0, paired by passage, 95% percentile bootstrap interval over "
        f"{args.resamples} resamples; * marks an interval that excludes zero."
    )
    if unfinished:
        print(f"\nNo held-out result yet (the run did not finish a round and its evaluation): {', '.join(unfinished)}.")


if __name__ == "__main__":
    main()
