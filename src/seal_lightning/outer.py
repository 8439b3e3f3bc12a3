"""The outer loop: ReST-EM rounds over the policy that writes self-edits.

Each round works on its own items (passages, ARC tasks; see `rounds.py`). E-step: sample k
self-edits per item, score each with the inner loop (mean over seeds), keep the best of k per item.
M-step: fine-tune the policy on the kept (prompt, self-edit) pairs with a LoRA adapter, merged; the
next round starts from there. Every finished step is in the run directory, so a rerun of the same
command redoes nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PreTrainedModel

from seal_lightning.callbacks import ReSTEMCallback
from seal_lightning.config import OuterConfig
from seal_lightning.configure import to_flat_dict
from seal_lightning.domains import Item, SelfEditUpdate
from seal_lightning.errors import ConfigError
from seal_lightning.inner import training_tokens, truncated_examples
from seal_lightning.models import fingerprint
from seal_lightning.mstep import ReSTEMPolicyModule, SFTPair, cut_pairs
from seal_lightning.profiling import PhaseProfile, allocator
from seal_lightning.runtime import Runtime
from seal_lightning.sampling import Completion, Sampler
from seal_lightning.sampling.sharded import sample_shared
from seal_lightning.selection import ScoredSelfEdit, select_best


@dataclass
class RoundSummary:
    """What a round did. Rewards and gains are means over the self-edits that were not rejected."""

    round: int
    items: int
    selfedits: int
    rejected: int
    # Self-edits the sampler cut at sampler.max_new_tokens; training documents inner.max_length cut.
    truncated: int
    truncated_documents: int
    baseline: float
    mean_reward: float
    max_reward: float
    mean_gain: float
    max_gain: float
    kept_fraction: float
    # M-step pairs outer.max_length cut.
    mstep_truncated: int
    mstep_loss: float
    wall_time_s: float


class ReSTEM:
    """Runs `len(rounds)` ReST-EM rounds, round r on `rounds[r-1]`, recording everything in the runtime's store."""

    def __init__(
        self,
        runtime: Runtime,
        outer: OuterConfig,
        rounds: list[list[Item]],
        callbacks: list[ReSTEMCallback] | None = None,
    ) -> None:
        self.runtime = runtime
        self.outer = outer
        self.rounds = rounds
        self.callbacks = list(callbacks or [])
        # The shared settings the round reads; the runtime built its sampler and scorer from the same.
        self.seed = runtime.config.seed
        self.inner = runtime.config.inner
        # Time and memory of the current round's phases (round_N/phases.json).
        self.profile = PhaseProfile()
        # Under several ranks: each rank's inner loops and their seconds in the current round.
        self.rank_work: dict[int, dict[str, float]] = {}

    def fit(self) -> list[RoundSummary]:
        summaries = []
        for round_index, items in enumerate(self.rounds, start=1):  # refused before any work is done
            self.check_items(round_index, items)
        with self.runtime.tracker.run("fit", "fit", to_flat_dict(self.runtime.config)):
            # The phases' memory peaks depend on the malloc serving the process (scripts/run.sh preloads mimalloc).
            self.runtime.tracker.set_tags({"seal.allocator": allocator()})
            for callback in self.callbacks:
                callback.on_restem_start(self)
            try:
                for round_index in range(1, len(self.rounds) + 1):
                    summary = self.runtime.store.read_json(f"round_{round_index}/summary.json")
                    ran = summary is None
                    if ran:
                        summary = asdict(self.run_round(round_index))
                    else:
                        print(f"round {round_index}: already finished, skipped")
                        self.profile = PhaseProfile()
                    summaries.append(RoundSummary(**summary))
                    for callback in self.callbacks:
                        with self.profile.phase(f"after_round:{type(callback).__name__}"):
                            callback.after_round(self, round_index, self.runtime.model_path(round_index))
                    if ran:  # the held-out evaluation's time and memory join the round's phases
                        self.write_phases(round_index)
            finally:
                for callback in self.callbacks:
                    callback.on_restem_end(self)
        return summaries

    def run_round(self, round_index: int) -> RoundSummary:
        started = time.monotonic()
        items = self.rounds[round_index - 1]
        prefix = f"round_{round_index}"
        policy_path = self.runtime.model_path(round_index - 1)
        self.profile = profile = PhaseProfile()
        with profile.phase("load"):
            policy = self.runtime.load_model(policy_path)
        store, tracker = self.runtime.store, self.runtime.tracker
        with tracker.run(prefix, prefix):
            for callback in self.callbacks:
                callback.before_e_step(self, round_index, policy, policy_path)
            with profile.phase("sampling"):
                sampler = self.runtime.sampler_on(policy, policy_path)
                selfedits = self.sample_selfedits(prefix, items, sampler, round_index)
            updates = {
                (item.key, sample): self.runtime.domain.update(item, completion.text)
                for item in items
                for sample, completion in enumerate(selfedits[item.key])
            }
            with profile.phase("inner_loops"):
                scored = self.score_selfedits(prefix, items, policy, selfedits, updates)
            kept = select_best(scored, self.outer.min_gain, self.outer.solved_at)
            by_key = {item.key: item for item in items}
            pairs = [
                SFTPair(self.runtime.domain.selfedit_prompt(by_key[k.item]), k.completion, k.truncated) for k in kept
            ]
            store.write_json(f"{prefix}/kept.json", [asdict(k) | {"gain": k.gain} for k in kept])
            lines = [json.dumps(asdict(s) | {"gain": s.gain}, ensure_ascii=False) for s in scored]
            store.write_text(f"{prefix}/selfedits_scored.jsonl", "\n".join(lines) + "\n")
            mstep_loss = self.m_step(prefix, policy, policy_path, pairs, round_index)
            self.runtime.ranks.barrier()  # the round's policy is on disk for every rank
            # Training documents of the round's self-edits that inner.max_length cuts.
            documents_cut = sum(truncated_examples(u, self.runtime.tokenizer) for u in updates.values())
            summary = summarize_round(round_index, items, scored, kept, documents_cut)
            summary.mstep_truncated = cut_pairs(pairs, self.runtime.tokenizer, self.outer.max_length)
            summary.mstep_loss = mstep_loss
            summary.wall_time_s = time.monotonic() - started
            with profile.phase("logging"):
                tracker.log_metrics({k: float(v) for k, v in asdict(summary).items() if k != "round"})
                if self.runtime.ranks.world_size > 1:
                    work = {f"rank{r}_{k}": v for r, values in self.rank_work.items() for k, v in values.items()}
                    tracker.log_metrics(work)
                for name in ("selfedits_scored.jsonl", "kept.json"):
                    tracker.log_artifact(store.path(f"{prefix}/{name}"), prefix)
                tracker.log_artifact(store.path(f"{prefix}/adapter"), f"{prefix}/adapter")
                merged = self.runtime.model_path(round_index)
                if store.main:  # the only rank that talks to MLflow; the others would hash the policy for nothing
                    tracker.log_reference(merged, f"{prefix}/policy.json", fingerprint(merged))
            self.write_phases(round_index)
            store.write_json(f"{prefix}/summary.json", asdict(summary))
        print(format_round(summary, len(self.rounds)))
        return summary

    def write_phases(self, round_index: int) -> None:
        """The round's phase records so far, to round_N/phases.json and the tracker's current run."""
        self.runtime.tracker.log_metrics(self.profile.metrics(), step=round_index)
        records = [asdict(record) for record in self.profile.records]
        self.runtime.store.write_json(f"round_{round_index}/phases.json", records)

    def check_items(self, round_index: int, items: list[Item]) -> None:
        """A round works on the items it started with (round_items keeps the rounds' items disjoint)."""
        saved = self.runtime.store.read_json(f"round_{round_index}/selfedits.json")
        if saved is not None and set(saved) != {item.key for item in items}:
            raise ConfigError(
                f"run_dir {self.runtime.store.root} started round {round_index} on other items than the data gives it "
                "now (did outer.rounds grow with data.per_round unset?); set data.per_round or use another run_dir"
            )

    def sample_selfedits(
        self, prefix: str, items: list[Item], sampler: Sampler, round_index: int
    ) -> dict[str, list[Completion]]:
        """k self-edits per item, sampled once per round and kept, so a resumed round scores the same ones."""
        name = f"{prefix}/selfedits.json"
        saved = self.runtime.store.read_json(name)
        if saved is None:
            k, domain = self.runtime.config.sampler.k, self.runtime.domain
            print(f"{prefix}: sampling {k} self-edits for each of {len(items)} {domain.name} items")
            prompts = [domain.selfedit_prompt(item) for item in items]
            completions = sample_shared(sampler, prompts, k, self.seed + round_index, self.runtime.ranks)
            saved = {item.key: [asdict(c) for c in texts] for item, texts in zip(items, completions, strict=True)}
            self.runtime.store.write_json(name, saved)
        return {key: [Completion(**c) for c in texts] for key, texts in saved.items()}

    def score_selfedits(
        self,
        prefix: str,
        items: list[Item],
        policy: PreTrainedModel,
        selfedits: dict[str, list[Completion]],
        updates: dict[tuple[str, int], SelfEditUpdate],
    ) -> list[ScoredSelfEdit]:
        """Every (item, self-edit, seed) inner loop, each appended to the store when it finishes; `updates`
        holds each (item key, sample)'s self-edit as the domain turned it into an update. Under several
        ranks each scores its share of the unfinished loops (balanced by training tokens) and the ranks
        gather the rewards."""
        store, ranks = self.runtime.store, self.runtime.ranks
        baselines = {r["item"]: r["baseline"] for r in store.read_jsonl(f"{prefix}/baselines.jsonl")}
        # The sampler holds this policy: where it serves adapters (vLLM on a GPU), stacked loops answer through it.
        scorer = self.runtime.scorer(policy, baselines, sampler_answers=True)
        persisted = set(baselines)
        done = {(r["item"], r["sample"], r["seed"]): r["reward"] for r in store.read_jsonl(f"{prefix}/scores.jsonl")}
        ranks.barrier()  # every rank has read what was done before any rank records more
        seeds = [self.seed + s for s in range(self.inner.seeds)]
        todo = [
            (item, sample, seed)
            for item in items
            for sample in range(len(selfedits[item.key]))
            for seed in seeds
            if (item.key, sample, seed) not in done
        ]
        costs = [training_tokens(updates[(item.key, sample)], self.runtime.tokenizer) for item, sample, _ in todo]
        mine = [todo[index] for index in ranks.share(costs)]
        total = len(updates) * len(seeds)
        # Batched: up to inner.max_adapters unfinished inner loops train together; else one by one.
        size = self.inner.max_adapters if self.inner.batched else 1
        chunks = [mine[start : start + size] for start in range(0, len(mine), size)]
        scored: dict[tuple[str, int, int], float] = {}
        started = time.monotonic()
        # The main rank's bar counts the loops finished before and its own share.
        initial = total - len(todo)
        quiet = not ranks.main
        bar = tqdm(total=initial + len(mine), initial=initial, desc=f"{prefix} inner loops", unit="loop", disable=quiet)
        with bar:
            for chunk in chunks:
                batch = [(item, updates[(item.key, sample)], seed) for item, sample, seed in chunk]
                for (item, sample, seed), result in zip(chunk, scorer.score_many(batch), strict=True):
                    if item.key not in persisted:
                        persisted.add(item.key)
                        store.append_jsonl(f"{prefix}/baselines.jsonl", {"item": item.key, "baseline": result.baseline})
                    scored[(item.key, sample, seed)] = result.reward
                    record = {"item": item.key, "sample": sample, "seed": seed, "reward": result.reward}
                    store.append_jsonl(f"{prefix}/scores.jsonl", record)
                    bar.update()
        elapsed = time.monotonic() - started
        for rank, (rewards, baseline_values, seconds) in enumerate(ranks.gather((scored, scorer.baselines, elapsed))):
            done.update(rewards)
            scorer.baselines.update(baseline_values)
            self.rank_work[rank] = {"loops": len(rewards), "inner_loops_s": seconds}
        per_selfedit: dict[tuple[str, int], list[float]] = defaultdict(list)
        for (item_key, sample, _seed), value in done.items():
            per_selfedit[(item_key, sample)].append(value)
        by_key = {item.key: item for item in items}
        return [
            ScoredSelfEdit(
                item=key,
                sample=sample,
                completion=selfedits[key][sample].text,
                reward=_mean(per_selfedit[(key, sample)]),
                baseline=scorer.baseline(by_key[key]),
                error=update.error,
                notes=update.notes,
                truncated=selfedits[key][sample].truncated,
            )
            for (key, sample), update in updates.items()
        ]

    def m_step(
        self,
        prefix: str,
        policy: PreTrainedModel,
        policy_path: str,
        pairs: list[SFTPair],
        round_index: int,
    ) -> float:
        """SFT on the kept pairs, save the adapter, merge, save the merged policy. No pairs: policy unchanged.
        Under FSDP the M-step shards `policy` in place and merges into a copy reloaded from `policy_path`."""
        store = self.runtime.store
        if not pairs:
            print(f"{prefix}: no self-edit was kept; the policy carries over unchanged")
            store.write_dir(f"{prefix}/adapter", lambda folder: None)
            store.write_dir(f"{prefix}/policy", self.save_policy(policy))
            return float("nan")
        with self.profile.phase("mstep"):
            module = ReSTEMPolicyModule(policy, self.outer, seed=self.seed + round_index)
            logger = self.runtime.tracker.lightning_logger(prefix="mstep")
            loss = module.learn(
                pairs,
                self.runtime.tokenizer,
                logger=logger,
                callbacks=self.callbacks,
                ranks=self.runtime.ranks,
                reload=lambda: self.runtime.load_model(policy_path),
            )
        with self.profile.phase("save_adapter"):
            store.write_dir(f"{prefix}/adapter", module.model.save_pretrained)
        with self.profile.phase("merge"):
            merged = module.merged()
        with self.profile.phase("save_policy"):
            store.write_dir(f"{prefix}/policy", self.save_policy(merged))
        return loss

    def save_policy(self, model: PreTrainedModel) -> Callable[[Path], None]:
        """A writer for `RunStore.write_dir`: the model and its tokenizer, as a loadable HF folder."""

        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            self.runtime.tokenizer.save_pretrained(folder)

        return write


def summarize_round(
    round_index: int, items: list[Item], scored: list[ScoredSelfEdit], kept: list[ScoredSelfEdit], documents_cut: int
) -> RoundSummary:
    """The round's figures; rewards and gains over the self-edits that trained (rejected ones score the
    baseline and would pull the means toward it)."""
    trained = [s for s in scored if s.error is None]
    return RoundSummary(
        round=round_index,
        items=len(items),
        selfedits=len(scored),
        rejected=len(scored) - len(trained),
        truncated=sum(s.truncated for s in scored),
        truncated_documents=documents_cut,
        baseline=_mean([s.baseline for s in scored]),
        mean_reward=_mean([s.reward for s in trained]),
        max_reward=max((s.reward for s in trained), default=math.nan),
        mean_gain=_mean([s.gain for s in trained]),
        max_gain=max((s.gain for s in trained), default=math.nan),
        kept_fraction=len({k.item for k in kept}) / len(items),
        mstep_truncated=0,
        mstep_loss=math.nan,
        wall_time_s=0.0,
    )


def format_round(summary: RoundSummary, rounds: int) -> str:
    return (
        f"round {summary.round}/{rounds}: {summary.selfedits} self-edits on {summary.items} items "
        f"({summary.rejected} rejected, {summary.truncated} cut at sampler.max_new_tokens, "
        f"{summary.truncated_documents} documents cut at inner.max_length) | "
        f"baseline {summary.baseline:.3f} | reward mean {summary.mean_reward:.3f} max {summary.max_reward:.3f} | "
        f"gain mean {summary.mean_gain:+.3f} max {summary.max_gain:+.3f} | kept {summary.kept_fraction:.0%} | "
        f"M-step loss {summary.mstep_loss:.3f} ({summary.mstep_truncated} pairs cut) | "
        f"{summary.wall_time_s / 60:.1f} min"
    )


def format_table(summaries: list[RoundSummary]) -> str:
    """The rounds' training figures (on each round's own items: see the held-out table for what generalises)."""
    header = f"{'round':>5} {'baseline':>9} {'reward':>9} {'max':>9} {'gain':>8} {'kept':>6} {'M-loss':>7} {'min':>6}"
    rows = [
        f"{s.round:>5} {s.baseline:>9.3f} {s.mean_reward:>9.3f} {s.max_reward:>9.3f} {s.mean_gain:>+8.3f} "
        f"{s.kept_fraction:>6.0%} {s.mstep_loss:>7.3f} {s.wall_time_s / 60:>6.1f}"
        for s in summaries
    ]
    return "\n".join([header, *rows])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
