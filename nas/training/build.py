"""Build the space and task (data) a training config describes (shared by train and eval)."""

from __future__ import annotations

from typing import Any

from nas.errors import EdgenasError
from nas.spaces import build_space as _build_space
from nas.training.config import TrainConfig


def space_options(cfg: TrainConfig, num_classes: int | None) -> dict[str, Any]:
    """``space.options`` with ``num_classes`` filled in from the data set."""
    options = dict(cfg.space.options)
    if num_classes is not None:
        given = options.get("num_classes")
        if given is not None and given != num_classes:
            raise EdgenasError(
                f"space.options.num_classes is {given} but data set {cfg.data.name} has {num_classes} classes; "
                "remove the key or fix it"
            )
        options["num_classes"] = num_classes
    return options


def build_space(name: str, options: dict[str, Any]) -> Any:
    """The space a training config names, with its errors as one-line config errors."""
    return _build_space(name, options, name_key="space.name", options_key="space.options")


def space_and_task(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    """The space (with the data set's class count, for image spaces), its
    :class:`~nas.tasks.Task` with the data read and split, and the space options used."""
    from nas.tasks import load_task

    probe = build_space(cfg.space.name, space_options(cfg, None))
    task = load_task(probe, cfg.data, cfg.seed)
    options = space_options(cfg, task.num_classes)
    space = build_space(cfg.space.name, options) if options != dict(cfg.space.options) else probe
    return space, task, options


def space_and_data(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    """The space, the data splits (:class:`~nas.data.DataSplits` or
    :class:`~nas.data.TextSplits`) and the space options used."""
    space, task, options = space_and_task(cfg)
    return space, task.splits, options
