"""Ranks' shares of the work: balanced, disjoint, complete, and the same whoever computes them."""

from __future__ import annotations

import pytest

from seal_lightning.distributed import Ranks, cluster_environment, start_ranks


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_the_ranks_shares_cover_every_unit_once(world_size):
    costs = [5.0, 1.0, 3.0, 3.0, 2.0, 8.0, 1.0]
    shares = [Ranks(rank, world_size).share(costs) for rank in range(world_size)]
    assert sorted(i for share in shares for i in share) == list(range(len(costs)))
    assert all(share == sorted(share) for share in shares)


def test_shares_are_balanced_by_cost():
    """Longest first to the least loaded rank: 8 | 5 + 3 | 3 + 2 + 1 + 1 on three ranks."""
    costs = [5.0, 1.0, 3.0, 3.0, 2.0, 8.0, 1.0]
    loads = [sum(costs[i] for i in Ranks(rank, 3).share(costs)) for rank in range(3)]
    assert loads == [8.0, 8.0, 7.0]


def test_one_process_is_a_rank_of_one_without_a_process_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    import torch
    import torch.distributed as dist

    assert cluster_environment() is None
    ranks = start_ranks(torch.device("cpu"))
    assert ranks == Ranks() and ranks.main and not dist.is_initialized()
    assert ranks.gather({"a": 1}) == [{"a": 1}] and ranks.broadcast(3) == 3
