"""Data parallelism for the shared update loop, through ``torch.distributed`` collectives.

:class:`~agents.algorithms.Algorithm` asks its ``parallel`` four things: which of a set of
episodes this process works on (:meth:`SingleProcess.shard`), the episodes' tensors gathered back
from every process (:meth:`SingleProcess.gather`), a sum over the processes
(:meth:`SingleProcess.sum`), and the weight of a share of the gradient, since FSDP averages
gradients over the processes (:attr:`SingleProcess.gradient_scale`). One process answers them
trivially; :class:`TorchDistributed` answers them with ``torch.distributed``. The algorithm files
themselves never see either.

Every process holds the whole rollout and the same minibatch generator, so each derives the same
global minibatches and takes its equal share of each: the gradient of a step is the gradient of
the whole minibatch, as in one process, and the number of forward passes is the same on every
process (FSDP's collectives need that).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SingleProcess", "TorchDistributed"]


class SingleProcess:
    """One process: every episode is this process's."""

    rank = 0
    world_size = 1
    gradient_scale = 1.0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's part of ``rows`` (global episode indices)."""
        return rows

    def gather(self, local: torch.Tensor, rows: int) -> torch.Tensor:
        """The full ``(rows, ...)`` tensor from each process's :meth:`shard` of ``range(rows)``."""
        return local

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over the processes."""
        return value

    def check_divides(self, count: int, what: str) -> None:
        """Refuse a count that the processes cannot share equally."""


class TorchDistributed(SingleProcess):
    """The processes of the default ``torch.distributed`` process group (gloo on CPU, nccl on
    GPU), each an equal share of every minibatch: episode ``i`` of a set belongs to the process
    ``i mod world_size`` of its position."""

    def __init__(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("TorchDistributed needs an initialised torch.distributed process group")
        self._dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.gradient_scale = float(self.world_size)  # FSDP averages gradients: undo it, shares sum to 1

    def shard(self, rows: np.ndarray) -> np.ndarray:
        return rows[self.rank :: self.world_size]

    def gather(self, local: torch.Tensor, rows: int) -> torch.Tensor:
        device = _collective_device(self._dist)
        pieces = [torch.empty_like(local, device=device) for _ in range(self.world_size)]
        self._dist.all_gather(pieces, local.contiguous().to(device))
        full = torch.empty((rows, *local.shape[1:]), dtype=local.dtype)
        for rank, piece in enumerate(pieces):
            full[rank :: self.world_size] = piece.cpu()
        return full

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        device = _collective_device(self._dist)
        total = value.detach().clone().to(device)
        self._dist.all_reduce(total)
        return total.to(value.device)

    def check_divides(self, count: int, what: str) -> None:
        if count % self.world_size:
            raise ValueError(f"{what} ({count}) must be a multiple of the learner ranks ({self.world_size})")


def _collective_device(dist) -> torch.device:
    """Where the backend's collectives take tensors: the current CUDA device for nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
