"""Many LoRA adapters on one frozen base, trained and scored together: the batched inner loop.

SEAL's cost is the inner loop: k self-edits x seeds independent LoRA runs per passage. Here K
adapters (of one passage or several) are stacked into one tensor per target module, and every step
runs one forward and backward over the frozen base for all of them:
- the step's documents are packed into rows (position ids restart per document, so transformers
  builds a block-diagonal causal mask and no document sees another);
- each token goes through its own adapter, as two batched matmuls per layer (`stacked_lora.py`);
- adapters start at staggered steps, so that every step carries a similar number of tokens.

Each adapter comes out as if it had been trained alone with PEFT, because
- it starts from PEFT's own initialisation under the same seed,
- it sees the same batches in the same order (the same seeded DataLoader per adapter),
- its loss is the mean over its own tokens (adapters share no parameter, so the summed loss gives
  each one exactly its own gradient),
- `StackedAdamW` (`stacked_adamw.py`) is AdamW with a step count per adapter, and adapters without a batch in a step
  (not started yet, or finished) are not touched by it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from seal_lightning.config import InnerConfig, LoRAConfig
from seal_lightning.examples import IGNORE_INDEX
from seal_lightning.finetune import activation_checkpointing, peft_lora_config, quiet_trainer
from seal_lightning.output_head import sequence_means, token_scores
from seal_lightning.packing import PackedBatch, pack, shifted_labels, step_batches
from seal_lightning.stacked_adamw import StackedAdamW
from seal_lightning.stacked_lora import Routing, StackedLoRALinear

# One adapter's (A, B) per target module, keyed by the module's name in the base model.
AdapterWeights = dict[str, tuple[torch.Tensor, torch.Tensor]]


class MultiLoRAModel:
    """Stacked adapters installed into a base model; `remove()` puts the original layers back."""

    def __init__(self, base: PreTrainedModel, lora: LoRAConfig, initial: Sequence[AdapterWeights]) -> None:
        """Install adapters with the given (A, B) per target module: one `AdapterWeights` per adapter."""
        self.base = base
        self.lora = lora
        self.num_adapters = len(initial)
        self.routing = Routing()
        base.requires_grad_(False)
        self.layers: dict[str, StackedLoRALinear] = {}
        for name in initial[0]:
            parent_name, _, child = name.rpartition(".")
            parent = base.get_submodule(parent_name)
            layer = StackedLoRALinear(
                getattr(parent, child), [weights[name] for weights in initial], lora.alpha / lora.rank, self.routing
            )
            setattr(parent, child, layer)
            self.layers[name] = layer

    @classmethod
    def from_seeds(cls, base: PreTrainedModel, lora: LoRAConfig, seeds: Sequence[int]) -> MultiLoRAModel:
        """Fresh adapters, each initialised as PEFT would under its seed."""
        return cls(base, lora, [peft_initial_weights(base, lora, seed) for seed in seeds])

    @torch.no_grad()
    def sequence_scores(self, sequences: Sequence[tuple[int, list[int], list[int]]]) -> dict[str, list[float]]:
        """Per (adapter, input_ids, labels) sequence, over its labelled tokens: the mean log-probability
        (`answer_loglik`) and the share that are the top prediction (`token_accuracy`)."""
        batch = pack([(k, ids, shifted_labels(labels)) for k, ids, labels in sequences], self.num_adapters, 0)
        batch = batch.to(self.base.device)
        self.routing.set_tokens(batch.token_adapter)
        log_probs, hits, where = token_scores(
            self.base, batch.labels, input_ids=batch.input_ids, position_ids=batch.position_ids
        )
        groups = batch.token_sequence[where]
        return {
            "answer_loglik": sequence_means(log_probs, groups, len(sequences)).tolist(),
            "token_accuracy": sequence_means(hits.float(), groups, len(sequences)).tolist(),
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


def peft_initial_weights(base: PreTrainedModel, lora: LoRAConfig, seed: int) -> AdapterWeights:
    """PEFT's own initial (A, B) per target module under `seed`, exactly as a sequential run starts."""
    L.seed_everything(seed, verbose=False)
    peft_model = get_peft_model(base, peft_lora_config(lora))
    weights = peft_adapter_weights(peft_model)
    peft_model.unload()
    return weights


def peft_adapter_weights(peft_model: PeftModel) -> AdapterWeights:
    """A copy of a PEFT model's (A, B) per target module (its "default" adapter), keyed by module name."""
    weights = {}
    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            key = name[len(prefix) :] if name.startswith(prefix) else name
            weights[key] = (
                module.lora_A["default"].weight.detach().clone(),
                module.lora_B["default"].weight.detach().clone(),
            )
    return weights


class BatchedInnerLoRAModule(L.LightningModule):
    """Trains K stacked adapters with one forward/backward per step (see the module docstring), or one per
    `micro_batch_size` packed rows, whose gradients add up to the step's."""

    def __init__(self, multi: MultiLoRAModel, lrs: Sequence[float], micro_batch_size: int | None = None) -> None:
        super().__init__()
        self.multi = multi
        self.base = multi.base
        self.lrs = list(lrs)
        self.micro_batch_size = micro_batch_size
        self.adapter_losses: list[torch.Tensor] = []
        self.optimizer: StackedAdamW | None = None
        self.automatic_optimization = False

    def training_step(self, batch: PackedBatch, batch_idx: int) -> None:
        # Each adapter's loss is the mean over its own tokens of the whole step, as PEFT's causal-LM loss
        # would be alone: a part adds its tokens' log-probabilities over the step's count of them.
        optimizer = self.optimizers()
        optimizer.zero_grad()
        labelled = batch.token_adapter[batch.labels != IGNORE_INDEX]
        counts = torch.bincount(labelled, minlength=self.multi.num_adapters).clamp(min=1)
        losses = torch.zeros(self.multi.num_adapters, device=counts.device)
        for part in batch.row_parts(self.micro_batch_size):
            self.multi.routing.set_tokens(part.token_adapter)
            log_probs, _, where = token_scores(
                self.base, part.labels, input_ids=part.input_ids, position_ids=part.position_ids
            )
            sums = log_probs.new_zeros(self.multi.num_adapters).index_add(0, part.token_adapter[where], log_probs)
            part_losses = -sums / counts
            self.manual_backward(part_losses.sum())
            losses += part_losses.detach()
        self.adapter_losses.append(torch.where(batch.active, losses, torch.nan))
        assert self.optimizer is not None
        self.optimizer.active = batch.active
        optimizer.step()

    def configure_optimizers(self) -> StackedAdamW:
        self.optimizer = StackedAdamW(self.multi.parameters(), self.multi.num_adapters, lr=self.lrs)
        return self.optimizer

    def transfer_batch_to_device(self, batch: PackedBatch, device: torch.device, dataloader_idx: int) -> PackedBatch:
        return batch.to(device)


def stack_key(config: InnerConfig) -> str:
    """What inner loops must share to train in one stack: everything but the learning rate, the epochs and
    the batch size, which each adapter has its own of (an ARC self-edit chooses its lr and epochs)."""
    return repr(dataclasses.replace(config, lr=0.0, epochs=0, batch_size=0))


def train_adapters(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Sequence[dict[str, list[int]]]],
    seeds: Sequence[int],
    configs: Sequence[InnerConfig],
) -> tuple[MultiLoRAModel, BatchedInnerLoRAModule]:
    """Install K adapters (adapter k: tokenized documents[k], seed[k], configs[k]'s lr, epochs and batch
    size) and train them together."""
    if len({stack_key(config) for config in configs}) != 1:
        raise ValueError("stacked inner loops must share their settings other than lr, epochs and batch_size")
    shared = configs[0]
    multi = MultiLoRAModel.from_seeds(base, shared.lora, seeds)
    module = BatchedInnerLoRAModule(multi, [config.lr for config in configs], shared.memory.micro_batch_size)
    steps = step_batches(
        documents,
        seeds,
        [config.epochs for config in configs],
        [config.batch_size for config in configs],
        tokenizer.pad_token_id,
    )
    trainer = quiet_trainer(next(base.parameters()).device, epochs=1)
    base.train()
    with activation_checkpointing(base, shared.memory.activation_checkpointing):
        trainer.fit(module, DataLoader(steps, batch_size=None, shuffle=False))
    base.eval()
    return multi, module


@contextmanager
def stacked_adapters(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Sequence[Sequence[dict[str, list[int]]]],
    seeds: Sequence[int],
    configs: Sequence[InnerConfig],
) -> Iterator[MultiLoRAModel]:
    """Trained stacked adapters for the duration of the block; the base model is restored afterwards."""
    multi, _ = train_adapters(base, tokenizer, documents, seeds, configs)
    try:
        yield multi
    finally:
        multi.remove()
