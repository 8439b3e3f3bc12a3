"""The outer loop: ReST-EM rounds over the policy that writes self-edits.

E-step: sample k self-edits per item (a passage, an ARC task), score each with the inner loop (mean
over seeds), keep the best of k per item. M-step: `ReSTEMPolicyModule` fine-tunes the policy on the kept
(prompt, self-edit) pairs with a LoRA adapter, which is merged; the next round starts from there.
Every finished step is in the run directory, so a rerun of the same command redoes nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import Logger
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.config import OuterConfig, SealConfig, to_flat_dict
from seal_lightning.domains import Domain, Item
from seal_lightning.finetune import LoRAFineTuneModule, tokenize_example
from seal_lightning.inner import SelfEditScorer
from seal_lightning.models import load_model, resolve_model_path
from seal_lightning.sampling import Sampler
from seal_lightning.sampling.callback import build_sampling_callback
from seal_lightning.store import RunStore
from seal_lightning.tracking import Tracker


class ReSTEMPolicyModule(LoRAFineTuneModule):
    """M-step: SFT on (prompt, kept self-edit), loss on the completion only (SEAL: rank 64, all projections)."""

    def __init__(self, policy: PreTrainedModel, config: OuterConfig) -> None:
        super().__init__(policy, config.lora, config.lr)
        self.config = config

    def learn(
        self,
        pairs: list[tuple[str, str]],
        tokenizer: PreTrainedTokenizerBase,
        seed: int,
        logger: Logger | bool = False,
        callbacks: list[L.Callback] | None = None,
    ) -> float:
        """Train on the pairs; returns the mean loss of the last epoch."""
        examples = [tokenize_example(tokenizer, p, c, self.config.max_length) for p, c in pairs]
        self.fit(
            examples,
            tokenizer,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            seed=seed,
            logger=logger,
            callbacks=callbacks,
        )
        steps_per_epoch = math.ceil(len(examples) / self.config.batch_size)
        last_epoch = self.losses[-steps_per_epoch:]
        return sum(last_epoch) / len(last_epoch)

    def merged(self) -> PreTrainedModel:
        return self.model.merge_and_unload()


@dataclass(frozen=True)
class ScoredSelfEdit:
    item: str
    sample: int
    completion: str
    reward: float
    baseline: float
    # Why the domain rejected the self-edit (it then scores the baseline and is never kept), and what
    # it clamped or dropped.
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def gain(self) -> float:
        return self.reward - self.baseline


def select_best(
    scored: list[ScoredSelfEdit], min_gain: float | None, solved_at: float | None = None
) -> list[ScoredSelfEdit]:
    """The self-edits the M-step learns from, per item: every one whose reward reaches `solved_at`,
    else the best one; with `min_gain`, only those whose gain reaches it. Rejected ones never."""
    by_item: dict[str, list[ScoredSelfEdit]] = defaultdict(list)
    for edit in scored:
        if edit.error is None:
            by_item[edit.item].append(edit)
    kept = []
    for edits in by_item.values():
        solved = [e for e in edits if solved_at is not None and e.reward >= solved_at]
        kept.extend(solved or [max(edits, key=lambda e: e.reward)])
    return [edit for edit in kept if min_gain is None or edit.gain >= min_gain]


@dataclass
class RoundSummary:
    round: int
    items: int
    selfedits: int
    rejected: int
    baseline: float
    mean_reward: float
    max_reward: float
    mean_gain: float
    max_gain: float
    kept_fraction: float
    mstep_loss: float
    wall_time_s: float


class ReSTEM:
    """Runs `config.outer.rounds` ReST-EM rounds on a domain's `items`, recording everything in `store`."""

    def __init__(
        self,
        config: SealConfig,
        domain: Domain,
        items: list[Item],
        tokenizer: PreTrainedTokenizerBase,
        store: RunStore,
        tracker: Tracker,
        callbacks: list[ReSTEMCallback] | None = None,
    ) -> None:
        self.config = config
        self.domain = domain
        self.items = items
        self.tokenizer = tokenizer
        self.store = store
        self.tracker = tracker
        self.sampling = build_sampling_callback(config.sampler, tokenizer)
        self.callbacks: list[ReSTEMCallback] = [self.sampling, *(callbacks or [])]

    def policy_path(self, round_index: int) -> str:
        """Where the policy that round `round_index` ends with is saved (round 0: the starting model)."""
        if round_index == 0:
            return resolve_model_path(self.config.model.name)
        return str(self.store.path(f"round_{round_index}/policy"))

    def fit(self) -> list[RoundSummary]:
        summaries = []
        with self.tracker.run("fit", "fit", to_flat_dict(self.config)):
            for callback in self.callbacks:
                callback.on_restem_start(self)
            try:
                for round_index in range(1, self.config.outer.rounds + 1):
                    summary = self.store.read_json(f"round_{round_index}/summary.json")
                    if summary is None:
                        summary = asdict(self.run_round(round_index))
                    else:
                        print(f"round {round_index}: already finished, skipped")
                    summaries.append(RoundSummary(**summary))
            finally:
                for callback in self.callbacks:
                    callback.on_restem_end(self)
        return summaries

    def run_round(self, round_index: int) -> RoundSummary:
        started = time.monotonic()
        policy_path = self.policy_path(round_index - 1)
        policy = load_model(self.config.model, policy_path)
        prefix = f"round_{round_index}"
        with self.tracker.run(prefix, prefix) as run_id:
            for callback in self.callbacks:
                callback.before_e_step(self, round_index, policy, policy_path)
            assert self.sampling.sampler is not None
            selfedits = self.sample_selfedits(prefix, self.sampling.sampler, round_index)
            scored = self.score_selfedits(prefix, policy, selfedits)
            kept = select_best(scored, self.config.outer.min_gain, self.config.outer.solved_at)
            by_key = {item.key: item for item in self.items}
            pairs = [(self.domain.selfedit_prompt(by_key[k.item]), k.completion) for k in kept]
            self.store.write_json(f"{prefix}/kept.json", [asdict(k) | {"gain": k.gain} for k in kept])
            lines = [json.dumps(asdict(s) | {"gain": s.gain}, ensure_ascii=False) for s in scored]
            self.store.write_text(f"{prefix}/selfedits_scored.jsonl", "\n".join(lines) + "\n")
            mstep_loss = self.m_step(prefix, policy, pairs, round_index, run_id)
            summary = RoundSummary(
                round=round_index,
                items=len(self.items),
                selfedits=len(scored),
                rejected=sum(s.error is not None for s in scored),
                baseline=_mean([s.baseline for s in scored]),
                mean_reward=_mean([s.reward for s in scored]),
                max_reward=max(s.reward for s in scored),
                mean_gain=_mean([s.gain for s in scored]),
                max_gain=max(s.gain for s in scored),
                kept_fraction=len({k.item for k in kept}) / len(self.items),
                mstep_loss=mstep_loss,
                wall_time_s=time.monotonic() - started,
            )
            self.tracker.log_metrics({k: float(v) for k, v in asdict(summary).items() if k != "round"})
            for name in ("selfedits_scored.jsonl", "kept.json"):
                self.tracker.log_artifact(self.store.path(f"{prefix}/{name}"), prefix)
            self.tracker.log_artifact(self.store.path(f"{prefix}/adapter"), f"{prefix}/adapter")
            self.tracker.log_artifact(self.policy_path(round_index), f"{prefix}/policy")
            self.store.write_json(f"{prefix}/summary.json", asdict(summary))
        print(format_round(summary, self.config.outer.rounds))
        return summary

    def sample_selfedits(self, prefix: str, sampler: Sampler, round_index: int) -> dict[str, list[str]]:
        """k self-edits per item, sampled once per round and kept, so a resumed round scores the same ones."""
        name = f"{prefix}/selfedits.json"
        selfedits = self.store.read_json(name)
        if selfedits is None:
            k = self.config.sampler.k
            print(f"{prefix}: sampling {k} self-edits for each of {len(self.items)} {self.domain.name} items")
            prompts = [self.domain.selfedit_prompt(item) for item in self.items]
            completions = sampler.sample(prompts, k, seed=self.config.seed + round_index)
            selfedits = {item.key: c for item, c in zip(self.items, completions, strict=True)}
            self.store.write_json(name, selfedits)
        return selfedits

    def score_selfedits(
        self, prefix: str, policy: PreTrainedModel, selfedits: dict[str, list[str]]
    ) -> list[ScoredSelfEdit]:
        """Every (item, self-edit, seed) inner loop, each appended to the store when it finishes."""
        baselines = {r["item"]: r["baseline"] for r in self.store.read_jsonl(f"{prefix}/baselines.jsonl")}
        # With vLLM, the batched inner loop answers through its adapters in one engine call.
        answerer = self.sampling.answerer(self.config.reward) if self.config.inner.batched else None
        scorer = SelfEditScorer(policy, self.tokenizer, self.domain, self.config.reward, baselines, answerer)
        persisted = set(baselines)
        done = {
            (r["item"], r["sample"], r["seed"]): r["reward"] for r in self.store.read_jsonl(f"{prefix}/scores.jsonl")
        }
        updates = {
            (item.key, sample): self.domain.update(item, completion)
            for item in self.items
            for sample, completion in enumerate(selfedits[item.key])
        }
        seeds = [self.config.seed + s for s in range(self.config.inner.seeds)]
        todo = [
            (item, sample, seed)
            for item in self.items
            for sample in range(len(selfedits[item.key]))
            for seed in seeds
            if (item.key, sample, seed) not in done
        ]
        total = len(updates) * len(seeds)
        # Batched: up to inner.max_adapters unfinished inner loops train together; else one by one.
        size = self.config.inner.max_adapters if self.config.inner.batched else 1
        chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
        with tqdm(total=total, initial=total - len(todo), desc=f"{prefix} inner loops", unit="loop") as bar:
            for chunk in chunks:
                batch = [(item, updates[(item.key, sample)], seed) for item, sample, seed in chunk]
                for (item, sample, seed), result in zip(chunk, scorer.score_many(batch), strict=True):
                    if item.key not in persisted:
                        persisted.add(item.key)
                        self.store.append_jsonl(
                            f"{prefix}/baselines.jsonl", {"item": item.key, "baseline": result.baseline}
                        )
                    done[(item.key, sample, seed)] = result.reward
                    record = {"item": item.key, "sample": sample, "seed": seed, "reward": result.reward}
                    self.store.append_jsonl(f"{prefix}/scores.jsonl", record)
                    bar.update()
        per_selfedit: dict[tuple[str, int], list[float]] = defaultdict(list)
        for (item_key, sample, _seed), value in done.items():
            per_selfedit[(item_key, sample)].append(value)
        by_key = {item.key: item for item in self.items}
        return [
            ScoredSelfEdit(
                item=key,
                sample=sample,
                completion=selfedits[key][sample],
                reward=_mean(per_selfedit[(key, sample)]),
                baseline=scorer.baseline(by_key[key]),
                error=update.error,
                notes=update.notes,
            )
            for (key, sample), update in updates.items()
        ]

    def m_step(
        self,
        prefix: str,
        policy: PreTrainedModel,
        pairs: list[tuple[str, str]],
        round_index: int,
        run_id: str,
    ) -> float:
        """SFT on the kept pairs, save the adapter, merge, save the merged policy. No pairs: policy unchanged."""
        if not pairs:
            print(f"{prefix}: no self-edit reached outer.min_gain; the policy carries over unchanged")
            self.store.write_dir(f"{prefix}/adapter", lambda folder: None)
            self.store.write_dir(f"{prefix}/policy", self.save_policy(policy))
            return float("nan")
        module = ReSTEMPolicyModule(policy, self.config.outer)
        logger = self.tracker.lightning_logger(run_id, prefix="mstep")
        loss = module.learn(
            pairs, self.tokenizer, seed=self.config.seed + round_index, logger=logger, callbacks=self.callbacks
        )
        self.store.write_dir(f"{prefix}/adapter", module.model.save_pretrained)
        self.store.write_dir(f"{prefix}/policy", self.save_policy(module.merged()))
        return loss

    def save_policy(self, model: PreTrainedModel) -> Callable[[Path], None]:
        """A writer for `RunStore.write_dir`: the model and its tokenizer, as a loadable HF folder."""

        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)

        return write


def format_round(summary: RoundSummary, rounds: int) -> str:
    return (
        f"round {summary.round}/{rounds}: {summary.selfedits} self-edits on {summary.items} items "
        f"({summary.rejected} rejected) | "
        f"baseline {summary.baseline:.3f} | reward mean {summary.mean_reward:.3f} max {summary.max_reward:.3f} | "
        f"gain mean {summary.mean_gain:+.3f} max {summary.max_gain:+.3f} | kept {summary.kept_fraction:.0%} | "
        f"M-step loss {summary.mstep_loss:.3f} | {summary.wall_time_s / 60:.1f} min"
    )


def format_table(summaries: list[RoundSummary]) -> str:
    header = f"{'round':>5} {'baseline':>9} {'reward':>9} {'max':>9} {'gain':>8} {'kept':>6} {'M-loss':>7} {'min':>6}"
    rows = [
        f"{s.round:>5} {s.baseline:>9.3f} {s.mean_reward:>9.3f} {s.max_reward:>9.3f} {s.mean_gain:>+8.3f} "
        f"{s.kept_fraction:>6.0%} {s.mstep_loss:>7.3f} {s.wall_time_s / 60:>6.1f}"
        for s in summaries
    ]
    return "\n".join([header, *rows])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
