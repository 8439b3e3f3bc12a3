"""LoRA fine-tuning of a causal LM as a LightningModule: the part the inner and outer loops share.

Both loops train a fresh PEFT adapter on (prompt, completion) examples with the loss on completion
tokens only (the inner loop's documents have an empty prompt) and padding masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import ParallelStrategy
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from torch.utils.data import DataLoader, Sampler
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import LoRAConfig, TrainingMemory
from seal_lightning.distributed import Ranks
from seal_lightning.examples import IGNORE_INDEX, pad_batch
from seal_lightning.output_head import next_token_targets, token_scores
from seal_lightning.sharding import is_sharded, shard, sharding_strategy

T = TypeVar("T")


def peft_lora_config(config: LoRAConfig) -> LoraConfig:
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )


def quiet_trainer(
    device: torch.device,
    epochs: int,
    logger: Logger | bool = False,
    callbacks: list[L.Callback] | None = None,
    ranks: Ranks | None = None,
    sharded: bool = False,
) -> L.Trainer:
    """A Trainer on the model's own device, without checkpoints or bars: inner loops run by the hundred.
    With several `ranks`, one data-parallel Trainer over all of them, on the launcher's process group: DDP,
    or FSDP where `sharded`; the batches are the ranks' own (`RankBatches`), so Lightning's distributed
    sampler is not used."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    if ranks is not None and ranks.world_size > 1:
        strategy = sharding_strategy(ranks) if sharded else "ddp"
        placement: dict = {"strategy": strategy, "devices": ranks.local_world_size, "num_nodes": ranks.nodes}
        placement["use_distributed_sampler"] = False
    else:
        placement = {"devices": [device.index or 0] if device.type == "cuda" else 1}
    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        **placement,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


class EpochShuffle(Sampler[int]):
    """A seeded permutation per epoch that depends only on (seed, epoch), not on how often the loader is
    iterated (Lightning iterates it more than once), so a run's data order can be reproduced elsewhere."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class RankBatches(Sampler[list[int]]):
    """The epoch's batches (`EpochShuffle` order, `batch_size` rows each), every rank taking rows rank,
    rank + world, ... of each: together the ranks train on exactly the one-process batches. A rank left
    without a row takes `placeholder`, an index whose labels are all masked: it adds nothing to the loss
    or the gradient, but the rank meets the others in the gradient all-reduce."""

    def __init__(self, size: int, batch_size: int, seed: int, ranks: Ranks, placeholder: int) -> None:
        # Named `sampler`, as in torch's BatchSampler: Lightning sets the epoch of `batch_sampler.sampler`.
        self.sampler = EpochShuffle(size, seed)
        self.batch_size, self.ranks, self.placeholder = batch_size, ranks, placeholder

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size][self.ranks.rank :: self.ranks.world_size]
            yield rows or [self.placeholder]

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)


def epoch_batches(examples: Sequence[T], batch_size: int, epochs: int, seed: int) -> list[list[T]]:
    """The batches a `LoRAFineTuneModule.fit` run in one process sees, in order, across all its epochs."""
    batches = RankBatches(len(examples), batch_size, seed, Ranks(), placeholder=len(examples))
    seen = []
    for epoch in range(epochs):
        batches.sampler.set_epoch(epoch)
        seen.extend([examples[i] for i in rows] for rows in batches)
    return seen


class LoRAFineTuneModule(L.LightningModule):
    """A fresh LoRA adapter on `base`, trained with AdamW on completion tokens.

    `seed` fixes everything random about it (the adapter's initialisation, dropout, the epochs' shuffles)
    from the start, so the result never depends on what the process ran before: a command resumed after a
    crash trains the same adapter as one that ran through.

    Memory is bounded by `memory` (`TrainingMemory`): a step's batch runs as micro-batches whose
    gradients add up to the whole batch's (the loss is the mean over the batch's labelled tokens, as
    transformers computes it), optionally with activation checkpointing; logits are never materialised
    for a whole batch (`output_head.py`)."""

    def __init__(
        self, base: PreTrainedModel, lora: LoRAConfig, lr: float, seed: int, memory: TrainingMemory | None = None
    ) -> None:
        super().__init__()
        L.seed_everything(seed, verbose=False)
        self.model: PeftModel = get_peft_model(base, peft_lora_config(lora))
        self.lr = lr
        self.seed = seed
        self.memory = memory or TrainingMemory()
        self.losses: list[float] = []
        self.automatic_optimization = False
        # The data-parallel ranks the current `fit` trains over (one: this process alone).
        self.ranks = Ranks()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss, budget = self.backward_batch(batch)
        for part in self.penalties(budget):  # each part's graph is freed before the next is built
            self.manual_backward(part)
        optimizer.step()
        self.losses.append(loss.item())
        self.log("train_loss", loss, prog_bar=False, batch_size=batch["input_ids"].shape[0])

    def backward_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Add the batch loss's gradient to the adapter's, a micro-batch at a time; returns the loss (the
        mean over the batch's labelled tokens, detached) and the largest micro-batch's padded token count."""
        # Under DDP each rank holds some of the batch's rows: the mean is over the labelled tokens of all
        # ranks, and each rank's gradient is scaled by the world size, as DDP averages the ranks' gradients.
        world = self.ranks.world_size
        labelled = int(self.over_ranks((batch["labels"][:, 1:] != IGNORE_INDEX).sum()).sum())
        loss = torch.zeros((), device=batch["labels"].device)
        parts = list(micro_batches(batch, self.memory.micro_batch_size))
        for index, part in enumerate(parts):
            log_probs, _, _ = token_scores(
                self.model,
                next_token_targets(part["labels"]),
                input_ids=part["input_ids"],
                attention_mask=part["attention_mask"],
            )
            part_loss = -log_probs.sum() / labelled
            with self.gradient_sync(index == len(parts) - 1):
                self.manual_backward(part_loss * world)
            loss += part_loss.detach()
        # Every rank must split the step's penalties alike (DDP and FSDP communicate in each forward or
        # backward): the budget is the largest micro-batch over all ranks.
        largest = torch.tensor(max(part["input_ids"].numel() for part in parts), device=loss.device)
        return self.over_ranks(loss).sum(0), int(self.over_ranks(largest).max())

    def gradient_sync(self, sync: bool) -> AbstractContextManager:
        """DDP all-reduces the gradients in every backward; a step's micro-batches accumulate locally and only
        the last one's backward sums them over the ranks (a penalty's backward after it syncs again)."""
        if sync or self.ranks.world_size == 1:
            return nullcontext()
        strategy = self.trainer.strategy
        return strategy.block_backward_sync() if isinstance(strategy, ParallelStrategy) else nullcontext()

    def over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """`value` from each data-parallel rank this module trains on, stacked along a new first dimension
        (one entry in one process)."""
        return self.all_gather(value) if self.ranks.world_size > 1 else value[None]

    def penalties(self, budget: int) -> Iterator[torch.Tensor]:
        """Terms whose sum is added to each step's loss (the regularisers); none here. Each is backwarded
        before the next is computed, so a regulariser over many rows can hold no more activations than the
        step's own micro-batches (`budget`: the largest one's padded token count)."""
        return iter(())

    def configure_model(self) -> None:
        """Under FSDP (`sharded` fit over several ranks), shard the model before the optimizer is built."""
        if is_sharded(self.trainer):
            shard(self.model, self.device_mesh["data_parallel"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=self.lr)

    def fit(
        self,
        examples: Sequence[dict[str, list[int]]],
        tokenizer: PreTrainedTokenizerBase,
        *,
        epochs: int,
        batch_size: int,
        logger: Logger | bool = False,
        callbacks: list[L.Callback] | None = None,
        ranks: Ranks | None = None,
        sharded: bool = False,
    ) -> None:
        """Train on `examples` with a Lightning Trainer (shuffled each epoch, seeded); with several `ranks`,
        data-parallel over them, each rank on its rows of every batch, the model sharded where `sharded`
        (then `self.model` stays sharded: `sharding.unsharded` makes it whole)."""
        device = self.model.device
        self.ranks = ranks = ranks or Ranks()
        placeholder = {**examples[0], "labels": [IGNORE_INDEX] * len(examples[0]["labels"])}
        loader = DataLoader(
            [*examples, placeholder],
            batch_sampler=RankBatches(len(examples), batch_size, self.seed, ranks, placeholder=len(examples)),
            collate_fn=lambda batch: pad_batch(batch, tokenizer.pad_token_id),
        )
        trainer = quiet_trainer(device, epochs, logger, callbacks, ranks, sharded)
        self.model.train()
        try:
            with activation_checkpointing(self.model, self.memory.activation_checkpointing):
                trainer.fit(self, loader)
        finally:
            release_logging(callbacks or [])
        self.model.eval()


def release_logging(callbacks: Sequence[L.Callback]) -> None:
    """Lightning binds each callback's `log` and `log_dict` to the module a fit trains, and leaves them bound.
    A callback that outlives the fit (the ReST-EM callbacks, the continual plugins) then keeps that module alive,
    with its model and optimizer state: in the demo, round 1's M-step module (0.8 GiB) into round 2."""
    for callback in callbacks:
        for name in ("log", "log_dict"):
            vars(callback).pop(name, None)


def micro_batches(batch: dict[str, torch.Tensor], size: int | None) -> Iterator[dict[str, torch.Tensor]]:
    """The batch's rows `size` at a time (None: all), each cut to its own longest row (padding is on the
    right and masked, so cutting it changes no result)."""
    rows = batch["input_ids"].shape[0]
    for start in range(0, rows, size or rows):
        width = int(batch["attention_mask"][start : start + (size or rows)].sum(-1).max())
        yield {name: tensor[start : start + (size or rows), :width] for name, tensor in batch.items()}


def set_adapter_scale(model: PeftModel, scale: float) -> None:
    """Scale every LoRA layer's update to `scale` times its trained size (0 merges nothing)."""
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                module.set_scale(adapter, scale)


@contextmanager
def adapter_off(model: PeftModel) -> Iterator[None]:
    """The base model's outputs inside (the adapter scaled to 0, which adds exactly nothing). PEFT's
    `disable_adapter` would do it by switching the adapter's `requires_grad` off and on again, and under
    FSDP the sharded parameters the optimizer trains never get it back: the M-step would stop learning."""
    set_adapter_scale(model, 0.0)
    try:
        yield
    finally:
        set_adapter_scale(model, 1.0)


@contextmanager
def activation_checkpointing(model: PreTrainedModel, enabled: bool) -> Iterator[None]:
    """transformers' activation checkpointing for the block (each decoder layer's activations are recomputed
    in backward instead of kept), switched off again after, since the policy object lives on."""
    if not enabled:
        yield
        return
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        model.gradient_checkpointing_disable()
