"""The ``data:`` section of a training config: images (classification) or text (language models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DatasetName = Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic-test-only", "pydoc", "text"]
TEXT_DATASETS: tuple[str, ...] = ("pydoc", "text")
"""Text data sets (bytes for next-token prediction); the others are image data sets."""
Augment = Literal["none", "crop", "crop_flip"]


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split (every split follows ``seed``).

    ``val_fraction`` of the training images are held out as the validation split (the one
    search ranks archs on); ``calibration_size`` further training images re-estimate BN
    statistics per sub-network. A data set's official test split (CIFAR's ``test_batch``,
    an ImageFolder's ``val/``) stays separate as ``test``, unless ``val_fraction`` is 0, when
    it becomes the validation split.

    Text (``pydoc``: CPython's built-in help topics; ``text``: a file or directory at
    ``path``) is split by document: ``val_fraction`` of the bytes, in whole documents, goes
    to validation and as much again to test. ``eval_tokens`` caps how many tokens a
    validation or test loss is measured on; ``limit`` caps the training bytes.
    """

    name: DatasetName = "digits"
    path: str | None = None
    image_size: int | None = None  # default: the space's largest resolution
    val_fraction: float = 0.1
    calibration_size: int = 2000
    augment: Augment | None = None  # default: crop for digits, crop_flip otherwise
    limit: int | None = None  # use only this many training images (quick experiments)
    in_memory: bool | None = None  # imagefolder: decode once into memory (default: if < 4 GiB)
    workers: int = 4  # imagefolder streamed from disk: decoding processes per rank
    eval_tokens: int | None = None  # text: tokens a validation/test loss is measured on (default 32768)

    def __post_init__(self) -> None:
        if self.name in ("cifar10", "cifar100", "imagefolder") and not self.path:
            raise ValueError(f"path is required for {self.name}: the directory holding the data set")
        if self.name == "text" and not self.path:
            raise ValueError("path is required for text: a text file or a directory of text files")
        if self.name in ("digits", "synthetic-test-only", "pydoc") and self.path:
            raise ValueError(f"path: {self.name} is built in and takes no path; remove the key")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.calibration_size < 1:
            raise ValueError(f"calibration_size must be at least 1, got {self.calibration_size}")
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be between 8 and 1024, got {self.image_size}")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"limit must be at least 2, got {self.limit}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.is_text:
            for key in ("image_size", "augment", "in_memory"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} is for image data sets, not text ({self.name}); remove the key")
            if self.val_fraction <= 0 or self.val_fraction >= 0.5:
                raise ValueError(
                    f"val_fraction must be in (0, 0.5) for text (validation and test take that share each), "
                    f"got {self.val_fraction}"
                )
        elif self.eval_tokens is not None:
            raise ValueError(f"eval_tokens is for text data sets, not {self.name}; remove the key")
        if self.eval_tokens is not None and self.eval_tokens < 1:
            raise ValueError(f"eval_tokens must be at least 1, got {self.eval_tokens}")

    @property
    def is_text(self) -> bool:
        """Whether this is a text data set (next-token prediction) rather than images."""
        return self.name in TEXT_DATASETS

    @property
    def default_augment(self) -> Augment:
        if self.augment is not None:
            return self.augment
        return "crop" if self.name in ("digits", "synthetic-test-only") else "crop_flip"
