"""Data sets for supernet training and evaluation, read from local files or built in.

``load_splits(DataConfig(name="digits"), seed=0, image_size=32)`` gives deterministic
train / validation / calibration splits; ``train_batches`` and ``EvalBatches`` turn them
into normalised batches on a device. Supported: scikit-learn's handwritten digits
(offline, real), CIFAR-10/100 in torchvision's on-disk format, any ImageFolder tree, and
``synthetic-test-only`` (random patterns, for unit tests). Text for language models
(:mod:`nas.data.text`): bytes as tokens, ``pydoc`` built in or files under a path, split
by document (``load_text_splits``, ``text_train_batches``, ``TextEvalBatches``). Nothing is
downloaded.
"""

from nas.data.batches import Batch, EvalBatches, Normalizer, global_batch_indices, train_batches
from nas.data.config import DataConfig
from nas.data.images import FileImages, RawDataset, TensorImages
from nas.data.safe_pickle import CifarUnpickler, load_cifar_pickle
from nas.data.splits import DataSplits, load_raw, load_splits, make_splits
from nas.data.text import TextEvalBatches, TextSplits, load_text_splits, text_train_batches

__all__ = [
    "Batch",
    "CifarUnpickler",
    "DataConfig",
    "DataSplits",
    "EvalBatches",
    "FileImages",
    "Normalizer",
    "RawDataset",
    "TensorImages",
    "TextEvalBatches",
    "TextSplits",
    "global_batch_indices",
    "load_cifar_pickle",
    "load_raw",
    "load_splits",
    "load_text_splits",
    "make_splits",
    "text_train_batches",
    "train_batches",
]
