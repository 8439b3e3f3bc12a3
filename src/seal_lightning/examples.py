"""Training examples as token ids: a (prompt, completion) pair tokenised with its labels masked, its length,
and a padded batch. What the inner loop, the M-step, the scorer and the continual stream all feed a model;
it trains nothing itself (`finetune.py` does)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

# Labels at this value are left out of the loss (PyTorch's cross-entropy default).
IGNORE_INDEX = -100


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
