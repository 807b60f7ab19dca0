"""The two forms a set of images takes: decoded tensors in memory, or files decoded on demand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class TensorImages:
    """Decoded images (uint8, ``(N, 3, H, W)``) and their labels (int64)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> TensorImages:
        return TensorImages(self.images[index], self.labels[index])

    def to(self, device: torch.device) -> TensorImages:
        return TensorImages(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class FileImages:
    """Image files decoded on demand (an ImageFolder too large for memory)."""

    paths: tuple[Path, ...]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: torch.Tensor) -> FileImages:
        return FileImages(tuple(self.paths[i] for i in index.tolist()), self.labels[index])

    def to(self, device: torch.device) -> FileImages:
        return self


Images = TensorImages | FileImages


@dataclass(frozen=True)
class RawDataset:
    """A data set as stored: its training images, its official test split if any, class names."""

    train: Images
    test: Images | None
    classes: tuple[str, ...]


__all__ = ["FileImages", "Images", "RawDataset", "TensorImages"]
