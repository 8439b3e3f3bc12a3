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

IGNORE_INDEX = -100
T = TypeVar("T")


def peft_lora_config(config: LoRAConfig) -> LoraConfig:
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    completion: str,
    max_length: int,
    prompt_loss: bool = False,
    eos: bool = True,
) -> dict[str, list[int]]:
    """Tokens of prompt + completion + EOS, cut at `max_length`; labels cover the completion and EOS (and
    the prompt with `prompt_loss`). A completion known to be cut short gets no EOS (`eos=False`): learning
    one would teach the model to stop there. The completion (a self-edit, a document: model-written) is text
    only: a `<|im_end|>` it spells out stays characters, never the control token (`completion_ids`)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    completion_ids = text_ids(tokenizer, completion) + ([tokenizer.eos_token_id] if eos else [])
    input_ids = (prompt_ids + completion_ids)[:max_length]
    prompt_labels = prompt_ids if prompt_loss else [IGNORE_INDEX] * len(prompt_ids)
    labels = (prompt_labels + completion_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of untrusted text, in which special tokens' spellings (a fake chat template) are plain text."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def example_length(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str) -> int:
    """Tokens of prompt + completion + EOS, as `tokenize_example` builds them before it cuts."""
    return len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + len(text_ids(tokenizer, completion)) + 1


def pad_batch(examples: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padded positions get attention 0 and label IGNORE_INDEX."""
    width = max(len(example["input_ids"]) for example in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"])
        labels[row, :length] = torch.tensor(example["labels"])
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


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
