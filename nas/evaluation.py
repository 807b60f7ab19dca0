"""Accuracy of a sub-network activated in place in the supernet.

Shared batch-norm statistics belong to no single sub-network, so before evaluating an
arch its BN statistics are recalibrated on a calibration split (OFA's
``set_running_statistics``): exact averages of the batch means and variances, computed
in one forward pass. The supernet's own statistics are restored afterwards, so
evaluating never changes the cloud model. Language models have no batch norm: their
score is the next-token loss (:func:`next_token_loss`). Only torch is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.training.losses import fold, resize_to

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EvalResult:
    """Top-1 accuracy (%) and mean cross-entropy (nats) on ``samples`` validation images,
    or for a language model on ``samples`` next tokens."""

    accuracy: float
    loss: float
    samples: int

    @property
    def perplexity(self) -> float:
        """``exp(loss)``: for a language model, the effective number of choices per token."""
        return math.exp(min(self.loss, 700.0))


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
def recalibrate_bn(model: nn.Module, inputs: Iterable[Any], forward: Callable[[Any], Any] | None = None) -> int:
    """Set every batch-norm layer's running statistics to exact averages over ``inputs``.

    ``forward(x)`` runs the model on one batch (default ``model(x)``; a supernet passes its
    arch, an evaluation its autocast). Momentum is ``None`` while the batches run, so the
    statistics are the cumulative average of the batch statistics (OFA's
    ``set_running_statistics``): give batches of equal size, since each batch counts once.
    Layers no batch reaches (blocks of another sub-network, unrouted modules) keep theirs;
    the model's training mode and every layer's momentum are restored, also on error.
    Returns the number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    run = forward or model
    batches = 0
    try:
        for x in inputs:
            run(x)
            batches += 1
    finally:
        model.train(was_training)
        for m, (momentum, mean, var, count) in zip(norms, saved):
            if int(m.num_batches_tracked) == 0:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count + m.num_batches_tracked)
            m.momentum = momentum
    return batches


def calibrate_bn(
    supernet: nn.Module,
    arch: Any,
    batches: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
) -> int:
    """Recalibrate BN statistics for ``arch`` over ``batches`` (images, labels); returns
    the number of images used. Dropout is irrelevant here (outputs are discarded)."""
    seen = 0

    def images() -> Iterator[torch.Tensor]:
        nonlocal seen
        for x, _ in batches:
            seen += x.shape[0]
            yield resize_to(x, arch.resolution)

    def forward(x: torch.Tensor) -> None:
        with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            supernet(x, arch)

    recalibrate_bn(supernet, images(), forward)
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


@torch.no_grad()
def next_token_loss(
    model: nn.Module,
    arch: Any,
    batches: Iterable[Batch],
    amp_dtype: torch.dtype | None = None,
    context: int | None = None,
) -> EvalResult:
    """Mean next-token cross-entropy (nats), top-1 next-token accuracy (%) and the number
    of tokens scored, of ``model(tokens, arch)`` in eval mode over ``(tokens, next tokens)``
    batches.

    Windows longer than the arch's context are folded into consecutive windows of its
    context (:func:`~nas.training.losses.fold`), as in training. ``arch=None`` evaluates a
    plain module (``model(tokens)``, an extracted sub-network) at ``context`` tokens.
    """
    was_training = model.training
    model.eval()
    length = arch.context if arch is not None else context
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    total = 0
    try:
        for x, y in batches:
            if length is not None:
                x, y = fold(x, length), fold(y, length)
            with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x) if arch is None else model(x, arch)
            logits = logits.float().flatten(0, -2)
            target = y.flatten()
            loss_sum = loss_sum.to(logits.device) + nn.functional.cross_entropy(
                logits, target, reduction="sum").double()
            correct = correct.to(logits.device) + (logits.argmax(-1) == target).sum()
            total += target.numel()
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluation needs at least one batch: the split is empty")
    return EvalResult(100.0 * correct.item() / total, loss_sum.item() / total, total)


def accuracy_on_arrays(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy (%) of a plain ``model`` on arrays (0 for an empty set), in eval mode."""
    if len(x) == 0:
        return 0.0
    batches = ((torch.from_numpy(x[i : i + batch_size]), torch.from_numpy(y[i : i + batch_size]))
               for i in range(0, len(x), batch_size))
    return accuracy(model, None, batches).accuracy


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


def evaluate_subnets(trained: Any, archs: list[Any], split: str = "validation", batch_size: int = 256,
                     progress: bool = True) -> list[dict[str, Any]]:
    """One row per arch of a trained supernet: arch, MFLOPs, params and its score on
    ``split`` (what ``edgenas eval`` prints): top-1 accuracy and loss after BN recalibration
    on the calibration split for image spaces; loss, perplexity and next-token accuracy for
    language models (:class:`nas.tasks.Task`).

    ``trained`` is a :class:`nas.training.restore.TrainedSupernet` (``load_trained(path)``).
    """
    from tqdm import tqdm

    from nas.errors import EdgenasError

    if batch_size < 1:
        raise EdgenasError(f"--batch-size must be at least 1, got {batch_size}")
    space, task = trained.space, trained.task
    amp = torch.bfloat16 if trained.device.type == "cuda" else None
    evaluate = task.evaluator(split, batch_size, trained.device, amp)
    if trained.device.type == "cuda" and task.prefers_channels_last:
        trained.supernet.to(memory_format=torch.channels_last)
    rows = []
    for arch in tqdm(archs, desc="evaluating", unit="arch", leave=False, disable=not progress or len(archs) < 2):
        result = evaluate(trained.supernet, arch)
        rows.append({
            "arch": space.arch_to_json(arch),
            "name": str(arch),
            "mflops": round(space.flops(arch) / 1e6, 3),
            "params_m": round(space.params(arch) / 1e6, 4),
            **task.row(result),
            "split": split,
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`evaluate_subnets` rows: arch, MFLOPs, params (M), and
    top-1 (%) for image spaces, loss and perplexity for language models."""
    header: tuple[str, ...] = ("arch", "MFLOPs", "params (M)")
    if rows and "perplexity" in rows[0]:
        header += ("loss", "perplexity")
        scores = [(f"{r['loss']:.4f}", f"{r['perplexity']:.3f}") for r in rows]
    else:
        header += ("top-1 (%)",)
        scores = [(f"{r['accuracy']:.2f}",) for r in rows]
    body = [(r["name"], f"{r['mflops']:.2f}", f"{r['params_m']:.3f}", *score) for r, score in zip(rows, scores)]
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)
