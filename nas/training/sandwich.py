"""One supernet training step by the sandwich rule with in-place distillation.

Per step: the largest sub-network learns from the labels, the smallest and ``num_random``
random sub-networks learn from the largest's (detached) predictions; their gradients are
summed, then the optimizer steps once (BigNAS / OFA). What a sub-network is fed and which
losses it gets depend on the task (:mod:`nas.training.losses`: classification for image
spaces, next-token prediction for language models). Only torch is imported here, so the
step runs on machines with nothing else installed (the GPU benchmark machine).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.training.losses import CLASSIFICATION, StepLoss, resize_to, soft_cross_entropy


@dataclass
class SandwichStats:
    """What one step did: mean loss per sub-network, and the archs it trained."""

    losses: list[float]
    archs: list[Any] = field(default_factory=list)

    @property
    def loss(self) -> float:
        return sum(self.losses) / len(self.losses)


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
    inputs: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    loss: StepLoss = CLASSIFICATION,
    distill: bool = True,
    distill_weight: float | None = None,
    label_smoothing: float = 0.0,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    before_step: Callable[[], None] | None = None,
) -> SandwichStats:
    """Train ``archs`` (the first is the teacher) on one batch; one optimizer step.

    ``loss`` says how each arch is fed and scored (images and labels by default; token
    windows and next tokens with :data:`~nas.training.losses.NEXT_TOKEN`). ``before_step``
    runs after the gradients are accumulated and before clipping and the optimizer step:
    data-parallel training averages gradients across processes there.

    With ``distill``, every sub-network after the first learns ``distill_weight`` from the
    teacher's predictions and ``1 - distill_weight`` from the labels (1: pure in-place
    distillation, as BigNAS and OFA; below 1 the labels keep pulling while the teacher is
    still weak; 0 is plain sandwich training, the same as ``distill=False``); ``None`` takes
    the task's (``loss.distill_weight``: 1 for images, 0.5 for language models).
    """
    if distill_weight is None:
        distill_weight = float(getattr(loss, "distill_weight", 1.0))
    if not 0.0 <= distill_weight <= 1.0:
        raise ValueError(f"distill_weight must be in [0, 1], got {distill_weight}")
    distill = distill and distill_weight > 0
    optimizer.zero_grad(set_to_none=True)
    device_type = inputs.device.type
    losses = []
    teacher: torch.Tensor | None = None
    for i, arch in enumerate(archs):
        x = loss.inputs(inputs, arch)
        with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = supernet(x, arch)
        if i == 0 or not distill:
            value = loss.loss(logits, loss.targets(targets, arch), label_smoothing)
            if i == 0 and distill:
                teacher = loss.teacher(logits)
        else:
            assert teacher is not None
            value = loss.distill(logits, loss.targets(teacher, arch))
            if distill_weight < 1.0:
                labels = loss.loss(logits, loss.targets(targets, arch), label_smoothing)
                value = distill_weight * value + (1.0 - distill_weight) * labels
        value.backward()
        losses.append(value.item() if device_type == "cpu" else value.detach())
    if before_step is not None:
        before_step()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    return SandwichStats(losses=[float(v) for v in losses], archs=list(archs))


__all__ = ["SandwichStats", "resize_to", "sandwich_archs", "sandwich_step", "soft_cross_entropy"]
