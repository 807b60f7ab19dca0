"""Deterministic train / validation / BN-calibration splits of a data set, from a seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nas.data.config import DataConfig
from nas.data.images import FileImages, Images, RawDataset, TensorImages
from nas.data.sources import (
    load_cifar,
    load_digits,
    load_imagefolder,
    load_synthetic,
)
from nas.errors import EdgenasError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataSplits:
    """The three splits training and evaluation use, plus the official test split if any.

    ``calibration`` is a subset of ``train`` (BN statistics should describe the training
    distribution; no labels are used); ``validation`` is disjoint from both.
    """

    name: str
    train: Images
    validation: Images
    calibration: Images
    test: Images | None
    classes: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about its data (sizes, normalisation, classes)."""
        return {
            "name": self.name,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "train": len(self.train),
            "validation": len(self.validation),
            "calibration": len(self.calibration),
            "test": len(self.test) if self.test is not None else 0,
            "mean": list(self.mean),
            "std": list(self.std),
            "augment": self.augment,
            "in_memory": isinstance(self.train, TensorImages),
        }


def load_raw(cfg: DataConfig, seed: int, image_size: int) -> RawDataset:
    """Read the data set named in ``cfg`` (nothing is downloaded)."""
    if cfg.name == "digits":
        return load_digits(image_size)
    if cfg.name == "synthetic-test-only":
        return load_synthetic(image_size, seed)
    if cfg.name in ("cifar10", "cifar100"):
        assert cfg.path is not None
        return load_cifar(cfg.path, cfg.name, image_size)
    assert cfg.path is not None
    return load_imagefolder(cfg.path, image_size, cfg.in_memory)


def make_splits(raw: RawDataset, cfg: DataConfig, seed: int, image_size: int) -> DataSplits:
    """Split ``raw.train`` by ``seed``: the same seed always gives the same three splits."""
    gen = torch.Generator().manual_seed(seed)
    pool = raw.train
    if cfg.limit is not None and cfg.limit < len(pool):
        pool = pool.subset(torch.randperm(len(pool), generator=gen)[: cfg.limit])
    order = torch.randperm(len(pool), generator=gen)
    if cfg.val_fraction > 0:
        n_val = max(1, round(cfg.val_fraction * len(pool)))
        validation, train = pool.subset(order[:n_val]), pool.subset(order[n_val:])
    else:
        if raw.test is None:
            raise EdgenasError(
                f"data.val_fraction: 0 uses the official test split for validation, and {cfg.name} has none; "
                "set val_fraction > 0"
            )
        validation, train = raw.test, pool.subset(order)
    if len(train) < 2:
        raise EdgenasError(f"data: only {len(train)} training images after the validation split; lower val_fraction")
    n_cal = min(cfg.calibration_size, len(train))
    calibration = train.subset(torch.randperm(len(train), generator=gen)[:n_cal])
    mean, std = _statistics(train)
    return DataSplits(
        name=cfg.name,
        train=train,
        validation=validation,
        calibration=calibration,
        test=raw.test if cfg.val_fraction > 0 else None,
        classes=raw.classes,
        image_size=image_size,
        mean=mean,
        std=std,
        augment=cfg.default_augment,
    )


def load_splits(cfg: DataConfig, seed: int, image_size: int) -> DataSplits:
    """Read and split the data set of ``cfg`` at ``image_size`` pixels."""
    return make_splits(load_raw(cfg, seed, image_size), cfg, seed, image_size)


def _statistics(images: Images) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of (up to 10,000 of) the training images; ImageNet's for files."""
    if isinstance(images, FileImages):
        return IMAGENET_MEAN, IMAGENET_STD
    x = images.images[:10000].double() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())  # type: ignore[return-value]
