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
    expected_grad = weights @ base.weight
    for row, col in (token_adapter >= 0).nonzero().tolist():
        a, b = initial[int(token_adapter[row, col])]
        expected_grad[row, col] += 2.0 * a.T @ (b.T @ weights[row, col])
    torch.testing.assert_close(x.grad, expected_grad)


def test_backward_keeps_the_shared_input_once_and_no_padded_slab():
    """Two adapted layers reading one input (q and v), one adapter with most of the tokens: what autograd
    keeps for the adapters is about the input itself, not each layer's slab padded to the longest adapter."""
    torch.manual_seed(0)
    routing = Routing()
    layers = [
        StackedLoRALinear(torch.nn.Linear(64, 8).requires_grad_(False), initial, 1.0, routing)
        for initial in ([(torch.randn(1, 64), torch.randn(8, 1)) for _ in range(4)] for _ in range(2))
    ]
    token_adapter = torch.tensor([[0] * 50 + [1, 2, 3]])
    routing.set_tokens(token_adapter)
    x = torch.randn(1, 53, 64, requires_grad=True)
    parameters = {p.data_ptr() for layer in layers for p in layer.parameters()}  # the base weights too
    kept: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if tensor.is_floating_point() and storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        outputs = [layer(x) for layer in layers]
    x_bytes = x.numel() * x.element_size()
    assert x.data_ptr() in kept
    assert sum(kept.values()) < 1.5 * x_bytes  # each layer's slab alone would be 4 x 50 x 64 floats: 3.8x
    sum(output.sum() for output in outputs).backward()
    assert x.grad is not None and all(layer.lora_A.grad is not None for layer in layers)
