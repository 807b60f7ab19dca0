"""Data-parallel training across processes and hosts, launched by ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` joins the
process group (nccl on GPUs, gloo on CPUs). Every rank holds the whole supernet, samples
the same archs (seeded per step) and trains on its share of the global batch; after the
backward passes :meth:`DistContext.sync` averages, in one all-reduce, the gradients, the
BN running statistics (so every rank keeps identical buffers) and a stop flag (so a
Ctrl-C or SIGTERM on any rank stops all of them after the same step).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from nas.errors import EdgenasError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the number of ranks, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sync(self, model: nn.Module, stop: bool) -> bool:
        """Average gradients and floating buffers over ranks; True if any rank asked to stop."""
        if not self.enabled:
            return stop
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        flat = torch.cat(
            [t.reshape(-1).float() for t in grads + buffers]
            + [torch.tensor([float(stop)], device=self.device)]
        )
        dist.all_reduce(flat)
        offset = 0
        for t in grads + buffers:
            n = t.numel()
            t.copy_((flat[offset : offset + n] / self.world_size).view_as(t))
            offset += n
        return bool(flat[-1].item() > 0)

    def check_in_sync(self, model: nn.Module) -> str:
        """The weights' fingerprint; raises if any rank's differs (a bug, never expected)."""
        digest = fingerprint(model)
        if self.enabled:
            mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=self.device)
            gathered = [torch.empty_like(mine) for _ in range(self.world_size)]
            dist.all_gather(gathered, mine)
            if any(not torch.equal(g, mine) for g in gathered):
                raise EdgenasError("data-parallel ranks hold different weights; this is a bug, please report it")
        return digest

    def agree(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (e.g. the step to resume from)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.broadcast(t, 0)
        return int(t.item())


def fingerprint(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order (bit-exact comparison)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: the GPU of this rank if there is one, else the CPU."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EdgenasError("train.device is cuda but no GPU is visible; use device: auto or cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def setup(preference: str) -> DistContext:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, device)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
