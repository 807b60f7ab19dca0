"""Supernet training: the sandwich step, the training loop, checkpoints, data parallelism.

What other packages use is exported here (imported lazily, on first use, so that
``nas.training.sandwich`` can be used without loading the training loop)::

    from nas.training import TrainConfig, load_trained, train

    result = train(load_config(TrainConfig, "train.yaml"), "runs/digits")
    trained = load_trained(result.output_dir)          # space, supernet, data splits
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Checkpoint": "checkpoint",
    "SandwichStats": "sandwich",
    "TrainConfig": "config",
    "TrainResult": "loop",
    "TrainedSupernet": "restore",
    "checkpoint_meta": "checkpoint",
    "find_checkpoint": "checkpoint",
    "load_supernet": "restore",
    "load_trained": "restore",
    "read_checkpoint": "checkpoint",
    "resize_to": "sandwich",
    "run_dir": "loop",
    "sandwich_archs": "sandwich",
    "sandwich_step": "sandwich",
    "save_checkpoint": "checkpoint",
    "sha256_file": "checkpoint",
    "space_and_data": "build",
    "space_and_task": "build",
    "train": "loop",
}

if TYPE_CHECKING:  # what static tools (type checkers, the API docs) see
    from nas.training.build import space_and_data, space_and_task
    from nas.training.checkpoint import (
        Checkpoint,
        checkpoint_meta,
        find_checkpoint,
        read_checkpoint,
        save_checkpoint,
        sha256_file,
    )
    from nas.training.config import TrainConfig
    from nas.training.loop import TrainResult, run_dir, train
    from nas.training.restore import TrainedSupernet, load_supernet, load_trained
    from nas.training.sandwich import SandwichStats, resize_to, sandwich_archs, sandwich_step

__all__ = [
    "Checkpoint",
    "SandwichStats",
    "TrainConfig",
    "TrainResult",
    "TrainedSupernet",
    "checkpoint_meta",
    "find_checkpoint",
    "load_supernet",
    "load_trained",
    "read_checkpoint",
    "resize_to",
    "run_dir",
    "sandwich_archs",
    "sandwich_step",
    "save_checkpoint",
    "sha256_file",
    "space_and_data",
    "space_and_task",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nas.training.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
