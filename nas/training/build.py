"""Build the space and data a training config describes (shared by train and eval)."""

from __future__ import annotations

from typing import Any

from nas.data import DataSplits, load_splits
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


def space_and_data(cfg: TrainConfig) -> tuple[Any, DataSplits, dict[str, Any]]:
    """The space (with the data set's class count), the data splits, and the space options used."""
    probe = build_space(cfg.space.name, space_options(cfg, None))
    largest = probe.largest()
    image_size = cfg.data.image_size or int(getattr(largest, "resolution", 32))
    splits = load_splits(cfg.data, cfg.seed, image_size)
    options = space_options(cfg, splits.num_classes)
    return build_space(cfg.space.name, options), splits, options
