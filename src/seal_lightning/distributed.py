"""Data-parallel ranks on torch.distributed: who this process is, its share of the work, and collectives.

SEAL's E-step is embarrassingly parallel: every rank samples and scores its own share of the items and
the ranks gather the results. A launcher starts the processes (`torchrun`, or SLURM's `srun`); Lightning's
cluster environments read who is who from what the launcher set, so no launcher of our own exists. One
process without a launcher is one rank of one, and nothing here touches torch.distributed then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment, TorchElasticEnvironment

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel ranks (a rank of one by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes shared files and talks to MLflow."""
        return self.rank == 0

    @property
    def nodes(self) -> int:
        return max(1, self.world_size // self.local_world_size)

    def share(self, costs: Sequence[float]) -> list[int]:
        """The indices of the units this rank does, in their order. Each unit, costliest first, goes to the
        least loaded rank (ties to the lower rank): balanced, and the same answer on every rank."""
        if self.world_size == 1:
            return list(range(len(costs)))
        loads = [0.0] * self.world_size
        mine = []
        for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            rank = min(range(self.world_size), key=lambda r: (loads[r], r))
            loads[rank] += costs[index]
            if rank == self.rank:
                mine.append(index)
        return sorted(mine)

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, by rank, on every rank (picklable objects)."""
        if self.world_size == 1:
            return [value]
        values: list[T] = [value] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: T) -> T:
        """The main rank's `value`, on every rank."""
        if self.world_size == 1:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        """Wait until every rank is here (the main rank's writes before it are then on disk for all)."""
        if self.world_size > 1:
            dist.barrier()


def cluster_environment() -> ClusterEnvironment | None:
    """The launcher's environment (torchrun, then srun), as Lightning's Trainer detects it; None without one."""
    for environment in (TorchElasticEnvironment, SLURMEnvironment):
        if environment.detect():
            return environment()
    return None


def start_ranks(device: torch.device) -> Ranks:
    """Join the process group the launcher set up (gloo on the CPU, NCCL on GPUs, one GPU per local rank);
    a rank of one without a launcher, or with a launcher that started one process."""
    environment = cluster_environment()
    if environment is None or environment.world_size() == 1:
        return Ranks()
    world_size, local_rank = environment.world_size(), environment.local_rank()
    nodes = int(os.environ.get("SLURM_NNODES") or os.environ.get("GROUP_WORLD_SIZE") or 1)
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE") or world_size // max(nodes, 1))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", environment.main_address)
        os.environ.setdefault("MASTER_PORT", str(environment.main_port))
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=environment.global_rank(), world_size=world_size)
    return Ranks(environment.global_rank(), world_size, local_rank, local_world_size)


def stop_ranks(ranks: Ranks) -> None:
    """Leave the process group at the end of a command (every rank gets here, or the launcher ends them)."""
    if ranks.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
