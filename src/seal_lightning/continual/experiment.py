"""`continual`: sequential self-edits on a stream of passages, per strategy, in several orders.

The policy writes one self-edit per passage once; every strategy and order applies the same
self-edits, so strategies differ only in how they absorb them. After each step every passage of
the stream (seen and unseen) is scored, giving the (N+1) x N matrix of the paper's experiment.
A finished (strategy, order) is written to the run directory, so a rerun skips it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from seal_lightning.configure import to_flat_dict
from seal_lightning.continual import metrics, plots
from seal_lightning.continual.config import ContinualConfig, parts
from seal_lightning.continual.learner import Evaluation, SequentialEditor
from seal_lightning.continual.strategies import build_plugins
from seal_lightning.continual.stream import passage_stream
from seal_lightning.domains import Item
from seal_lightning.errors import DataError
from seal_lightning.inner import tokenized
from seal_lightning.runtime import Runtime
from seal_lightning.sampling.hf import TransformersSampler
from seal_lightning.sampling.sharded import sample_shared

FOLDER = "continual"


@dataclass(frozen=True)
class StrategyResult:
    strategy: str
    matrices: list[np.ndarray]
    step_seconds: float
    # The passages of each order (keys in stream order), so that `compare` pairs strategies on the same orders.
    orders: list[list[str]]

    @property
    def summary(self) -> dict[str, tuple[float, float]]:
        return metrics.summary_over_sequences(self.matrices)


class ContinualExperiment:
    """The stream of `config.passages` passages under each of `config.strategies`, in `config.sequences` orders."""

    def __init__(self, runtime: Runtime, config: ContinualConfig, passages: list[Item]) -> None:
        count = config.passages
        if len(passages) < count:
            raise DataError(f"continual.passages={count} but the data has only {len(passages)} passages")
        self.runtime = runtime
        self.config = config
        self.passages = passages[:count]
        self.domain = runtime.domain
        self.tokenizer = runtime.tokenizer
        self.store = runtime.store
        self.tracker = runtime.tracker
        self.seed = runtime.config.seed

    def orders(self) -> list[list[int]]:
        """Seeded random orders of the stream; the same for every strategy."""
        rng = random.Random(self.seed)
        indices = list(range(len(self.passages)))
        return [rng.sample(indices, len(indices)) for _ in range(self.config.sequences)]

    def selfedits(self) -> dict[str, str]:
        """One self-edit per passage from the policy, sampled once and kept in the run directory."""
        name = f"{FOLDER}/selfedits.json"
        saved = self.store.read_json(name) or {}
        missing = [p for p in self.passages if p.key not in saved]
        if missing:
            policy = self.runtime.load_model()  # held here while it writes: the sampler does not hold it
            sampler = self.runtime.sampler_on(policy, self.runtime.model_path())
            prompts = [self.domain.selfedit_prompt(p) for p in missing]
            completions = sample_shared(sampler, prompts, 1, self.seed, self.runtime.ranks)
            self.runtime.close_sampler()  # the stream samples nothing more: free an engine's memory now
            saved |= {p.key: texts[0].text for p, texts in zip(missing, completions, strict=True)}
            self.store.write_json(name, saved)
        return saved

    def run(self) -> list[StrategyResult]:
        selfedits = self.selfedits()
        documents = {p.key: tokenized(self.domain.update(p, selfedits[p.key]), self.tokenizer) for p in self.passages}
        flat = to_flat_dict(self.runtime.config)
        shared = {k: v for k, v in flat.items() if not k.startswith("continual.") or k.count(".") == 1}
        results = []
        with self.tracker.run(FOLDER, "continual", shared):
            self.tracker.set_tags({"seal.kind": "continual"})
            self.run_sequences(documents)
            for strategy in self.config.strategies:
                prefixes = tuple(f"continual.{part}." for part in parts(strategy))
                params = {k: v for k, v in flat.items() if k.startswith(prefixes)}
                with self.tracker.run(f"{FOLDER}/{strategy}", strategy, {**shared, **params, "strategy": strategy}):
                    self.tracker.set_tags({"seal.kind": "continual_strategy", "seal.strategy": strategy})
                    result = self.strategy_result(strategy)
                    self.track(result)
                results.append(result)
        return results

    def run_sequences(self, documents: dict[str, list]) -> None:
        """Every (strategy, order) sequence not yet in the run directory, each written as it finishes. Under
        several ranks each runs its share of them (they are independent) and writes what it ran."""
        ranks, orders = self.runtime.ranks, self.orders()
        pending = [
            (strategy, index)
            for strategy in self.config.strategies
            for index in range(len(orders))
            if self.store.read_json(sequence_name(strategy, index)) is None
        ]
        ranks.barrier()  # every rank has read what was done before any rank writes more
        for strategy, index in [pending[i] for i in ranks.share([1.0] * len(pending))]:
            record = self.run_sequence(strategy, [self.passages[i] for i in orders[index]], documents, index)
            self.store.write_json(sequence_name(strategy, index), record, own=True)
        ranks.barrier()  # every sequence is on disk for every rank

    def strategy_result(self, strategy: str) -> StrategyResult:
        records = [self.store.read_json(sequence_name(strategy, i)) for i in range(self.config.sequences)]
        matrices = [np.array(record["matrix"]) for record in records]
        seconds = [s for record in records for s in record["step_seconds"]]
        orders = [record["order"] for record in records]
        return StrategyResult(strategy, matrices, float(np.mean(seconds)), orders)

    def run_sequence(self, strategy: str, stream: list[Item], documents: dict[str, list], index: int) -> dict:
        """Absorb the passages of one order one after another; score the whole stream after each step."""
        seed = self.seed + 1000 * index
        plugins = build_plugins(strategy, self.runtime.config, self.tokenizer, seed)
        editor = SequentialEditor(self.runtime.load_model(), self.tokenizer, self.runtime.config.inner, plugins, seed)
        stream_documents = [documents[p.key] for p in stream]
        selfedits = []
        matrix = [self.accuracy_row(editor, stream).scores]
        steps = []
        for position in tqdm(range(len(stream)), desc=f"{strategy} order {index}", leave=False):
            if self.config.resample:  # the paper's protocol: the current model writes this step's self-edit
                text = self.resampled(editor.model, stream[position], seed + position)
                selfedits.append(text)
                stream_documents[position] = tokenized(self.domain.update(stream[position], text), self.tokenizer)
            # The stream so far as Avalanche experiences (the same ones, step by step, as the whole stream's).
            experience = passage_stream(stream_documents[: position + 1], self.tokenizer.pad_token_id)[position]
            start = time.perf_counter()
            report = editor.learn(experience)
            seconds = time.perf_counter() - start
            evaluation = self.accuracy_row(editor, stream)
            matrix.append(evaluation.scores)
            steps.append({"seconds": seconds, **vars(report), "plugins": report.plugins | evaluation.figures})
        return {
            "order": [p.key for p in stream],
            "titles": [p.title for p in stream],
            "matrix": matrix,
            "step_seconds": [step["seconds"] for step in steps],
            "steps": steps,
            **({"selfedits": selfedits} if self.config.resample else {}),
        }

    def resampled(self, model: PreTrainedModel, passage: Item, seed: int) -> str:
        """A self-edit for `passage` written by `model` as it is now (never saved, so sampled in memory)."""
        sampler = TransformersSampler(self.runtime.config.sampler, model, self.tokenizer)
        (completions,) = sampler.sample([self.domain.selfedit_prompt(passage)], 1, [seed])
        return completions[0].text

    def accuracy_row(self, editor: SequentialEditor, stream: list[Item]) -> Evaluation:
        """The metric on every passage of the stream, as the edits so far left the editor."""
        scorer = self.runtime.scorer(editor.model)
        return editor.evaluate(scorer, [self.domain.questions(p) for p in stream], self.config.metric)

    def track(self, result: StrategyResult) -> None:
        """Metrics, the matrix in the paper's layout, a heatmap and the first passage's retention curve."""
        folder = f"{FOLDER}/{result.strategy}"
        summary = result.summary
        self.tracker.log_metrics({k: mean for k, (mean, _) in summary.items()})
        self.tracker.log_metrics({f"{k}_std": std for k, (_, std) in summary.items()})
        self.tracker.log_metrics({"step_seconds": result.step_seconds})
        mean = np.mean(result.matrices, axis=0)
        for step, value in enumerate(metrics.retention(mean)):
            self.tracker.log_metrics({"retention_first": float(value)}, step=step)
        matrix = {
            **metrics.aggregate(result.matrices),
            "metric": self.config.metric,
            "strategy": result.strategy,
            "base_model": self.runtime.config.model.name,
            "per_sequence": [m.tolist() for m in result.matrices],
            "orders": result.orders,
        }
        self.tracker.log_artifact(self.store.write_json(f"{folder}/matrix.json", matrix))
        title = f"{result.strategy}: {self.config.metric}, mean of {len(result.matrices)} orders"
        figure = plots.save_strategy_figure(self.store.path(f"{folder}/heatmap.png"), mean, title)
        self.tracker.log_artifact(Path(figure))


def sequence_name(strategy: str, index: int) -> str:
    """Where the record of one strategy's run over order `index` is kept."""
    return f"{FOLDER}/{strategy}/sequence_{index}.json"


# Summary metrics in the comparison table, and their column labels.
TABLE_COLUMNS = (
    ("average_accuracy", "avg acc"),
    ("forgetting", "forgetting"),
    ("forgetting_first", "forget p0"),
    ("bwt", "BWT"),
    ("plasticity", "plasticity"),
    ("plasticity_first", "plast. p0"),
)


def name_width(names: Iterable[str]) -> int:
    """The strategy column's width: 12, or wider for a longer (combined) name."""
    return max(12, *(len(name) + 1 for name in names))


def format_summary(results: dict[str, dict[str, tuple[float, float]]], seconds: dict[str, float]) -> str:
    """Strategy x (average accuracy, forgetting, BWT, plasticity, time): mean ± std over orders."""
    width = name_width(results)
    header = f"{'strategy':<{width}}" + "".join(f"{label:>17}" for _, label in TABLE_COLUMNS) + f"{'s/step':>9}"
    rows = [
        f"{name:<{width}}"
        + "".join(f"{f'{summary[key][0]:+.3f} ± {summary[key][1]:.3f}':>17}" for key, _ in TABLE_COLUMNS)
        + f"{seconds[name]:>9.1f}"
        for name, summary in results.items()
    ]
    return "\n".join([header, *rows])
