"""Optimizer and learning-rate schedule: SGD-nesterov (default) or AdamW, cosine with warm-up.

The learning rate is a pure function of the step within the phase and is written into
the optimizer before every step, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.training.config import TrainSection


def make_optimizer(model: nn.Module, cfg: TrainSection, lr: float) -> torch.optim.Optimizer:
    """Weight decay on convolution and linear weights only (unless ``bn_weight_decay``)."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 or cfg.bn_weight_decay else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))  # type: ignore[arg-type]
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_at(step: int, steps: int, base_lr: float, warmup: int, min_lr: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr`` at ``steps``."""
    warmup = min(warmup, steps - 1) if steps > 1 else 0
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
