"""The paper's tables: each row (condition) updates the model in its own way, then scores it.

Knowledge incorporation (accuracy without the passage in context after an update):
- no_update: the model as it is;
- passage: an inner-loop update on the passage alone;
- passage_selfedit: the passage plus a self-edit sampled from the model being evaluated;
- passage_external: the passage plus the first self-edit given for it in `evaluate.external_selfedits`.
ARC (is the test output right after test-time training):
- icl: in-context learning, no update;
- ttt_standard: test-time training with the fixed configuration `arc.standard`;
- ttt_selfedit: test-time training as the evaluated model's own self-edit says (no RL);
- seal: the same with the trained policy `evaluate.policy`, sampling and adapted;
- oracle: the best of the configurations in `arc.oracle`, per task and metric.
Every row is scored with every metric in `evaluate.metrics`. Per-item results are appended as they
finish, so an interrupted evaluation resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict

from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SealConfig, to_flat_dict
from seal_lightning.data.knowledge import Passage, load_knowledge_file
from seal_lightning.domains import Condition, Domain, Item
from seal_lightning.errors import DataError
from seal_lightning.inner import adapted
from seal_lightning.models import load_model, resolve_model_path
from seal_lightning.rewards import score_questions
from seal_lightning.sampling import Sampler, build_sampler
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker


def evaluation_id(config: SealConfig) -> str:
    """Results of different models, data or settings go to different folders of the run directory."""
    sections = ("domain", "model", "data", "inner", "reward", "evaluate", "sampler", "seed", "arc")
    relevant = {k: v for k, v in to_flat_dict(config).items() if k.split(".")[0] in sections}
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def external_selfedits(path: str) -> dict[str, str]:
    """The first completion of each passage in a SQuAD-style file with `completions`, keyed by passage."""
    dataset = load_knowledge_file(path)
    found = {}
    for row in dataset:
        passage = Passage.from_row(row)
        if passage.completions:
            found[passage.key] = passage.completions[0]
    if not found:
        raise DataError(f"{path}: no passage has 'completions' (needed by passage_external)")
    return found


class Evaluator:
    def __init__(
        self,
        config: SealConfig,
        domain: Domain,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        store: RunStore,
        tracker: Tracker,
    ) -> None:
        self.config = config
        self.domain = domain
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.tracker = tracker
        self.folder = f"evaluate/{evaluation_id(config)}"
        available = domain.conditions()
        self.conditions = {name: available[name] for name in config.evaluate.conditions}
        if config.evaluate.policy is None:
            self.conditions = {name: c for name, c in self.conditions.items() if not c.policy}
        path = config.evaluate.external_selfedits
        self.external = external_selfedits(path) if "passage_external" in config.evaluate.conditions else {}
        self.policy: PreTrainedModel | None = None
        self.samplers: dict[bool, Sampler] = {}

    def model_for(self, condition: Condition) -> PreTrainedModel:
        if not condition.policy:
            return self.model
        if self.policy is None:
            self.policy = load_model(self.config.model, self.config.evaluate.policy)
        return self.policy

    def sample(self, condition: Condition, item: Item) -> str:
        """One self-edit written by the model the condition adapts (samplers start on first use)."""
        if condition.policy not in self.samplers:
            path = self.config.evaluate.policy if condition.policy else resolve_model_path(self.config.model.name)
            model = self.model_for(condition)
            self.samplers[condition.policy] = build_sampler(
                self.config.sampler, model, self.tokenizer, path, self.config.seed
            )
        prompt = self.domain.selfedit_prompt(item)
        return self.samplers[condition.policy].sample([prompt], 1, seed=self.config.seed)[0][0]

    def selfedits(self, condition: Condition, item: Item) -> list[str]:
        """The self-edits a condition applies to an item (none: score the model as it is)."""
        if condition.source == "fixed":
            return list(condition.selfedits)
        if condition.source == "sampled":
            return [self.sample(condition, item)]
        if condition.source == "external":
            if item.key not in self.external:
                raise DataError(f"{self.config.evaluate.external_selfedits}: no self-edit for {item.title!r}")
            return [self.external[item.key]]
        return []

    def score(self, condition: Condition, item: Item) -> dict:
        """The row's metrics on the item; with several self-edits (the oracle), the best per metric."""
        metrics = self.config.evaluate.metrics
        model = self.model_for(condition)
        questions = self.domain.questions(item)
        selfedits = self.selfedits(condition, item)
        if not selfedits:
            return score_questions(model, self.tokenizer, questions, metrics, self.config.reward)
        results = []
        for completion in selfedits:
            update = self.domain.update(item, completion)
            if update.error is not None:
                scores = score_questions(model, self.tokenizer, questions, metrics, self.config.reward)
            else:
                with adapted(model, self.tokenizer, update, self.config.seed) as adapted_model:
                    scores = score_questions(adapted_model, self.tokenizer, questions, metrics, self.config.reward)
            results.append(scores | {"selfedit": completion, "error": update.error})
        if len(results) == 1:
            return results[0]
        return {metric: max(r[metric] for r in results) for metric in metrics}

    def run(self, items: list[Item]) -> dict[str, dict[str, tuple[float, float]]]:
        """Scores every (condition, item) not yet done; returns condition -> metric -> (mean, stderr)."""
        results_name = f"{self.folder}/results.jsonl"
        done = {(r["condition"], r["item"]): r for r in self.store.read_jsonl(results_name)}
        todo = [(name, item) for name in self.conditions for item in items if (name, item.key) not in done]
        with self.tracker.run(self.folder, "evaluate", to_flat_dict(self.config)):
            total = len(self.conditions) * len(items)
            try:
                for name, item in tqdm(todo, total=total, initial=total - len(todo), desc="evaluate"):
                    record = {"condition": name, "item": item.key, "title": item.title}
                    record |= self.score(self.conditions[name], item)
                    self.store.append_jsonl(results_name, record)
                    done[(name, item.key)] = record
            finally:
                for sampler in self.samplers.values():
                    sampler.close()
                self.samplers = {}
            keys = {item.key for item in items}
            records = [r for (name, key), r in done.items() if key in keys and name in self.conditions]
            table = summarize(records, self.config.evaluate.metrics)
            text = format_table(table, self.config.evaluate.metrics)
            self.store.write_text(f"{self.folder}/table.txt", text + "\n")
            self.store.write_text(
                f"{self.folder}/per_item.txt", format_per_item(records, self.config.evaluate.metrics) + "\n"
            )
            self.tracker.log_metrics(
                {f"{condition}/{metric}": mean for condition, row in table.items() for metric, (mean, _) in row.items()}
            )
            self.tracker.log_artifact(self.store.path(f"{self.folder}/table.txt"))
            self.tracker.log_artifact(self.store.path(f"{self.folder}/per_item.txt"))
            self.tracker.log_artifact(self.store.path(results_name))
        return table


def summarize(records: list[dict], metrics: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard error over passages, per condition and metric, in the order conditions appear."""
    by_condition: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for metric in metrics:
            by_condition[record["condition"]][metric].append(record[metric])
    return {
        condition: {metric: mean_stderr(values) for metric, values in row.items()}
        for condition, row in by_condition.items()
    }


def mean_stderr(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def format_table(table: dict[str, dict[str, tuple[float, float]]], metrics: list[str]) -> str:
    header = f"{'condition':<18}" + "".join(f"{metric:>22}" for metric in metrics)
    rows = [
        f"{condition:<18}" + "".join(f"{f'{row[m][0]:.3f} ± {row[m][1]:.3f}':>22}" for m in metrics)
        for condition, row in table.items()
    ]
    return "\n".join([header, *rows])


def format_per_item(records: list[dict], metrics: list[str]) -> str:
    """One line per item, one column per condition, under the first metric."""
    metric = metrics[0]
    conditions = list(dict.fromkeys(r["condition"] for r in records))
    titles = list(dict.fromkeys(r["title"] for r in records))
    value = {(r["title"], r["condition"]): r[metric] for r in records}
    header = f"{metric + ' per item':<24}" + "".join(f"{c:>14}" for c in conditions)
    rows = [
        f"{title[:24]:<24}"
        + "".join(f"{value[(title, c)]:>14.3f}" if (title, c) in value else f"{'':>14}" for c in conditions)
        for title in titles
    ]
    return "\n".join([header, *rows])
