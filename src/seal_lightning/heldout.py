"""fit's held-out evaluation: did SEAL work on items no round trained or selected on?

Before round 1 and after every round, the round's policy is scored on the held-out items
(`data.heldout`) under the domain's held-out rows (knowledge: `passage_selfedit`, the SEAL row: the
policy writes a self-edit, learns it and answers without the passage; `no_update`; `passage`, for
the starting model only; and the diagnostic `policy_selfedit_base`: the trained policy writes, the
*starting* model learns and answers). Each round is compared with round 0 item by item, with a 95%
paired bootstrap interval: a gain over a baseline that drifts is not progress, a gain over the
starting model is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.config import HeldOutConfig
from seal_lightning.configure import to_flat_dict
from seal_lightning.domains import Condition, Domain, Item
from seal_lightning.evaluation import EvaluationSettings, Evaluator, Roles, evaluation_id
from seal_lightning.runtime import Runtime
from seal_lightning.stats import PairedDifference, paired_bootstrap
from seal_lightning.store import RunStore

if TYPE_CHECKING:
    from seal_lightning.outer import ReSTEM


class HeldOutEvaluation(ReSTEMCallback):
    """Scores round 0 (the starting model) when fit starts and each round's policy when the round ends."""

    def __init__(self, runtime: Runtime, config: HeldOutConfig, items: list[Item]) -> None:
        self.runtime = runtime
        self.config = config
        self.items = items
        self.domain = runtime.domain
        self.store = runtime.store
        self.tracker = runtime.tracker
        self.records: dict[int, list[dict]] = {}

    def on_restem_start(self, restem: ReSTEM) -> None:
        self.evaluate(0)

    def after_round(self, restem: ReSTEM, round_index: int, policy_path: str) -> None:
        self.evaluate(round_index)

    def conditions(self, round_index: int) -> dict[str, Condition]:
        available = self.domain.conditions()
        rows = self.domain.heldout_rows.values()
        names = [row.start for row in rows] if round_index == 0 else [row.trained for row in rows if row.trained]
        return {name: available[name] for name in dict.fromkeys(names)}

    def evaluate(self, round_index: int) -> None:
        shared = self.runtime.config
        paths = {"model": self.runtime.model_path(0)}
        if round_index > 0:
            paths["policy"] = self.runtime.model_path(round_index)
        key = evaluation_id(to_flat_dict(shared), "heldout", list(paths.values()))
        settings = EvaluationSettings(
            metrics=list(self.config.metrics),
            seed=shared.seed,
            selfedits=self.config.selfedits,
            chunk=shared.inner.max_adapters if shared.inner.batched else 1,
        )
        evaluator = Evaluator(self.runtime, settings, f"heldout/round_{round_index}-{key}")
        roles = Roles(self.runtime, paths)
        conditions = self.conditions(round_index)
        fresh = evaluator.pending(conditions, self.items) > 0
        if fresh:
            print(f"held-out round {round_index}: {len(self.items)} {self.domain.name} items no round trains on")
        self.records[round_index] = evaluator.run(conditions, self.items, roles)
        if fresh:  # a resumed fit logs nothing twice
            self.track(round_index)

    def table(self) -> str:
        return format_heldout(self.domain, self.records, self.config.metrics, self.config.resamples)

    def track(self, round_index: int) -> None:
        """The round's held-out means and changes from round 0 as MLflow metrics (step: the round), the table
        so far as an artifact, and one line on the terminal."""
        metrics: dict[str, float] = {}
        for metric in self.config.metrics:
            for label, values in row_values(self.domain, self.records.get(round_index, []), round_index, metric):
                metrics[f"heldout.{label}.{metric}"] = _mean(list(values.values()))
            for label, change in changes(self.domain, self.records, round_index, metric, self.config.resamples):
                name = f"heldout.{label}.{metric}.change"
                metrics |= {name: change.mean, f"{name}_low": change.low, f"{name}_high": change.high}
        self.tracker.log_metrics(metrics, step=round_index)
        self.tracker.log_artifact(self.store.write_text("heldout/table.txt", self.table() + "\n"), "heldout")
        headline, metric = self.domain.headline, self.config.metrics[0]
        line = f"held-out round {round_index}: {headline} {metric} {metrics[f'heldout.{headline}.{metric}']:.3f}"
        if round_index > 0:
            line += f", change from round 0 {format_change(metrics, f'heldout.{headline}.{metric}.change')}"
        print(line)


def latest_evaluations(store: RunStore) -> dict[int, str]:
    """Each round's held-out evaluation folder in a run directory, relative to it (of several evaluations of
    a round, under other settings, the latest)."""
    latest: dict[int, tuple[int, str]] = {}
    for results in store.root.glob("heldout/round_*-*/results*.jsonl"):  # one file per rank under several
        round_index = int(results.parent.name.split("-")[0].removeprefix("round_"))
        stamp = (results.stat().st_mtime_ns, str(results.parent.relative_to(store.root)))
        latest[round_index] = max(latest.get(round_index, stamp), stamp)
    return {r: folder for r, (_, folder) in sorted(latest.items())}


def saved_records(store: RunStore) -> dict[int, list[dict]]:
    """The held-out records a run directory holds, by round (`latest_evaluations`)."""
    return {r: store.read_jsonl(f"{folder}/results.jsonl") for r, folder in latest_evaluations(store).items()}


def row_values(
    domain: Domain, records: list[dict], round_index: int, metric: str
) -> list[tuple[str, dict[str, float]]]:
    """(row label, {item: value}) for the held-out rows measured at this round."""
    by_condition: dict[str, dict[str, float]] = {}
    for record in records:
        by_condition.setdefault(record["condition"], {})[record["item"]] = record[metric]
    found = []
    for label, row in domain.heldout_rows.items():
        condition = row.start if round_index == 0 else row.trained
        if condition is not None and condition in by_condition:
            found.append((label, by_condition[condition]))
    rows = dict(found)
    if domain.headline in rows and domain.unadapted in rows:
        # What learning the self-edit adds, apart from what the M-steps did to answering without one.
        headline, unadapted = rows[domain.headline], rows[domain.unadapted]
        adds = {key: headline[key] - unadapted[key] for key in headline if key in unadapted}
        found.append((adaptation_label(domain), adds))
    return found


def adaptation_label(domain: Domain) -> str:
    return f"{domain.headline}_minus_{domain.unadapted}"


def paired_items(
    domain: Domain, records: dict[int, list[dict]], round_index: int, metric: str
) -> list[tuple[str, dict[str, tuple[float, float]]]]:
    """Each trained row at this round with the same row at round 0: {item: (after, before)} over the items
    both scored."""
    if round_index == 0 or 0 not in records or round_index not in records:
        return []
    start = dict(row_values(domain, records[0], 0, metric))
    found = []
    for label, after in row_values(domain, records[round_index], round_index, metric):
        before = start.get(label, {})
        pairs = {key: (value, before[key]) for key, value in after.items() if key in before}
        if pairs:
            found.append((label, pairs))
    return found


def changes(
    domain: Domain, records: dict[int, list[dict]], round_index: int, metric: str, resamples: int
) -> list[tuple[str, PairedDifference]]:
    """Each trained row at this round minus the same row at round 0, paired by item."""
    return [
        (
            label,
            paired_bootstrap(
                [after for after, _ in pairs.values()], [before for _, before in pairs.values()], resamples
            ),
        )
        for label, pairs in paired_items(domain, records, round_index, metric)
    ]


def format_heldout(domain: Domain, records: dict[int, list[dict]], metrics: list[str], resamples: int) -> str:
    """Per metric: each row's mean per round, then its change from round 0 with the paired interval; last,
    the verdict on the headline row's first metric."""
    rounds = sorted(records)
    items = len({r["item"] for r in records.get(0, [])})
    labels = [*domain.heldout_rows, adaptation_label(domain)]
    width = max(len(label) for label in labels)
    lines = []
    for metric in metrics:
        lines.append(f"held-out {metric}: mean over {items} items no round trained or selected on")
        lines.append(f"{'row':<{width}}" + "".join(f"{f'round {r}':>34}" for r in rounds))
        per_round = {r: dict(row_values(domain, records[r], r, metric)) for r in rounds}
        per_change = {r: dict(changes(domain, records, r, metric, resamples)) for r in rounds}
        for label in labels:
            cells = []
            for r in rounds:
                value = per_round[r].get(label)
                text = "" if value is None else f"{_mean(list(value.values())):.3f}"
                if label in per_change[r]:
                    text += f" ({per_change[r][label]})"
                cells.append(f"{text:>34}")
            lines.append(f"{label:<{width}}" + "".join(cells).rstrip())
    lines.append(f"(change from round 0) paired by item, 95% percentile bootstrap interval over {resamples} resamples")
    last = rounds[-1]
    final = dict(changes(domain, records, last, metrics[0], resamples))
    headline, adds = final.get(domain.headline), final.get(adaptation_label(domain))
    if headline is not None:
        lines.append(
            f"SEAL on held-out items after round {last} ({domain.headline}, {metrics[0]}): {headline} vs round 0, "
            f"{verdict(headline)}"
        )
    if headline is not None and adds is not None:
        # The headline nets two things: keep the part that learning self-edits adds from passing for all of it.
        lines.append(
            f"of which learning the self-edits, apart from answering without one ({adaptation_label(domain)}): "
            f"{adds}, {verdict(adds)}"
        )
    return "\n".join(lines)


def verdict(change: PairedDifference) -> str:
    return "above zero" if change.low > 0 else "below zero" if change.high < 0 else "not different from 0"


def format_change(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:+.3f} [{metrics[f'{name}_low']:+.3f}, {metrics[f'{name}_high']:+.3f}]"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
