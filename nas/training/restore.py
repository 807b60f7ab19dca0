"""A trained supernet back from its checkpoint, with the space and task (data) it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.config import load_config
from nas.errors import EdgenasError
from nas.training.build import build_space
from nas.training.checkpoint import Checkpoint, load_model_state, read_checkpoint
from nas.training.config import TrainConfig
from nas.training.distributed import pick_device


@dataclass
class TrainedSupernet:
    """The supernet (eval mode, on ``device``), its space, task (data and score), config and checkpoint."""

    space: Any
    supernet: torch.nn.Module
    task: Any
    config: TrainConfig
    checkpoint: Checkpoint
    device: torch.device

    @property
    def splits(self) -> Any:
        """The data splits (:class:`~nas.data.DataSplits` for images, :class:`~nas.data.TextSplits` for text)."""
        return self.task.splits


def load_supernet(path: str | Path) -> tuple[Any, torch.nn.Module, Checkpoint]:
    """The space and supernet (CPU, eval mode) of the checkpoint at ``path``, without its data."""
    ckpt = read_checkpoint(path)
    try:
        space_cfg = ckpt.meta["space_config"]
        space = build_space(space_cfg["name"], space_cfg["options"])
    except (KeyError, TypeError, EdgenasError) as exc:
        raise EdgenasError(f"{ckpt.path}: metadata is incomplete or from another version ({exc})") from None
    if space.describe() != ckpt.meta.get("space"):
        raise EdgenasError(
            f"{ckpt.path}: its metadata describes two different spaces (space_config builds another space "
            "than space); the file was edited or comes from another edgenas version"
        )
    model = space.build_supernet()
    load_model_state(model, ckpt)
    return space, model.eval(), ckpt


def load_trained(path: str | Path, device: str = "auto") -> TrainedSupernet:
    """Rebuild space, supernet and task (data splits) from the checkpoint at ``path``."""
    from nas.tasks import load_task

    space, model, ckpt = load_supernet(path)
    try:
        cfg = load_config(TrainConfig, ckpt.meta["config"])
    except (KeyError, TypeError, EdgenasError) as exc:
        raise EdgenasError(f"{ckpt.path}: metadata is incomplete or from another version ({exc})") from None
    target = pick_device(device)
    model = model.to(target).eval()
    data = ckpt.meta.get("data")
    task = load_task(space, cfg.data, cfg.seed, data if isinstance(data, dict) else {})
    return TrainedSupernet(space, model, task, cfg, ckpt, target)
