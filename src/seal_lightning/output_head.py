"""log p(target) through the vocabulary projection a chunk of positions at a time, never all logits at once.

A causal LM's logits are positions x vocabulary (49,152 for the built-in model, 152,064 for Qwen2.5): at
the M-step's 10 x 1,024 tokens that is 2 GB in float32, and autograd would keep it and its softmax for
backward. Training and scoring here need only log p(target) at labelled positions and whether the target
is the top prediction, so `target_log_probs` projects `CHUNK_ROWS` positions at a time and, when a
gradient is wanted, keeps for backward only d log p(target) / d hidden per position (hidden-sized, from
the chunk's softmax): the exact gradient with no recomputation, as fused linear cross-entropy kernels do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel

from seal_lightning.errors import ConfigError
from seal_lightning.examples import IGNORE_INDEX

CHUNK_ROWS = 256

# Config fields of models whose logits are more than the output embedding of the last hidden state.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale")


def output_head(model: PreTrainedModel) -> nn.Linear:
    """The vocabulary projection, refused (one line) for a model that transforms its logits after it."""
    for name in LOGIT_TRANSFORMS:
        if getattr(model.config, name, None):
            raise ConfigError(
                f"model.name: {type(model).__name__} transforms its logits ({name}), which seal-lightning's "
                "log-probabilities (output_head.py) do not apply"
            )
    return model.get_output_embeddings()


def decoder_states(model: PreTrainedModel, **inputs: Any) -> torch.Tensor:
    """The last hidden state of every position: the model without its vocabulary projection."""
    return model.get_decoder()(**inputs, use_cache=False).last_hidden_state


def token_scores(
    model: PreTrainedModel, targets: torch.Tensor, **inputs: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At every position with a target (`targets[b, t]`: the token position t predicts, IGNORE_INDEX where
    none): log p(target), whether it is the top prediction, and the mask of those positions."""
    where = targets != IGNORE_INDEX
    hidden = decoder_states(model, **inputs)[where]
    log_probs, hits = target_log_probs(output_head(model), hidden, targets[where])
    return log_probs, hits, where


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """transformers' labels (labels[b, t] is predicted at t - 1) as the targets of each position."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def sequence_means(values: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean of `values` per group id (0..num_groups-1): a sequence's mean over its tokens; empty groups give 0."""
    sums = values.new_zeros(num_groups).index_add(0, groups, values)
    counts = values.new_zeros(num_groups).index_add(0, groups, torch.ones_like(values))
    return sums / counts.clamp(min=1)


def target_log_probs(
    head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor, chunk_rows: int = CHUNK_ROWS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `hidden` ([N, d]): log p(targets[n]) in float32 (differentiable in `hidden`) and whether
    the target is the top prediction. A trainable head falls back to plain autograd over full logits."""
    if head.weight.requires_grad or (head.bias is not None and head.bias.requires_grad):
        logits = head(hidden).float()
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        return log_probs, logits.argmax(-1) == targets
    return ChunkedTargetLogProb.apply(hidden, head.weight, head.bias, targets, chunk_rows)


class ChunkedTargetLogProb(torch.autograd.Function):
    """`target_log_probs` for a frozen head: forward in chunks, backward from the kept slopes."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk_rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = hidden.new_empty(hidden.shape[0], dtype=torch.float32)
        hits = torch.empty_like(targets, dtype=torch.bool)
        slopes = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        # Every chunk's logits go into one buffer and are worked on in place. With fresh tensors per chunk
        # (logits, logsumexp's temporary, the probabilities) the process grew by about a chunk's logits
        # per chunk under both mimalloc and glibc, so chunks bounded little (README, Memory).
        buffer = hidden.new_empty(min(chunk_rows, hidden.shape[0]), weight.shape[0])
        for start in range(0, hidden.shape[0], chunk_rows):
            chunk = slice(start, start + chunk_rows)
            wanted = targets[chunk]
            logits = torch.matmul(hidden[chunk], weight.t(), out=buffer[: wanted.shape[0]])
            if bias is not None:
                logits.add_(bias)
            logits = logits.float()  # a copy only for half-precision weights
            maxes = logits.amax(-1)
            hits[chunk] = logits.argmax(-1) == wanted
            target_logits = logits.gather(-1, wanted[:, None]).squeeze(-1)
            sums = logits.sub_(maxes[:, None]).exp_().sum(-1)
            log_probs[chunk] = target_logits - maxes - sums.log()
            if slopes is not None:
                # d log softmax(W h)[t] / d h = W[t] - softmax(W h) @ W
                probs = logits.div_(sums[:, None]).to(weight.dtype)
                slopes[chunk] = weight[wanted] - probs @ weight
        if slopes is not None:
            ctx.save_for_backward(slopes)
        ctx.mark_non_differentiable(hits)
        return log_probs, hits

    @staticmethod
    def backward(ctx: Any, grad_log_probs: torch.Tensor, grad_hits: torch.Tensor | None) -> tuple[Any, ...]:
        (slopes,) = ctx.saved_tensors
        return grad_log_probs[:, None].to(slopes.dtype) * slopes, None, None, None, None
