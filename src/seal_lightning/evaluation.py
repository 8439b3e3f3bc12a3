"""The paper's knowledge-incorporation table: accuracy without the passage in context after an update.

Rows (conditions), each scored with every metric in `evaluate.metrics`:
- no_update: the model as it is;
- passage: an inner-loop update on the passage alone;
- passage_selfedit: the passage plus a self-edit sampled from the model being evaluated;
- passage_external: the passage plus the first self-edit given for it in `evaluate.external_selfedits`.
Per-passage results are appended as they finish, so an interrupted evaluation resumes.
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
from seal_lightning.errors import DataError
from seal_lightning.inner import adapted
from seal_lightning.models import chat_prompt, resolve_model_path
from seal_lightning.rewards import score_questions
from seal_lightning.sampling import Sampler, build_sampler
from seal_lightning.selfedit import documents_from_selfedit, passage_document, selfedit_prompt
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker


def evaluation_id(config: SealConfig) -> str:
    """Results of different models, data or settings go to different folders of the run directory."""
    relevant = {
        k: v
        for k, v in to_flat_dict(config).items()
        if k.split(".")[0] in ("model", "data", "inner", "reward", "evaluate", "sampler", "seed")
    }
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
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        store: RunStore,
        tracker: Tracker,
    ) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.store = store
        self.tracker = tracker
        self.folder = f"evaluate/{evaluation_id(config)}"
        path = config.evaluate.external_selfedits
        self.external = external_selfedits(path) if "passage_external" in config.evaluate.conditions else {}
        self.sampler: Sampler | None = None

    def documents(self, condition: str, passage: Passage) -> list[str] | None:
        """Training documents of a condition; None for no update."""
        if condition == "no_update":
            return None
        if condition == "passage":
            return [passage_document(passage)]
        if condition == "passage_selfedit":
            if self.sampler is None:
                path = resolve_model_path(self.config.model.name)
                self.sampler = build_sampler(self.config.sampler, self.model, self.tokenizer, path, self.config.seed)
            prompt = chat_prompt(self.tokenizer, selfedit_prompt(passage))
            return documents_from_selfedit(passage, self.sampler.sample([prompt], 1, seed=self.config.seed)[0][0])
        if passage.key not in self.external:
            raise DataError(f"{self.config.evaluate.external_selfedits}: no self-edit for passage {passage.title!r}")
        return documents_from_selfedit(passage, self.external[passage.key])

    def score(self, condition: str, passage: Passage) -> dict[str, float]:
        metrics = self.config.evaluate.metrics
        documents = self.documents(condition, passage)
        if documents is None:
            return score_questions(self.model, self.tokenizer, passage.questions, metrics, self.config.reward)
        with adapted(self.model, self.tokenizer, documents, self.config.inner, self.config.seed) as model:
            return score_questions(model, self.tokenizer, passage.questions, metrics, self.config.reward)

    def run(self, passages: list[Passage]) -> dict[str, dict[str, tuple[float, float]]]:
        """Scores every (condition, passage) not yet done; returns condition -> metric -> (mean, stderr)."""
        results_name = f"{self.folder}/results.jsonl"
        done = {(r["condition"], r["passage"]): r for r in self.store.read_jsonl(results_name)}
        todo = [(c, p) for c in self.config.evaluate.conditions for p in passages if (c, p.key) not in done]
        with self.tracker.run(self.folder, "evaluate", to_flat_dict(self.config)):
            total = len(self.config.evaluate.conditions) * len(passages)
            try:
                for condition, passage in tqdm(todo, total=total, initial=total - len(todo), desc="evaluate"):
                    record = {"condition": condition, "passage": passage.key, "title": passage.title}
                    record |= self.score(condition, passage)
                    self.store.append_jsonl(results_name, record)
                    done[(condition, passage.key)] = record
            finally:
                if self.sampler is not None:
                    self.sampler.close()
                    self.sampler = None
            keys = {p.key for p in passages}
            table = summarize([r for (_, key), r in done.items() if key in keys], self.config.evaluate.metrics)
            text = format_table(table, self.config.evaluate.metrics)
            self.store.write_text(f"{self.folder}/table.txt", text + "\n")
            self.tracker.log_metrics(
                {f"{condition}/{metric}": mean for condition, row in table.items() for metric, (mean, _) in row.items()}
            )
            self.tracker.log_artifact(self.store.path(f"{self.folder}/table.txt"))
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
