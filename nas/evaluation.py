"""Accuracy of a sub-network activated in place in the supernet.

Shared batch-norm statistics belong to no single sub-network, so before evaluating an
arch its BN statistics are recalibrated on a calibration split (OFA's
``set_running_statistics``): exact averages of the batch means and variances, computed
in one forward pass. The supernet's own statistics are restored afterwards, so
evaluating never changes the cloud model. Only torch is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.training.sandwich import resize_to

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EvalResult:
    """Top-1 accuracy (%) and mean cross-entropy on ``samples`` validation images."""

    accuracy: float
    loss: float
    samples: int


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def preserved_bn_statistics(model: nn.Module) -> Iterator[None]:
    """Restore every BN layer's running statistics and momentum on exit."""
    saved = [
        (bn, bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(), bn.momentum)
        for bn in _batch_norms(model)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for bn, mean, var, count, momentum in saved:
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(count)
                bn.momentum = momentum


@torch.no_grad()
def calibrate_bn(
    supernet: nn.Module,
    arch: Any,
    batches: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
) -> int:
    """Set BN running statistics to their averages over ``batches`` for ``arch``.

    Returns the number of images used. Dropout is irrelevant here (outputs are discarded).
    """
    was_training = supernet.training
    for bn in _batch_norms(supernet):
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    supernet.train()
    seen = 0
    try:
        for images, _ in batches:
            x = resize_to(images, arch.resolution)
            with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                supernet(x, arch)
            seen += images.shape[0]
    finally:
        supernet.train(was_training)
    if seen == 0:
        raise ValueError("BN calibration needs at least one batch: the calibration split is empty")
    return seen


@torch.no_grad()
def accuracy(
    model: nn.Module,
    arch: Any,
    batches: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
    resolution: int | None = None,
) -> EvalResult:
    """Top-1 accuracy of ``model(x, arch)`` in eval mode.

    ``arch=None`` evaluates a plain module (``model(x)``), on inputs resized to
    ``resolution`` when given (an extracted sub-network at its arch's resolution).
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long)
    loss_sum = torch.zeros((), dtype=torch.float64)
    total = 0
    try:
        for images, labels in batches:
            size = arch.resolution if arch is not None else resolution
            x = images if size is None else resize_to(images, size)
            with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x) if arch is None else model(x, arch)
            logits = logits.float()
            correct = correct.to(logits.device) + (logits.argmax(-1) == labels).sum()
            loss_sum = loss_sum.to(logits.device) + nn.functional.cross_entropy(
                logits, labels, reduction="sum"
            ).double()
            total += labels.shape[0]
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluation needs at least one batch: the validation split is empty")
    return EvalResult(100.0 * correct.item() / total, loss_sum.item() / total, total)


def evaluate_arch(
    supernet: nn.Module,
    arch: Any,
    calibration: Iterable[Batch],
    validation: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
) -> EvalResult:
    """Recalibrate BN for ``arch`` on ``calibration``, measure accuracy on ``validation``,
    and leave the supernet's statistics as they were."""
    with preserved_bn_statistics(supernet):
        calibrate_bn(supernet, arch, calibration, amp_dtype)
        return accuracy(supernet, arch, validation, amp_dtype)


def calibrated_subnet(
    supernet: nn.Module,
    arch: Any,
    calibration: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
) -> nn.Module:
    """``supernet.extract(arch)`` with BN statistics recalibrated for ``arch`` (the supernet's
    own statistics are left as they were)."""
    with preserved_bn_statistics(supernet):
        calibrate_bn(supernet, arch, calibration, amp_dtype)
        return supernet.extract(arch)
