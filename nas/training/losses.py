"""What one sub-network of a training step is fed and how its loss is computed, per kind of task.

A :class:`StepLoss` turns the step's batch into the input of one sub-network (images
resized to its resolution; token windows folded to its context), computes the loss on
the labels, and the in-place distillation loss against the largest sub-network's
predictions. :data:`CLASSIFICATION` serves image spaces (mbv3), :data:`NEXT_TOKEN`
language models (gpt). Only torch is imported here, so the step runs on machines with
nothing else installed (the GPU benchmark machine).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F


class StepLoss(Protocol):
    """Inputs, targets and losses of one sub-network in a sandwich step.

    ``distill_weight`` is the share of a student's loss that comes from the teacher when
    the config does not say (``train.distill_weight``); the rest comes from the labels.
    """

    distill_weight: float

    def inputs(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        """The batch as sub-network ``arch`` takes it."""

    def targets(self, y: torch.Tensor, arch: Any) -> torch.Tensor:
        """Labels (or the teacher's predictions) lined up with :meth:`inputs`."""

    def loss(self, logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        """Mean loss on the labels."""

    def teacher(self, logits: torch.Tensor) -> torch.Tensor:
        """The largest sub-network's detached predictions, the target of distillation."""

    def distill(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Mean distillation loss of a student's ``logits`` against ``teacher``."""


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


def fold(tokens: torch.Tensor, context: int) -> torch.Tensor:
    """``(batch, T, ...)`` windows cut into ``(batch * (T // context), context, ...)`` ones.

    A sub-network with a shorter context than the batch's windows sees every window as
    ``T // context`` consecutive shorter ones (a tail shorter than ``context`` is dropped),
    so every sub-network trains on the same tokens. A no-op when ``T <= context``.
    """
    b, t = tokens.shape[:2]
    if t <= context:
        return tokens
    n = t // context
    return tokens[:, : n * context].reshape(b * n, context, *tokens.shape[2:])


class Classification:
    """Images to class logits: cross-entropy (label smoothing) on labels; distillation as
    cross-entropy against the teacher's softmax (OFA's in-place distillation, students
    learn from the teacher alone)."""

    distill_weight = 1.0

    def inputs(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        return resize_to(x, arch.resolution)

    def targets(self, y: torch.Tensor, arch: Any) -> torch.Tensor:
        return y

    def loss(self, logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)

    def teacher(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits.detach().float(), dim=-1)

    def distill(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits, teacher)


class NextToken:
    """Token windows to next-token logits ``(batch, tokens, vocab)``: cross-entropy per
    token on the next tokens; distillation as the KL divergence from the teacher's
    next-token distribution to the student's, ``KL(teacher || student)``, averaged over
    tokens. Windows are folded to each sub-network's context (:func:`fold`).

    Students learn half from the teacher and half from the labels (``distill_weight``
    0.5): with the teacher alone, the weight-shared language model stops improving, the
    largest included (its next-token loss stalls while the students match it ever more
    closely; experiments/bench/gpt_rank_fidelity.py and docs/benchmarks.md have the figures).
    """

    distill_weight = 0.5

    def inputs(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        return fold(x, arch.context)

    def targets(self, y: torch.Tensor, arch: Any) -> torch.Tensor:
        return fold(y, arch.context)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        return F.cross_entropy(logits.float().flatten(0, -2), y.flatten(), label_smoothing=label_smoothing)

    def teacher(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits.detach().float(), dim=-1)

    def distill(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        student = F.log_softmax(logits.float(), dim=-1)
        return (teacher.exp() * (teacher - student)).sum(-1).mean()


CLASSIFICATION = Classification()
NEXT_TOKEN = NextToken()

__all__ = ["CLASSIFICATION", "NEXT_TOKEN", "Classification", "NextToken", "StepLoss", "fold", "resize_to",
           "soft_cross_entropy"]
