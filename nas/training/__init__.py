"""Supernet training: the sandwich step, the training loop, checkpoints, data parallelism."""

from nas.training.sandwich import SandwichStats, resize_to, sandwich_archs, sandwich_step

__all__ = ["SandwichStats", "resize_to", "sandwich_archs", "sandwich_step"]
