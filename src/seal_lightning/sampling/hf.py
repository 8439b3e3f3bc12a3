"""Sampling with `transformers.generate` and greedy answering, batched with left padding."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import SamplerConfig
from seal_lightning.sampling.base import AdapterAnswerer, Completion


@contextmanager
def generating(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Iterator[None]:
    """Eval mode and left padding (so new tokens follow every prompt directly), restored afterwards."""
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)


@torch.no_grad()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    num_return_sequences: int = 1,
    temperature: float | None = None,
    top_p: float | None = None,
) -> list[list[Completion]]:
    """Completions for each prompt: greedy when `temperature` is None, else sampled. A completion that
    holds no end-of-sequence token stopped at `max_new_tokens`: it is marked truncated."""
    sampled = temperature is not None
    options = {"do_sample": True, "temperature": temperature, "top_p": top_p} if sampled else {"do_sample": False}
    stops = end_of_sequence_ids(model, tokenizer)
    results: list[list[Completion]] = []
    with generating(model, tokenizer):
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_return_sequences,
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
            generated = output[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
            ended = torch.isin(generated, torch.tensor(stops, device=generated.device)).any(dim=-1).tolist()
            completions = [Completion(text, truncated=not end) for text, end in zip(texts, ended, strict=True)]
            for index in range(len(chunk)):
                results.append(completions[index * num_return_sequences : (index + 1) * num_return_sequences])
    return results


@torch.no_grad()
def greedy_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    route: Callable[[torch.Tensor], None] | None = None,
    groups: Sequence[Hashable] | None = None,
) -> list[str]:
    """Greedy completions that compute each shared prompt prefix once and drop each row, and its KV
    cache, as soon as it ends.

    Prompts with equal `groups` run through the same weights (one adapter; None: all prompts alike, or each
    apart under `route`), so their common token prefix (chat template, instructions, the passage's title) is
    run once and its KV cache copied to every member: an item's questions share 47 of their 70 tokens.
    `generate` computes every row until the longest one ends; answers' lengths vary ten-fold (90 routed
    answers on the built-in model: mean 18 tokens, the longest 64), so most of its row-steps were padding.
    The tokens are `generate`'s greedy ones. `route(rows)` hears which prompts (indices into `prompts`)
    the next forward's rows are, whenever they change, for a model that routes rows to adapters.
    """
    if groups is None:
        groups = range(len(prompts)) if route is not None else [0] * len(prompts)
    groups = list(groups)
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    stops = torch.tensor(end_of_sequence_ids(model, tokenizer), device=model.device)
    tokens: list[list[int]] = [[] for _ in prompts]
    with generating(model, tokenizer):
        for start in range(0, len(prompts), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(prompts)), device=model.device)
            cache = DynamicCache(config=model.config)
            input_ids, mask = prefilled_prefixes(model, tokenizer, encoded, groups, rows, cache, route)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
            if route is not None:
                route(rows)
            for step in range(max_new_tokens):
                logits = model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits
                chosen = logits[:, -1].argmax(-1)
                for row, token in zip(rows.tolist(), chosen.tolist(), strict=True):
                    tokens[row].append(token)
                going = (~torch.isin(chosen, stops)).nonzero().squeeze(-1)
                if going.numel() == 0 or step == max_new_tokens - 1:
                    break
                if going.numel() < len(rows):
                    cache.batch_select_indices(going)
                    rows, mask, chosen, positions = rows[going], mask[going], chosen[going], positions[going]
                    if route is not None:
                        route(rows)
                input_ids = chosen[:, None]
                mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                positions = positions[:, -1:] + 1
    return tokenizer.batch_decode(tokens, skip_special_tokens=True)


def prefilled_prefixes(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: list[list[int]],
    groups: list[Hashable],
    rows: torch.Tensor,
    cache: DynamicCache,
    route: Callable[[torch.Tensor], None] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run each group's common prefix once into `cache`, copied to its members' rows; return what is left
    to run (each row's own suffix, left-padded) and the attention mask over prefix and suffix."""
    chunk = rows.tolist()
    members: dict[Hashable, list[int]] = {}
    for row in chunk:
        members.setdefault(groups[row], []).append(row)
    lengths = {group: common_prefix_length([encoded[row] for row in shared]) for group, shared in members.items()}
    sharing = [group for group in members if lengths[group] > 0]
    if not sharing:
        return left_padded(tokenizer, [encoded[row] for row in chunk], model.device)
    heads = [members[group][0] for group in sharing]
    prefixes = [encoded[head][: lengths[groups[head]]] for head in heads]
    prefix_ids, prefix_mask = left_padded(tokenizer, prefixes, model.device)
    if route is not None:
        route(torch.tensor(heads, device=model.device))
    positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    model(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,  # the prefix's logits are not used; one position keeps the output head's cost small
    )
    # A row of a group with nothing to share takes any prefix row's cache, all of it masked out.
    slot = {group: index for index, group in enumerate(sharing)}
    expand = torch.tensor([slot.get(groups[row], 0) for row in chunk], device=model.device)
    cache.batch_select_indices(expand)
    own = torch.tensor([groups[row] in slot for row in chunk], device=model.device)
    suffixes = [encoded[row][lengths[groups[row]] :] for row in chunk]
    suffix_ids, suffix_mask = left_padded(tokenizer, suffixes, model.device)
    return suffix_ids, torch.cat([prefix_mask[expand] * own[:, None], suffix_mask], dim=1)


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """The longest prefix all `sequences` share that leaves each at least one token of its own."""
    length, shortest = 0, min(len(sequence) for sequence in sequences)
    while length < shortest - 1 and all(sequence[length] == sequences[0][length] for sequence in sequences):
        length += 1
    return length


def left_padded(
    tokenizer: PreTrainedTokenizerBase, sequences: list[list[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the left so every row's last token is its own."""
    batch = tokenizer.pad({"input_ids": sequences}, padding=True, padding_side="left", return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def end_of_sequence_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokens `generate` stops at (the generation config may name several) and the tokenizer's EOS."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [*ids, tokenizer.eos_token_id] if i is not None})


class TransformersSampler:
    """The fallback backend: the policy model in this process, sampled with `generate`. It refers to the
    model without holding it: the model belongs to the caller, and a policy the caller is done with (a
    round's, once the round ends) is freed at once instead of staying in memory beside the next one."""

    def __init__(self, config: SamplerConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.config = config
        self.policy = weakref.ref(model)
        self.tokenizer = tokenizer

    @property
    def model(self) -> PreTrainedModel:
        model = self.policy()
        if model is None:
            raise RuntimeError("the sampler's policy was freed: pass the policy to sample from (update_policy)")
        return model

    def sample(self, prompts: list[str], k: int, seeds: Sequence[int]) -> list[list[Completion]]:
        """Each run of prompts with one seed is drawn from the stream that seed starts, `group_size(k)`
        prompts per `generate` call."""
        results: list[list[Completion]] = []
        start = 0
        for seed, run in groupby(seeds):
            count = len(list(run))
            torch.manual_seed(seed)
            results += generate_texts(
                self.model,
                self.tokenizer,
                prompts[start : start + count],
                max_new_tokens=self.config.max_new_tokens,
                batch_size=self.group_size(k),
                num_return_sequences=k,
                temperature=self.config.temperature,
                top_p=self.config.top_p,
            )
            start += count
        return results

    def group_size(self, k: int) -> int:
        """Each prompt is repeated k times in a batch, so batch_size sequences fit in one call."""
        return max(1, self.config.batch_size // k)

    def update_policy(self, model: PreTrainedModel, path: str) -> None:
        self.policy = weakref.ref(model)

    def answerer(self, max_new_tokens: int) -> AdapterAnswerer | None:
        """None: answers through adapters come from the scorer's own routed greedy batch."""
        return None

    def close(self) -> None:
        """Nothing to release: the model belongs to the caller."""
