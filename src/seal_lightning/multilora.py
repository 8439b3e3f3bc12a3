"""Many LoRA adapters on one frozen base, trained and scored together: the batched inner loop.

SEAL's cost is the inner loop: k self-edits x seeds independent LoRA runs per passage. Here K
adapters (of one passage or several) are stacked into one tensor per target module, and every step
runs one forward and backward over the frozen base for all of them:
- the step's documents are packed into rows (position ids restart per document, so transformers
  builds a block-diagonal causal mask and no document sees another);
- each token goes through its own adapter, as two batched matmuls per layer;
- adapters start at staggered steps, so that every step carries a similar number of tokens.

Each adapter comes out as if it had been trained alone with PEFT, because
- it starts from PEFT's own initialisation under the same seed,
- it sees the same batches in the same order (the same seeded DataLoader per adapter),
- its loss is the mean over its own tokens (adapters share no parameter, so the summed loss gives
  each one exactly its own gradient),
- `StackedAdamW` is AdamW with a step count per adapter, and adapters without a batch in a step
  (not started yet, or finished) are not touched by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from peft import get_peft_model
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig, LoRAConfig
from seal_lightning.finetune import IGNORE_INDEX, peft_lora_config, quiet_trainer
from seal_lightning.packing import PackedBatch, pack, shifted_labels, step_batches


class Routing:
    """Which adapter each token of the current forward goes through (-1: none).

    The layers gather each adapter's tokens into one zero-padded slab, [adapters present, most tokens,
    features], so the adapters run as two batched matmuls per layer whatever the number of adapters,
    and scatter the results back. The indices depend only on the input's shape, so they are built once
    per forward and shared by every layer.
    """

    def __init__(self) -> None:
        self.token_adapter: torch.Tensor | None = None  # [rows, length]
        self.row_adapter: torch.Tensor | None = None  # [rows], for generation, where the length grows
        self._cache: tuple[tuple[int, ...], RoutingIndex] | None = None

    def set_tokens(self, token_adapter: torch.Tensor) -> None:
        self.token_adapter, self.row_adapter, self._cache = token_adapter, None, None

    def set_rows(self, row_adapter: torch.Tensor) -> None:
        self.token_adapter, self.row_adapter, self._cache = None, row_adapter, None

    def index(self, shape: tuple[int, ...]) -> RoutingIndex:
        """The gather/scatter indices for an input of `shape` (its last dimension is the features)."""
        key = tuple(shape[:-1])
        if self._cache is None or self._cache[0] != key:
            if self.token_adapter is not None:
                flat = self.token_adapter.reshape(-1)
            else:
                assert self.row_adapter is not None, "set the routing before a forward"
                flat = self.row_adapter[:, None].expand(key).reshape(-1)
            self._cache = (key, RoutingIndex.build(flat))
        return self._cache[1]


@dataclass
class RoutingIndex:
    """For T flattened tokens: `adapters` [P] present, `slab` [P, width] token positions per adapter
    (T for padding: a zero row), and `back` [T] each token's position in the flattened slab (P * width
    for a token without an adapter: a zero row)."""

    adapters: torch.Tensor
    slab: torch.Tensor
    back: torch.Tensor

    @classmethod
    def build(cls, token_adapter: torch.Tensor) -> RoutingIndex:
        tokens = token_adapter.numel()
        routed = (token_adapter >= 0).nonzero().squeeze(-1)
        order = routed[torch.argsort(token_adapter[routed], stable=True)]
        adapters, counts = torch.unique_consecutive(token_adapter[order], return_counts=True)
        width = int(counts.max()) if counts.numel() else 0
        # Slot of each routed token inside its adapter's row of the slab.
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(order.numel(), device=order.device) - torch.repeat_interleave(starts, counts)
        row = torch.repeat_interleave(torch.arange(adapters.numel(), device=order.device), counts)
        slab = torch.full((adapters.numel(), width), tokens, dtype=torch.long, device=order.device)
        slab[row, slot] = order
        back = torch.full((tokens,), adapters.numel() * width, dtype=torch.long, device=order.device)
        back[order] = row * width + slot
        return cls(adapters, slab, back)


class StackedLoRALinear(nn.Module):
    """A frozen linear layer plus K LoRA adapters, [K, r, in] and [K, out, r], routed per token.

    The adapters, their compute and (through them) their optimizer state stay in float32 whatever the base
    dtype, as PEFT keeps a LoRA adapter on a bfloat16 model: the input is cast up, the update is added to
    the base output in float32, and the sum is cast back to the base dtype.
    """

    def __init__(
        self, base: nn.Linear, initial: list[tuple[torch.Tensor, torch.Tensor]], scaling: float, routing: Routing
    ):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.stack([a for a, _ in initial]).float())
        self.lora_B = nn.Parameter(torch.stack([b for _, b in initial]).float())
        self.scaling = scaling
        self.routing = routing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        index = self.routing.index(tuple(x.shape))
        rows = x.reshape(-1, x.shape[-1]).to(self.lora_A.dtype)
        # index_select's backward is an index_add: each adapter gets exactly its own tokens' gradient.
        slab = with_zero_row(rows).index_select(0, index.slab.view(-1))
        a_weights = self.lora_A.index_select(0, index.adapters)
        b_weights = self.lora_B.index_select(0, index.adapters)
        hidden = torch.bmm(slab.view(*index.slab.shape, -1), a_weights.transpose(1, 2))
        delta = torch.bmm(hidden, b_weights.transpose(1, 2)) * self.scaling
        routed = with_zero_row(delta.reshape(-1, out.shape[-1])).index_select(0, index.back).view(out.shape)
        return (out + routed).to(out.dtype)


def with_zero_row(rows: torch.Tensor) -> torch.Tensor:
    """`rows` [n, features] and a zero row at index n, where the routing sends padding and unrouted tokens."""
    return torch.cat([rows, rows.new_zeros(1, rows.shape[-1])])


class StackedAdamW(torch.optim.Optimizer):
    """torch.optim.AdamW's update, per adapter: its own step count, and only adapters marked active move.

    The update reads and writes the active adapters' slices only, so a step late in a stack, where a
    few long self-edits still train, costs in proportion to those few.
    """

    def __init__(self, params: Sequence[nn.Parameter], num_adapters: int, lr: float, weight_decay: float = 0.01):
        super().__init__(params, {"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay})
        self.active = torch.ones(num_adapters, dtype=torch.bool)
        self.steps = torch.zeros(num_adapters)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.steps += self.active.float()
        ids = self.active.nonzero().squeeze(-1)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                on_device = ids.to(param.device)
                steps = self.steps[ids].view((-1,) + (1,) * (param.dim() - 1)).to(param.device)
                grad = param.grad.index_select(0, on_device)
                exp_avg = state["exp_avg"].index_select(0, on_device).lerp_(grad, 1 - beta1)
                exp_avg_sq = (
                    state["exp_avg_sq"].index_select(0, on_device).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                )
                denom = (exp_avg_sq.sqrt() / (1 - beta2**steps).sqrt()).add_(eps)
                updated = param.index_select(0, on_device).mul_(1 - lr * decay)
                updated.sub_((lr / (1 - beta1**steps)) * exp_avg / denom)
                param.index_copy_(0, on_device, updated)
                state["exp_avg"].index_copy_(0, on_device, exp_avg)
                state["exp_avg_sq"].index_copy_(0, on_device, exp_avg_sq)
        return loss


def labelled_log_probs(model: PreTrainedModel, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities over the vocabulary at each labelled position, and where those are: the
    vocabulary projection runs on labelled positions only, so a packed batch never materialises
    logits for every token."""
    hidden = model.base_model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).last_hidden_state
    where = batch.labels != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[where]).float()
    return torch.log_softmax(logits, dim=-1), where


def target_log_probs(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return log_probs.gather(-1, targets[:, None]).squeeze(-1)


def group_means(values: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean of `values` per group id (0..num_groups-1); empty groups give 0."""
    sums = values.new_zeros(num_groups).index_add(0, groups, values)
    counts = values.new_zeros(num_groups).index_add(0, groups, torch.ones_like(values))
    return sums / counts.clamp(min=1)


class MultiLoRAModel:
    """Stacked adapters installed into a base model; `remove()` puts the original layers back."""

    def __init__(self, base: PreTrainedModel, lora: LoRAConfig, seeds: Sequence[int]) -> None:
        self.base = base
        self.lora = lora
        self.num_adapters = len(seeds)
        self.routing = Routing()
        base.requires_grad_(False)
        initial = [peft_initial_weights(base, lora, seed) for seed in seeds]
        self.layers: dict[str, StackedLoRALinear] = {}
        for name in initial[0]:
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name)
            layer = StackedLoRALinear(
                getattr(parent, child), [weights[name] for weights in initial], lora.alpha / lora.rank, self.routing
            )
            setattr(parent, child, layer)
            self.layers[name] = layer

    @torch.no_grad()
    def sequence_scores(self, sequences: Sequence[tuple[int, list[int], list[int]]]) -> dict[str, list[float]]:
        """Per (adapter, input_ids, labels) sequence, over its labelled tokens: the mean log-probability
        (`answer_loglik`) and the share that are the top prediction (`token_accuracy`)."""
        batch = pack([(k, ids, shifted_labels(labels)) for k, ids, labels in sequences], self.num_adapters, 0)
        batch = batch.to(self.base.device)
        self.routing.set_tokens(batch.token_adapter)
        log_probs, where = labelled_log_probs(self.base, batch)
        targets, groups = batch.labels[where], batch.token_sequence[where]
        hits = (log_probs.argmax(-1) == targets).float()
        return {
            "answer_loglik": group_means(target_log_probs(log_probs, targets), groups, len(sequences)).tolist(),
            "token_accuracy": group_means(hits, groups, len(sequences)).tolist(),
        }

    def parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.layers.values() for p in (layer.lora_A, layer.lora_B)]

    def remove(self) -> None:
        for name, layer in self.layers.items():
            parent_name, _, child = name.rpartition(".")
            setattr(self.base.get_submodule(parent_name), child, layer.base)
        self.layers = {}

    def adapter_state(self, k: int) -> dict[str, torch.Tensor]:
        """Adapter k in PEFT's saved-adapter key layout."""
        state = {}
        for name, layer in self.layers.items():
            state[f"base_model.model.{name}.lora_A.weight"] = layer.lora_A[k].detach().clone().contiguous()
            state[f"base_model.model.{name}.lora_B.weight"] = layer.lora_B[k].detach().clone().contiguous()
        return state

    def export(self, k: int, folder: Path) -> Path:
        """Adapter k as a standard PEFT adapter folder (PeftModel.from_pretrained and vLLM load it)."""
        folder.mkdir(parents=True, exist_ok=True)
        config = peft_lora_config(self.lora)
        config.base_model_name_or_path = getattr(self.base, "name_or_path", None)
        config.save_pretrained(str(folder))
        save_file(self.adapter_state(k), str(folder / "adapter_model.safetensors"))
        return folder


def peft_initial_weights(
    base: PreTrainedModel, lora: LoRAConfig, seed: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT's own initial (A, B) per target module under `seed`, exactly as a sequential run starts."""
    L.seed_everything(seed, verbose=False)
    peft_model = get_peft_model(base, peft_lora_config(lora))
    weights = {}
    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            key = name[len(prefix) :] if name.startswith(prefix) else name
            weights[key] = (
                module.lora_A["default"].weight.detach().clone(),
                module.lora_B["default"].weight.detach().clone(),
            )
    peft_model.unload()
    return weights


class BatchedInnerLoRAModule(L.LightningModule):
    """Trains K stacked adapters with one forward/backward per step (see the module docstring)."""

    def __init__(self, multi: MultiLoRAModel, lr: float) -> None:
        super().__init__()
        self.multi = multi
        self.base = multi.base
        self.lr = lr
        self.adapter_losses: list[torch.Tensor] = []
        self.optimizer: StackedAdamW | None = None

    def training_step(self, batch: PackedBatch, batch_idx: int) -> torch.Tensor:
        # Each adapter's loss is the mean over its own tokens, as PEFT's causal-LM loss would be alone.
        self.multi.routing.set_tokens(batch.token_adapter)
        log_probs, where = labelled_log_probs(self.base, batch)
        token_log_probs = target_log_probs(log_probs, batch.labels[where])
        losses = -group_means(token_log_probs, batch.token_adapter[where], self.multi.num_adapters)
        self.adapter_losses.append(torch.where(batch.active, losses.detach(), torch.nan))
        assert self.optimizer is not None
        self.optimizer.active = batch.active
        return losses.sum()

    def configure_optimizers(self) -> StackedAdamW:
        self.optimizer = StackedAdamW(self.multi.parameters(), self.multi.num_adapters, lr=self.lr)
        return self.optimizer

    def transfer_batch_to_device(self, batch: PackedBatch, device: torch.device, dataloader_idx: int) -> PackedBatch:
        return batch.to(device)


def train_adapters(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Sequence[dict[str, list[int]]]],
    seeds: Sequence[int],
    config: InnerConfig,
) -> tuple[MultiLoRAModel, BatchedInnerLoRAModule]:
    """Install K adapters (adapter k: tokenized documents[k], seed[k]) and train them together."""
    multi = MultiLoRAModel(base, config.lora, seeds)
    module = BatchedInnerLoRAModule(multi, config.lr)
    steps = step_batches(documents, seeds, config.epochs, config.batch_size, tokenizer.pad_token_id)
    trainer = quiet_trainer(next(base.parameters()).device, epochs=1)
    base.train()
    trainer.fit(module, DataLoader(steps, batch_size=None, shuffle=False))
    base.eval()
    return multi, module


@contextmanager
def stacked_adapters(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Sequence[dict[str, list[int]]]],
    seeds: Sequence[int],
    config: InnerConfig,
) -> Iterator[MultiLoRAModel]:
    """Trained stacked adapters for the duration of the block; the base model is restored afterwards."""
    multi, _ = train_adapters(base, tokenizer, documents, seeds, config)
    try:
        yield multi
    finally:
        multi.remove()
