import gc
import weakref

import lightning as L
import pytest
import torch

from seal_lightning.config import LoRAConfig, TrainingMemory
from seal_lightning.examples import pad_batch, tokenize_example
from seal_lightning.finetune import LoRAFineTuneModule, activation_checkpointing, micro_batches

TEXTS = [
    ("Passage: the river is wide.", "The river is wide and slow."),
    ("Passage: Ada wrote notes.", "Ada Lovelace wrote the first published program notes in 1843."),
    ("", "A short one."),
    ("Passage: tea.", "Tea grows on hills in Assam, and the leaves are picked by hand twice a year."),
]


def examples(tokenizer):
    return [tokenize_example(tokenizer, prompt, completion, 64) for prompt, completion in TEXTS]


def batch_gradients(policy, tokenizer, memory: TrainingMemory) -> tuple[dict[str, torch.Tensor], float]:
    """The adapter's gradient and loss from one step's batch (every example), as a step computes them."""
    module = LoRAFineTuneModule(policy, LoRAConfig(rank=4, alpha=8), lr=1e-3, seed=3, memory=memory)
    # PEFT starts B at zero, so A would get no gradient: start from a trained-looking adapter instead.
    torch.manual_seed(1)
    for p in module.model.parameters():
        if p.requires_grad:
            p.data.normal_(std=0.05)
    module.model.train()
    module.manual_backward = lambda loss: loss.backward()  # no Trainer attached: plain autograd
    batch = pad_batch(examples(tokenizer), tokenizer.pad_token_id)
    try:
        with activation_checkpointing(module.model, memory.activation_checkpointing):
            loss, _ = module.backward_batch(batch)
        return {n: p.grad.clone() for n, p in module.model.named_parameters() if p.requires_grad}, loss.item()
    finally:
        module.model.unload()


def test_the_step_loss_is_transformers_causal_lm_loss(policy, tokenizer):
    grads, loss = batch_gradients(policy, tokenizer, TrainingMemory())
    module = LoRAFineTuneModule(policy, LoRAConfig(rank=4, alpha=8), lr=1e-3, seed=3)
    try:
        torch.manual_seed(1)
        for p in module.model.parameters():
            if p.requires_grad:
                p.data.normal_(std=0.05)
        module.model.train()
        expected = module.model(**pad_batch(examples(tokenizer), tokenizer.pad_token_id)).loss
        expected.backward()
        # The two computations sum float32 terms in different orders: on one AMD EPYC the losses differed by
        # 1.5e-5 at 3.75 and one gradient entry of 2,304 by 1.4e-5. A wrong loss is off by far more.
        assert loss == pytest.approx(expected.item(), rel=1e-5)
        for name, p in module.model.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(grads[name], p.grad, atol=5e-5, rtol=1e-4)
    finally:
        module.model.unload()


@pytest.mark.parametrize(
    "memory", [TrainingMemory(micro_batch_size=1), TrainingMemory(micro_batch_size=3, activation_checkpointing=True)]
)
def test_micro_batches_and_checkpointing_give_the_whole_batch_gradient(policy, tokenizer, memory):
    whole, whole_loss = batch_gradients(policy, tokenizer, TrainingMemory())
    parts, parts_loss = batch_gradients(policy, tokenizer, memory)
    assert parts_loss == pytest.approx(whole_loss, abs=1e-5)
    for name, tensor in whole.items():
        torch.testing.assert_close(parts[name], tensor, atol=1e-5, rtol=1e-4)
    assert not policy.is_gradient_checkpointing


def test_a_fit_trains_and_leaves_checkpointing_off(policy, tokenizer):
    memory = TrainingMemory(micro_batch_size=2, activation_checkpointing=True)
    module = LoRAFineTuneModule(policy, LoRAConfig(rank=4, alpha=8), lr=1e-3, seed=0, memory=memory)
    try:
        module.fit(examples(tokenizer), tokenizer, epochs=3, batch_size=4)
        assert len(module.losses) == 3 and module.losses[-1] < module.losses[0]
        assert not policy.is_gradient_checkpointing
    finally:
        module.model.unload()


def test_a_callback_does_not_keep_the_module_it_watched_alive(policy, tokenizer):
    """Lightning binds a callback's `log` to the module it trains; a callback that outlives the fit (as the
    ReST-EM callbacks do) must not keep that module, its model wrapper and optimizer state in memory."""
    watcher = L.Callback()
    module = LoRAFineTuneModule(policy, LoRAConfig(rank=4, alpha=8), lr=1e-3, seed=0)
    try:
        module.fit(examples(tokenizer), tokenizer, epochs=1, batch_size=4, callbacks=[watcher])
    finally:
        module.model.unload()
    gone = weakref.ref(module)
    del module
    gc.collect()
    assert gone() is None
    assert not {"log", "log_dict"} & set(vars(watcher))


def test_micro_batches_cover_every_row_and_cut_their_own_padding(tokenizer):
    batch = pad_batch(examples(tokenizer), tokenizer.pad_token_id)
    parts = list(micro_batches(batch, 3))
    assert [p["input_ids"].shape[0] for p in parts] == [3, 1]
    assert parts[1]["attention_mask"].all()
    assert torch.equal(
        torch.cat([p["labels"][:, : parts[1]["labels"].shape[1]] for p in parts]),
        batch["labels"][:, : parts[1]["labels"].shape[1]],
    )


def test_rank_batches_split_the_one_process_batches_and_follow_the_epoch():
    """Ranks take rows r, r + world, ... of each one-process batch; Lightning sets the epoch on
    `batch_sampler.sampler`, and the order must change with it."""
    from seal_lightning.distributed import Ranks
    from seal_lightning.finetune import RankBatches, epoch_batches

    one = RankBatches(7, 3, seed=5, ranks=Ranks(), placeholder=7)
    two = [RankBatches(7, 3, seed=5, ranks=Ranks(rank, 2), placeholder=7) for rank in range(2)]
    expected = epoch_batches(list(range(7)), 3, epochs=2, seed=5)
    seen = []
    for epoch in range(2):
        for batches in (one, *two):
            batches.sampler.set_epoch(epoch)
        seen += list(one)
        for whole, *parts in zip(one, *two, strict=True):
            assert sorted(i for part in parts for i in part if i != 7) == sorted(whole)  # 7: the placeholder
    assert seen == expected and expected[:3] != expected[3:]
    lonely = RankBatches(1, 3, seed=5, ranks=Ranks(1, 2), placeholder=1)
    assert list(lonely) == [[1]]  # no row of its own: the masked placeholder
