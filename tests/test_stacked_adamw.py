import torch

from seal_lightning.stacked_adamw import StackedAdamW


def test_stacked_adamw_is_torch_adamw_per_adapter():
    torch.manual_seed(0)
    start = torch.randn(3, 4, 5)
    singles = [torch.nn.Parameter(start[k].clone()) for k in range(3)]
    optimizers = [torch.optim.AdamW([p], lr=1e-3) for p in singles]
    stacked = torch.nn.Parameter(start.clone())
    optimizer = StackedAdamW([stacked], 3, lr=1e-3)
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
