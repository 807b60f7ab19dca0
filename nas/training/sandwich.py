"""One supernet training step by the sandwich rule with in-place distillation.

Per step: the largest sub-network learns from the labels, the smallest and ``num_random``
random sub-networks learn from the largest's (detached) predictions; their gradients are
summed, then the optimizer steps once (BigNAS / OFA). Only torch is imported here, so the
step runs on machines with nothing else installed (the GPU benchmark machine).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SandwichStats:
    """What one step did: mean loss per sub-network, and the archs it trained."""

    losses: list[float]
    archs: list[Any] = field(default_factory=list)

    @property
    def loss(self) -> float:
        return sum(self.losses) / len(self.losses)


def resize_to(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of a batch to ``resolution`` (a no-op when it already has that size)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
    if images.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution (the teacher's softmax), averaged over the batch."""
    return -(target_probs * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def sandwich_archs(
    space: Any, rng: random.Random, num_random: int, choices: dict[str, Any] | None = None
) -> list[Any]:
    """Largest, smallest and ``num_random`` uniform sub-networks (within a phase's choices)."""
    choices = choices or {}
    archs = [space.largest(**choices), space.smallest(**choices)]
    archs += [space.sample(rng, **choices) for _ in range(num_random)]
    return archs


def sandwich_step(
    supernet: nn.Module,
    archs: list[Any],
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    distill: bool = True,
    label_smoothing: float = 0.0,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    before_step: Callable[[], None] | None = None,
) -> SandwichStats:
    """Train ``archs`` (the first is the teacher) on one batch; one optimizer step.

    ``before_step`` runs after the gradients are accumulated and before clipping and the
    optimizer step: data-parallel training averages gradients across processes there.
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = images.device.type
    losses = []
    teacher_probs: torch.Tensor | None = None
    for i, arch in enumerate(archs):
        x = resize_to(images, arch.resolution)
        with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = supernet(x, arch)
        if i == 0 or not distill:
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
            if i == 0 and distill:
                teacher_probs = F.softmax(logits.detach().float(), dim=-1)
        else:
            assert teacher_probs is not None
            loss = soft_cross_entropy(logits, teacher_probs)
        loss.backward()
        losses.append(loss.item() if device_type == "cpu" else loss.detach())
    if before_step is not None:
        before_step()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    return SandwichStats(losses=[float(v) for v in losses], archs=list(archs))
