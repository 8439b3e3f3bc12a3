"""Scoring items under the rows of a domain's table: each row (condition) updates a model its own way, then
asks the item's questions.

Knowledge incorporation (accuracy without the passage in context after an update):
- no_update: the model as it is;
- passage: an inner-loop update on the passage alone;
- passage_selfedit: the passage plus a self-edit the evaluated model writes;
- passage_external: the passage plus the first self-edit given for it in `evaluate.external_selfedits`;
- policy_no_update, policy_selfedit: the same for a trained policy (`evaluate.policy`);
- policy_selfedit_base: the trained policy writes, the evaluated model learns and answers.
ARC (is the test output right after test-time training): icl, ttt_standard, ttt_selfedit, seal (the
trained policy's self-edit), policy_icl, policy_selfedit_base, and oracle (the best of `arc.oracle`).

Self-edits are sampled once per writer and item and kept, so the rows that share a writer score the
same self-edits. Per-item results are appended as they finish, so an interrupted evaluation resumes.
With `cpt_passages` (continued pretraining) one update absorbs that many items at once.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm
from transformers import PreTrainedModel

from seal_lightning.domains import Condition, Item, SelfEditUpdate
from seal_lightning.domains.registry import registered
from seal_lightning.errors import DataError
from seal_lightning.models import fingerprint
from seal_lightning.runtime import Runtime
from seal_lightning.sampling import Completion, Sampler
from seal_lightning.sampling.sharded import sample_shared
from seal_lightning.scorer import Job, Scores, SelfEditScorer


class Roles:
    """The models a table's rows adapt, by role ("model", "policy"), loaded on first use from `paths`, and the
    runtime's one sampler switched to whichever role writes (a vLLM engine then loads the role's weights in
    place instead of a second engine starting)."""

    def __init__(self, runtime: Runtime, paths: dict[str, str]) -> None:
        self.runtime = runtime
        self.paths = paths
        self.models: dict[str, PreTrainedModel] = {}

    def model(self, role: str) -> PreTrainedModel:
        if role not in self.models:
            self.models[role] = self.runtime.load_model(self.paths[role])
        return self.models[role]

    def release(self, role: str) -> None:
        """Free the role's model (loaded again if asked for later): the next role's need not sit beside it.
        PEFT's wrappers (one is made and unloaded for each adapter's initial weights) leave reference cycles
        to the model, so only the cycle collector frees it."""
        if self.models.pop(role, None) is not None:
            gc.collect()

    def sampler(self, role: str) -> Sampler:
        return self.runtime.sampler_on(self.model(role), self.paths[role])


@dataclass(frozen=True)
class EvaluationSettings:
    metrics: list[str]
    seed: int
    # Self-edits a writer samples per item; a sampled row's score is their mean.
    selfedits: int = 1
    # Inner loops trained together (inner.max_adapters with inner.batched; else 1).
    chunk: int = 1
    cpt_passages: int | None = None
    external: dict[str, str] = dataclasses.field(default_factory=dict)
    external_path: str | None = None


# The config sections that shape every evaluation's results, besides the command's own section and the
# registered domains' sections (all of them, as run directories have always been keyed).
SHAPING_SECTIONS = ("domain", "data", "inner", "reward", "sampler", "seed")


def evaluation_id(flat_config: dict[str, object], command_section: str, models: Sequence[str]) -> str:
    """Results of other models, data or settings go to other folders: a hash of the config sections that
    shape the results (`SHAPING_SECTIONS`, the command's own, the domains') and the content fingerprints of
    the `models` involved."""
    sections = {*SHAPING_SECTIONS, command_section, *registered()}
    relevant = {k: v for k, v in flat_config.items() if k.split(".")[0] in sections and k != "model.name"}
    relevant["fingerprints"] = [fingerprint(name) for name in models]
    return hashlib.sha1(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:10]


class Evaluator:
    """Scores every (row, item) not yet in `folder/results.jsonl` and returns all records of these items."""

    def __init__(self, runtime: Runtime, settings: EvaluationSettings, folder: str) -> None:
        self.runtime = runtime
        self.domain = runtime.domain
        self.store = runtime.store
        self.settings = settings
        self.folder = folder

    def results(self) -> dict[tuple[str, str], dict]:
        """The records scored so far, by (row, item)."""
        return {(r["condition"], r["item"]): r for r in self.store.read_jsonl(f"{self.folder}/results.jsonl")}

    def pending(self, conditions: dict[str, Condition], items: Sequence[Item]) -> int:
        """How many (row, item) scores are not in the results yet."""
        done = self.results()
        return sum(key not in done for key in self.keys(conditions, items))

    def run(self, conditions: dict[str, Condition], items: Sequence[Item], roles: Roles) -> list[dict]:
        ranks = self.runtime.ranks
        done = self.results()
        ranks.barrier()  # every rank has read what was done before any rank records more
        todo = {name: [item for item in items if (name, item.key) not in done] for name in conditions}
        writers = {c.writer for name, c in conditions.items() if c.source == "sampled" and todo[name]}
        sampled = {writer: self.sampled(writer, roles, items) for writer in sorted(writers)}
        total = len(conditions) * len(items)
        shares = {name: self.share(condition, todo[name]) for name, condition in conditions.items()}
        initial = total - sum(map(len, todo.values()))
        scored: dict[tuple[str, str], dict] = {}
        mine = sum(len(group) for groups in shares.values() for group in groups)
        # The rows run grouped by the model they adapt, and each model is freed once its rows are done (a
        # writer that adapts no row, once it has written): the next model never sits beside it.
        adapted = list(dict.fromkeys(c.adapted for name, c in conditions.items() if shares[name]))
        adapted.sort(key=lambda role: role not in roles.models)  # a writer's model, loaded already, goes first
        for writer in writers - set(adapted):
            roles.release(writer)
        with tqdm(total=initial + mine, initial=initial, desc="evaluate", disable=not ranks.main) as bar:
            for role in adapted:
                for name, condition in conditions.items():
                    if shares[name] and condition.adapted == role:
                        scored |= self.run_condition(name, condition, shares[name], sampled, roles, bar)
                roles.release(role)
        for records in ranks.gather(scored):
            done.update(records)
        return [done[key] for key in self.keys(conditions, items)]

    def run_condition(
        self,
        name: str,
        condition: Condition,
        groups: list[list[Item]],
        sampled: dict[str, dict[str, list[Completion]]],
        roles: Roles,
        bar: tqdm,
    ) -> dict[tuple[str, str], dict]:
        """Score one row on this rank's groups of items, appending each record as it finishes."""
        scorer = self.runtime.scorer(roles.model(condition.adapted))
        scored = {}
        for group in groups:
            selfedits = {item.key: self.selfedits(condition, item, sampled) for item in group}
            updates = {i.key: [self.domain.update(i, text) for text in selfedits[i.key]] for i in group}
            for item, scores in zip(group, self.score(scorer, condition, group, updates), strict=True):
                record = {"condition": name, "item": item.key, "title": item.title, **scores}
                record["selfedits"] = selfedits[item.key]
                # Why the domain rejected a self-edit (it then trained nothing), per self-edit.
                record["errors"] = [update.error for update in updates[item.key]]
                self.store.append_jsonl(f"{self.folder}/results.jsonl", record)
                scored[(name, item.key)] = record
                bar.update()
        return scored

    def share(self, condition: Condition, items: list[Item]) -> list[list[Item]]:
        """This rank's groups of the items (all of them in one process), balanced by items per group."""
        groups = self.groups(condition, items)
        return [groups[index] for index in self.runtime.ranks.share([len(group) for group in groups])]

    @staticmethod
    def keys(conditions: dict[str, Condition], items: Sequence[Item]) -> list[tuple[str, str]]:
        return [(name, item.key) for name in conditions for item in items]

    def groups(self, condition: Condition, items: list[Item]) -> list[list[Item]]:
        """Items scored (and appended) together: a continued-pretraining group, or as many as fill one
        stack of inner loops."""
        if self.settings.cpt_passages is not None:
            size = self.settings.cpt_passages
        else:
            loops = len(condition.selfedits) if condition.source == "fixed" else self.settings.selfedits
            size = max(1, self.settings.chunk // max(loops, 1))
        return [items[start : start + size] for start in range(0, len(items), size)]

    def selfedits(self, condition: Condition, item: Item, sampled: dict[str, dict[str, list[Completion]]]) -> list[str]:
        """The self-edits a row applies to an item (none: score the model as it is)."""
        if condition.source == "fixed":
            return list(condition.selfedits)
        if condition.source == "sampled":
            return [c.text for c in sampled[condition.writer][item.key]]
        if condition.source == "external":
            if item.key not in self.settings.external:
                raise DataError(f"{self.settings.external_path}: no self-edit for {item.title!r}")
            return [self.settings.external[item.key]]
        return []

    def sampled(self, writer: str, roles: Roles, items: Sequence[Item]) -> dict[str, list[Completion]]:
        """The writer's self-edits for every item, sampled in one call and kept (a resume samples what is missing)."""
        name = f"{self.folder}/selfedits_{writer}.json"
        saved = self.store.read_json(name) or {}
        missing = [item for item in items if item.key not in saved]
        if missing:
            prompts = [self.domain.selfedit_prompt(item) for item in missing]
            sampler, ranks = roles.sampler(writer), self.runtime.ranks
            completions = sample_shared(sampler, prompts, self.settings.selfedits, self.settings.seed, ranks)
            saved |= {i.key: [dataclasses.asdict(c) for c in cs] for i, cs in zip(missing, completions, strict=True)}
            self.store.write_json(name, saved)
        return {key: [Completion(**c) for c in cs] for key, cs in saved.items()}

    def score(
        self,
        scorer: SelfEditScorer,
        condition: Condition,
        items: list[Item],
        updates: dict[str, list[SelfEditUpdate]],
    ) -> list[Scores]:
        metrics = self.settings.metrics
        if condition.source == "none":
            return [scorer.unadapted(self.domain.questions(item), metrics) for item in items]
        seed = self.settings.seed
        if self.settings.cpt_passages is not None:
            # Continued pretraining: one update on every item's documents, then each item's questions.
            update = combined([updates[item.key][0] for item in items])
            (scores,) = scorer.measure([Job(update, seed, tuple(self.domain.questions(i) for i in items))], metrics)
            return scores
        jobs = [Job(update, seed, (self.domain.questions(item),)) for item in items for update in updates[item.key]]
        measured = iter(scorer.measure(jobs, metrics))
        per_item = [[next(measured)[0] for _ in updates[item.key]] for item in items]
        # Several fixed self-edits make an oracle (the best per metric); sampled ones average.
        pick = max if condition.source == "fixed" else _mean
        return [{metric: pick([s[metric] for s in scores]) for metric in metrics} for scores in per_item]


def combined(updates: list[SelfEditUpdate]) -> SelfEditUpdate:
    """One update on the examples of several (continued pretraining); rejected ones add nothing."""
    trained = [u for u in updates if u.error is None]
    if not trained:
        return updates[0]
    return dataclasses.replace(trained[0], examples=tuple(e for u in trained for e in u.examples))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
