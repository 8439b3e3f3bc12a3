import torch

from seal_lightning.stacked_lora import Routing, StackedLoRALinear


def test_stacked_lora_routes_each_token_through_its_own_adapter_only():
    """Tokens in any order, some with no adapter (-1), some adapters absent: outputs and gradients equal
    the per-token formula base(x) + scaling * B_k A_k x."""
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    initial = [(torch.randn(2, 6), torch.randn(5, 2)) for _ in range(4)]
    routing = Routing()
    layer = StackedLoRALinear(base, initial, scaling=2.0, routing=routing)
    token_adapter = torch.tensor([[2, 0, -1, 2, 0], [-1, 0, 2, 2, -1]])  # adapters 1 and 3 absent
    routing.set_tokens(token_adapter)
    x = torch.randn(2, 5, 6, requires_grad=True)
    out = layer(x)
    expected = base(x).detach().clone()
    for row, col in (token_adapter >= 0).nonzero().tolist():
        a, b = initial[int(token_adapter[row, col])]
        expected[row, col] += 2.0 * b @ (a @ x[row, col].detach())
    torch.testing.assert_close(out, expected)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    for k in (0, 2):
        a, b = (w.clone().requires_grad_(True) for w in initial[k])
        routed = token_adapter == k
        (2.0 * (x.detach()[routed] @ a.T @ b.T) * weights[routed]).sum().backward()
        torch.testing.assert_close(layer.lora_A.grad[k], a.grad)
        torch.testing.assert_close(layer.lora_B.grad[k], b.grad)
    for k in (1, 3):
        assert not layer.lora_A.grad[k].any() and not layer.lora_B.grad[k].any()
