import pytest
import torch
from torch import nn

from seal_lightning.errors import ConfigError
from seal_lightning.examples import IGNORE_INDEX, pad_batch
from seal_lightning.output_head import next_token_targets, output_head, sequence_means, target_log_probs, token_scores


def full_log_probs(head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(head(hidden).float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64])
def test_chunked_log_probs_and_gradients_equal_the_full_computation(chunk_rows):
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=True).requires_grad_(False)
    hidden = torch.randn(23, 16, requires_grad=True)
    targets = torch.randint(0, 50, (23,))
    upstream = torch.randn(23)

    chunked, hits = target_log_probs(head, hidden, targets, chunk_rows)
    (chunked_grad,) = torch.autograd.grad((chunked * upstream).sum(), hidden)
    full = full_log_probs(head, hidden, targets)
    (full_grad,) = torch.autograd.grad((full * upstream).sum(), hidden)

    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked_grad, full_grad, atol=1e-5, rtol=1e-5)
    assert torch.equal(hits, head(hidden).argmax(-1) == targets)


def test_a_trainable_head_gets_its_gradient_too():
    torch.manual_seed(0)
    head = nn.Linear(8, 20)
    hidden, targets = torch.randn(5, 8), torch.randint(0, 20, (5,))
    log_probs, _ = target_log_probs(head, hidden, targets, chunk_rows=2)
    log_probs.sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_no_rows_give_empty_results():
    head = nn.Linear(4, 10).requires_grad_(False)
    log_probs, hits = target_log_probs(head, torch.zeros(0, 4, requires_grad=True), torch.zeros(0, dtype=torch.long))
    assert log_probs.shape == hits.shape == (0,)


def test_token_scores_on_the_model_equal_its_own_logits(policy, tokenizer):
    rows = [tokenizer("The capital of France is Paris.")["input_ids"], tokenizer("Two plus two is four")["input_ids"]]
    batch = pad_batch([{"input_ids": ids, "labels": ids} for ids in rows], tokenizer.pad_token_id)
    batch["labels"][0, :3] = IGNORE_INDEX
    targets = next_token_targets(batch["labels"])
    with torch.no_grad():
        log_probs, hits, where = token_scores(
            policy, targets, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        logits = policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.log_softmax(logits[where].float(), -1).gather(-1, targets[where][:, None]).squeeze(-1)
    # The model's logits come from one matmul over every position, the chunked head's from one per chunk:
    # float32 rounding of those blockings differs by up to 2.5e-5 here at log-probs near -0.3 (an AMD EPYC).
    # A chunking error would be of order 1; the exact-math check on small shapes is the test above.
    torch.testing.assert_close(log_probs, expected, atol=1e-4, rtol=1e-5)
    assert torch.equal(hits, logits[where].argmax(-1) == targets[where])
    # transformers' own loss is the mean of -log p over the labelled tokens.
    loss = policy(**batch).loss
    torch.testing.assert_close(-log_probs.mean(), loss, atol=1e-5, rtol=1e-5)


def test_next_token_targets_shift_labels_left():
    labels = torch.tensor([[IGNORE_INDEX, 5, 6]])
    assert next_token_targets(labels).tolist() == [[5, 6, IGNORE_INDEX]]


def test_sequence_means_leave_empty_groups_at_zero():
    means = sequence_means(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3)
    assert means.tolist() == [2.0, 0.0, 5.0]


def test_a_model_that_transforms_its_logits_is_refused(policy, monkeypatch):
    monkeypatch.setattr(policy.config, "final_logit_softcapping", 30.0, raising=False)
    with pytest.raises(ConfigError, match="final_logit_softcapping"):
        output_head(policy)
