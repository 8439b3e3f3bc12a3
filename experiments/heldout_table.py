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
`--versus DIR...` compares two settings run on the same seeds: a second table of each row's change under
the first setting's runs minus its change under the second's, paired by run directory name (the seed) and
passage, one line per seed and a pooled line (the same crossed bootstrap).

    python experiments/heldout_table.py runs/demo_seeds/* --versus runs/demo_seeds_paper_mstep/*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seal_lightning.configure import load_config
from seal_lightning.heldout import adaptation_label, changes, paired_items, row_values, saved_records
from seal_lightning.knowledge.domain import KnowledgeDomain
from seal_lightning.stats import PairedDifference, crossed_bootstrap, paired_bootstrap
from seal_lightning.store import RunStore

ROWS = (KnowledgeDomain.headline, "policy_selfedit_base", KnowledgeDomain.unadapted, adaptation_label(KnowledgeDomain))


def run_line(run_dir: Path, records: dict[int, list[dict]], note: str, metric: str, resamples: int) -> str | None:
    if not finished(records, metric):
        return None
    rounds = [r for r in records if r > 0]
    last = max(rounds)
    found = dict(changes(KnowledgeDomain, records, last, metric, resamples))
    start = dict(row_values(KnowledgeDomain, records[0], 0, metric))[KnowledgeDomain.headline]
    minutes = sum(json.loads((run_dir / f"round_{r}" / "summary.json").read_text())["wall_time_s"] for r in rounds) / 60
    cells = [cell(found.get(row)) for row in ROWS]
    return (
        f"| {run_dir.name} | {note} | {len(start)} | {last} | {sum(start.values()) / len(start):.3f} | "
        + " | ".join(cells)
        + f" | {minutes:.0f} |"
    )


def finished(records: dict[int, list[dict]], metric: str) -> bool:
    """Whether a run's last round finished its held-out evaluation: its SEAL row pairs with round 0's."""
    if 0 not in records or max(records) == 0:
        return False
    return any(
        row == KnowledgeDomain.headline for row, _ in paired_items(KnowledgeDomain, records, max(records), metric)
    )


def cell(change: PairedDifference | None) -> str:
    return "" if change is None else f"{change}{' *' if change.excludes_zero else ''}"


def item_changes(records: dict[int, list[dict]], metric: str) -> dict[str, dict[str, float]]:
    """Each row's change from round 0 after the run's last round, by held-out item."""
    pairs = paired_items(KnowledgeDomain, records, max(records), metric)
    return {row: {item: after - before for item, (after, before) in by_item.items()} for row, by_item in pairs}


def same_last_round(runs: dict[Path, dict[int, list[dict]]], what: str) -> None:
    """Runs compared or pooled must have ended at the same round: otherwise two settings are mixed."""
    lasts = {run_dir: max(records) for run_dir, records in runs.items()}
    if len(set(lasts.values())) > 1:
        ended = ", ".join(f"{run_dir.name} round {last}" for run_dir, last in lasts.items())
        raise ValueError(f"{what}, but these ended at different rounds: {ended}")


def pooled_cells(per_run: list[dict[str, dict[str, float]]], resamples: int) -> tuple[list[str], int]:
    """Each row's mean over runs and the passages every run scored (by row, by passage), with its crossed
    bootstrap interval, and the number of passages pooled."""
    cells, passages = [], 0
    for row in ROWS:
        shared = sorted(set.intersection(*(set(of_run.get(row, {})) for of_run in per_run)))
        if not shared:
            cells.append("")
            continue
        passages = max(passages, len(shared))
        values = np.array([[of_run[row][item] for item in shared] for of_run in per_run])
        cells.append(cell(crossed_bootstrap(values, resamples)))
    return cells, passages


def pooled_line(runs: dict[Path, dict[int, list[dict]]], metric: str, resamples: int) -> str:
    """Each row's change pooled over finished runs of one setting (their held-out records by run directory),
    on the passages they all scored."""
    same_last_round(runs, "--pooled pools runs of one setting")
    cells, passages = pooled_cells([item_changes(records, metric) for records in runs.values()], resamples)
    return f"| pooled, {len(runs)} runs | seeds and passages resampled | {passages} | | | " + " | ".join(cells) + " | |"


def versus_lines(
    runs: dict[Path, dict[int, list[dict]]], others: dict[Path, dict[int, list[dict]]], metric: str, resamples: int
) -> list[str]:
    """Each row's change in `runs` minus its change in `others`, paired by run directory name (the seed)
    and by passage: one line per seed, then the seeds pooled (when there are several)."""
    by_name = {run_dir.name: (run_dir, records) for run_dir, records in others.items()}
    pairs = [(run_dir, records, *by_name[run_dir.name]) for run_dir, records in runs.items() if run_dir.name in by_name]
    if not pairs:
        raise ValueError("--versus pairs runs by directory name (the seed), but no finished run's name is in both")
    same_last_round(
        {path: records for run_dir, a, other_dir, b in pairs for path, records in ((run_dir, a), (other_dir, b))},
        "--versus compares two settings after the same round",
    )
    lines, differences = [], []
    for run_dir, records, _, other_records in pairs:
        mine, theirs = item_changes(records, metric), item_changes(other_records, metric)
        by_row = {
            row: {item: change - theirs[row][item] for item, change in mine[row].items() if item in theirs[row]}
            for row in ROWS
            if row in mine and row in theirs
        }
        differences.append(by_row)
        cells = [
            cell(paired_bootstrap([mine[row][i] for i in items], [theirs[row][i] for i in items], resamples))
            if (items := sorted(by_row.get(row, {})))
            else ""
            for row in ROWS
        ]
        passages = max((len(of_row) for of_row in by_row.values()), default=0)
        lines.append(f"| {run_dir.name} | {passages} | " + " | ".join(cells) + " |")
    if len(pairs) > 1:  # one seed's line is already the whole comparison
        cells, passages = pooled_cells(differences, resamples)
        lines.append(f"| pooled, {len(pairs)} seeds | {passages} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--notes", type=Path)
    parser.add_argument("--pooled", action="store_true", help="add a line that pools the runs (seeds of one setting)")
    parser.add_argument("--versus", nargs="+", type=Path, help="another setting's runs, paired by seed")
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
    unfinished, done = [], {}
    for run_dir in args.runs:
        records = saved_records(RunStore(run_dir))
        line = run_line(run_dir, records, notes.get(run_dir.name, ""), args.metric, args.resamples)
        if line is None:
            unfinished.append(run_dir.name)
        else:
            done[run_dir] = records
            print(line)
    if args.pooled and len(done) > 1:
        try:
            print(pooled_line(done, args.metric, args.resamples))
        except ValueError as exc:
            parser.error(str(exc))
    print(
        f"\nChanges: last round minus round 0, paired by passage, 95% percentile bootstrap interval over "
        f"{args.resamples} resamples; * marks an interval that excludes zero."
    )
    if unfinished:
        print(f"\nNo held-out result yet (the run did not finish a round and its evaluation): {', '.join(unfinished)}.")
    if args.versus:
        others = {
            run_dir: records
            for run_dir in args.versus
            if finished(records := saved_records(RunStore(run_dir)), args.metric)
        }
        try:
            lines = versus_lines(done, others, args.metric, args.resamples)
        except ValueError as exc:
            parser.error(str(exc))
        print(
            f"\n{args.runs[0].parent.name} minus {args.versus[0].parent.name}: each row's change from round 0 "
            "minus the same row's change in the run of the same name, paired by passage; a pooled line "
            "resamples the seeds and, apart, the passages.\n"
        )
        print("| seed | held-out passages | " + " | ".join(row.replace("_minus_", " - ") for row in ROWS) + " |")
        print("|---|---|" + "---|" * len(ROWS))
        print("\n".join(lines))


if __name__ == "__main__":
    main()
