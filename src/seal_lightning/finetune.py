"""LoRA fine-tuning of a causal LM as a LightningModule: the part the inner and outer loops share.

Both loops train a fresh PEFT adapter on (prompt, completion) examples with the loss on completion
tokens only (the inner loop's documents have an empty prompt) and padding masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from peft import LoraConfig, PeftModel, get_peft_model
from torch.utils.data import DataLoader, Sampler
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import LoRAConfig
from seal_lightning.examples import pad_batch

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
    device: torch.device, epochs: int, logger: Logger | bool = False, callbacks: list[L.Callback] | None = None
) -> L.Trainer:
    """A Trainer on the model's own device, without checkpoints or bars: inner loops run by the hundred."""
    return L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
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


def epoch_batches(examples: Sequence[T], batch_size: int, epochs: int, seed: int) -> list[list[T]]:
    """The batches a `LoRAFineTuneModule.fit` run sees, in order, across all its epochs."""
    sampler = EpochShuffle(len(examples), seed)
    batches = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = list(sampler)
        batches.extend(
            [examples[i] for i in order[start : start + batch_size]] for start in range(0, len(order), batch_size)
        )
    return batches


class LoRAFineTuneModule(L.LightningModule):
    """A fresh LoRA adapter on `base`, trained with AdamW on completion tokens.

    `seed` fixes everything random about it (the adapter's initialisation, dropout, the epochs' shuffles)
    from the start, so the result never depends on what the process ran before: a command resumed after a
    crash trains the same adapter as one that ran through."""

    def __init__(self, base: PreTrainedModel, lora: LoRAConfig, lr: float, seed: int) -> None:
        super().__init__()
        L.seed_everything(seed, verbose=False)
        self.model: PeftModel = get_peft_model(base, peft_lora_config(lora))
        self.lr = lr
        self.seed = seed
        self.losses: list[float] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.losses.append(loss.item())
        self.log("train_loss", loss, prog_bar=False, batch_size=batch["input_ids"].shape[0])
        return loss

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
    ) -> None:
        """Train on `examples` with a Lightning Trainer (shuffled each epoch, seeded)."""
        device = self.model.device
        loader = DataLoader(
            list(examples),
            batch_size=batch_size,
            sampler=EpochShuffle(len(examples), self.seed),
            collate_fn=lambda batch: pad_batch(batch, tokenizer.pad_token_id),
        )
        trainer = quiet_trainer(device, epochs, logger, callbacks)
        self.model.train()
        trainer.fit(self, loader)
        self.model.eval()
