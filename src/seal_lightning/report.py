"""Reading evaluation records back: the table (mean ± standard error per row), the per-item view, each row
against the row above it, and the paired comparison of two evaluations (`evaluate --compare A B`)."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from seal_lightning.errors import SealError
from seal_lightning.stats import mean_stderr, paired_bootstrap
from seal_lightning.store import RunStore


def summarize(records: list[dict], metrics: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard error over items, per condition and metric, in the order conditions appear."""
    by_condition: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for metric in metrics:
            by_condition[record["condition"]][metric].append(record[metric])
    return {
        condition: {metric: mean_stderr(values) for metric, values in row.items()}
        for condition, row in by_condition.items()
    }


def format_table(table: dict[str, dict[str, tuple[float, float]]], metrics: list[str]) -> str:
    header = f"{'condition':<22}" + "".join(f"{metric:>22}" for metric in metrics)
    rows = [
        f"{condition:<22}" + "".join(f"{f'{row[m][0]:.3f} ± {row[m][1]:.3f}':>22}" for m in metrics)
        for condition, row in table.items()
    ]
    return "\n".join([header, *rows])


def format_per_item(records: list[dict], metrics: list[str]) -> str:
    """One line per item, one column per condition, under the first metric."""
    metric = metrics[0]
    conditions = list(dict.fromkeys(r["condition"] for r in records))
    titles = list(dict.fromkeys(r["title"] for r in records))
    value = {(r["title"], r["condition"]): r[metric] for r in records}
    width = {c: max(10, len(c)) + 2 for c in conditions}  # a column never narrower than its name
    header = f"{metric + ' per item':<24}" + "".join(f"{c:>{width[c]}}" for c in conditions)
    rows = [
        f"{title[:24]:<24}"
        + "".join(f"{value[(title, c)]:>{width[c]}.3f}" if (title, c) in value else " " * width[c] for c in conditions)
        for title in titles
    ]
    return "\n".join([header, *rows])


def results_file(path: str) -> Path:
    """The results.jsonl of an evaluation: given as the file, its folder, or a run directory holding one."""
    target = Path(path)
    if target.is_file():
        return target
    if (target / "results.jsonl").is_file():
        return target / "results.jsonl"
    found = sorted(target.glob("evaluate/*/results.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SealError(f"{path}: no evaluation results (results.jsonl, or a run directory with evaluate/*/)")
    names = ", ".join(str(f.parent) for f in found)
    raise SealError(f"{path} holds {len(found)} evaluations; name one folder: {names}")


def load_results(path: str) -> list[dict]:
    """An evaluation's records; a file that holds none, or records of another kind, is refused by name."""
    file = results_file(path)
    records = RunStore(file.parent).read_jsonl(file.name)
    if not records:
        raise SealError(f"{file} holds no evaluation results (JSON lines written by evaluate)")
    if not all(isinstance(r, dict) and {"condition", "item"} <= r.keys() for r in records):
        raise SealError(f"{file} holds lines that are not evaluation results (each names its condition and item)")
    return records


def compare_results(first: list[dict], second: list[dict], resamples: int) -> str:
    """Per row and metric both evaluations hold: each mean, and the second minus the first, paired by item,
    with its 95% bootstrap interval."""
    groups = {
        condition: pairs
        for condition in dict.fromkeys(r["condition"] for r in second)
        if (pairs := _paired(first, condition, second, condition))
    }
    if not groups:
        raise SealError("the two evaluations share no (row, item): compare evaluations of the same items")
    first_pair = next(iter(groups.values()))[0]
    metrics = [m for m in first_pair[1] if isinstance(first_pair[1][m], float) and m in first_pair[0]]
    return _format_differences(groups, metrics, ("condition", "A", "B", "B - A [95% interval]"), resamples)


def format_steps(records: list[dict], metrics: list[str], resamples: int) -> str:
    """Each row of one evaluation minus the row above it, paired by item: the table's steps (passage over no
    update, a self-edit over the passage alone, the trained policy's self-edit over the base model's), each
    with its 95% interval."""
    conditions = list(dict.fromkeys(r["condition"] for r in records))
    groups = {
        f"{below} - {above}": pairs
        for above, below in pairwise(conditions)
        if (pairs := _paired(records, above, records, below))
    }
    if not groups:
        return ""
    return _format_differences(
        groups, metrics, ("row - row above", "above", "row", "difference [95% interval]"), resamples
    )


def _paired(before: list[dict], before_row: str, after: list[dict], after_row: str) -> list[tuple[dict, dict]]:
    """(before, after) records of the items both rows hold, in the order of `after`."""
    index = {r["item"]: r for r in before if r["condition"] == before_row}
    return [(index[r["item"]], r) for r in after if r["condition"] == after_row and r["item"] in index]


def _format_differences(
    groups: dict[str, list[tuple[dict, dict]]], metrics: list[str], names: tuple[str, str, str, str], resamples: int
) -> str:
    """Per group of (before, after) record pairs and metric: both means and the paired difference with its 95%
    interval; the first column as wide as its longest label."""
    width = max(22, *(len(label) + 2 for label in groups))
    label_name, before_name, after_name, difference_name = names
    lines = [f"{label_name:<{width}}{'metric':<16}{before_name:>9}{after_name:>9}{difference_name:>28}{'':>2}{'n':>5}"]
    for label, pairs in groups.items():
        for metric in metrics:
            before = [a[metric] for a, _ in pairs]
            after = [b[metric] for _, b in pairs]
            difference = paired_bootstrap(after, before, resamples)
            lines.append(
                f"{label:<{width}}{metric:<16}{sum(before) / len(before):>9.3f}{sum(after) / len(after):>9.3f}"
                f"{difference!s:>28}{'*' if difference.excludes_zero else '':>2}{len(pairs):>5}"
            )
    lines.append(f"paired by item; percentile bootstrap over {resamples} resamples; * the interval excludes 0")
    return "\n".join(lines)
