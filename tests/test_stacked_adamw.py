import pytest
import torch

from seal_lightning.stacked_adamw import StackedAdamW


@pytest.mark.parametrize("rates", [[1e-3, 1e-3, 1e-3], [1e-3, 1e-5, 1e-2]])
def test_stacked_adamw_is_torch_adamw_per_adapter(rates):
    """Each adapter's slice moves as a torch AdamW of its own would, with its own learning rate."""
    torch.manual_seed(0)
    start = torch.randn(3, 4, 5)
    singles = [torch.nn.Parameter(start[k].clone()) for k in range(3)]
    optimizers = [torch.optim.AdamW([p], lr=rate) for p, rate in zip(singles, rates, strict=True)]
    stacked = torch.nn.Parameter(start.clone())
    optimizer = StackedAdamW([stacked], 3, lr=rates if len(set(rates)) > 1 else rates[0])
    for step in range(30):
        grad = torch.randn(3, 4, 5) * 10.0 ** torch.randint(-6, 1, (3, 1, 1)).float()
        active = torch.tensor([True, step % 2 == 0, step < 10])
        for k in range(3):
            if active[k]:
                singles[k].grad = grad[k].clone()
                optimizers[k].step()
        stacked.grad, optimizer.active = grad, active
        optimizer.step()
    for k in range(3):
        torch.testing.assert_close(stacked[k], singles[k], rtol=0, atol=1e-6)


def test_one_learning_rate_per_adapter():
    with pytest.raises(ValueError, match="3 adapters but 2 learning rates"):
        StackedAdamW([torch.nn.Parameter(torch.zeros(3, 2))], 3, lr=[1e-3, 1e-4])
