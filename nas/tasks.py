"""What a space's sub-networks learn and how they are scored: one task object per kind of data.

Training, evaluation and the search's accuracy source ask the task rather than the
space or the data set:

* :class:`ImageTask` (mbv3 and the other image spaces): image classification. Batches of
  normalised images and labels; cross-entropy and distillation against the teacher's
  softmax; an arch's score is its top-1 accuracy (%) after its batch-norm statistics are
  recalibrated on the calibration split.
* :class:`TextTask` (gpt): next-token prediction on bytes. Batches of token windows of
  the supernet's context; cross-entropy per token and KL-divergence distillation; an arch's
  score is its validation loss (nats per byte) and perplexity on a fixed number of tokens
  (no batch norm, no recalibration). The search maximises the **negative** validation loss,
  so "higher is better" holds for every space (:meth:`Task.objective`).

Example::

    task = load_task(space, DataConfig(name="pydoc"), seed=0)
    evaluate = task.evaluator("validation", batch_size=64, device=torch.device("cpu"))
    result = evaluate(supernet, arch)          # EvalResult: loss, perplexity, accuracy
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from nas.data import DataConfig, DataSplits, EvalBatches, Normalizer, load_splits, train_batches
from nas.data.text import TextEvalBatches, TextSplits, load_text_splits, text_train_batches
from nas.errors import EdgenasError
from nas.evaluation import EvalResult, evaluate_arch, next_token_loss
from nas.training.losses import CLASSIFICATION, NEXT_TOKEN, StepLoss

Batch = tuple[torch.Tensor, torch.Tensor]
Evaluator = Callable[[nn.Module, Any], EvalResult]
"""``evaluate(supernet, arch) -> EvalResult``: an arch's score on fixed batches."""


class Task(abc.ABC):
    """Data, per-step loss and score of the sub-networks of one kind of space."""

    #: what a training batch counts (``images`` or ``tokens``), for throughput figures
    unit: ClassVar[str]
    #: how a sandwich step feeds and scores each sub-network
    loss: ClassVar[StepLoss]
    #: whether channels-last tensors help on a GPU (convolutions)
    prefers_channels_last: ClassVar[bool] = False

    splits: Any

    @classmethod
    @abc.abstractmethod
    def load(cls, data: DataConfig, seed: int, space: Any, recorded: dict[str, Any] | None = None) -> Task:
        """Read and split the data for ``space``; ``recorded`` is a checkpoint's data description."""

    @property
    def num_classes(self) -> int | None:
        """Classes the data set has (fills ``space.options.num_classes``); None for text."""
        return None

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about the data."""

    @abc.abstractmethod
    def check_batch_size(self, global_batch: int) -> None:
        """Raise :class:`EdgenasError` if the training split cannot fill a batch."""

    @abc.abstractmethod
    def items(self, global_batch: int) -> int:
        """Images or tokens in one global batch."""

    @abc.abstractmethod
    def train_batches(
        self, device: torch.device, *, seed: int, start_step: int, global_batch: int, rank: int = 0,
        world_size: int = 1, workers: int = 0, channels_last: bool = False,
    ) -> Iterator[Batch]:
        """This rank's share of every training batch from ``start_step`` on (a function of
        ``(seed, step)`` only, so a resumed run sees the same batches)."""

    @abc.abstractmethod
    def evaluator(self, split: str, batch_size: int, device: torch.device,
                  amp_dtype: torch.dtype | None = None) -> Evaluator:
        """Score archs of a supernet on ``split`` (``validation`` or ``test``)."""

    @abc.abstractmethod
    def eval_summary(self, split: str, samples: int) -> str:
        """What an evaluation of ``samples`` images or tokens measured (for ``edgenas eval``)."""

    @abc.abstractmethod
    def row(self, result: EvalResult) -> dict[str, Any]:
        """The score's columns in ``edgenas eval``'s rows."""

    # --- the search's view (no data needed: a warm accuracy cache loads nothing) ---------
    @classmethod
    @abc.abstractmethod
    def eval_settings(cls, batch_size: int, data: dict[str, Any]) -> dict[str, Any]:
        """Settings that change a cached score (``data``: the checkpoint's data description)."""

    @classmethod
    @abc.abstractmethod
    def objective(cls, result: EvalResult) -> float:
        """The value a search maximises (its ``accuracy`` objective)."""

    @classmethod
    @abc.abstractmethod
    def attrs(cls, result: EvalResult) -> dict[str, Any]:
        """What a trial records beside the objective."""


def _image_score(supernet: nn.Module, arch: Any, *, calibration: EvalBatches, measure: EvalBatches,
                 amp_dtype: torch.dtype | None) -> EvalResult:
    return evaluate_arch(supernet, arch, calibration, measure, amp_dtype)


def _split_name(split: str) -> str:
    if split not in ("validation", "test"):
        raise EdgenasError(f"--split {split}: use validation or test")
    return split


class ImageTask(Task):
    """Image classification: top-1 accuracy after BN recalibration."""

    unit = "images"
    loss = CLASSIFICATION
    prefers_channels_last = True

    def __init__(self, splits: DataSplits, workers: int = 0) -> None:
        self.splits, self.workers = splits, workers

    @classmethod
    def load(cls, data: DataConfig, seed: int, space: Any, recorded: dict[str, Any] | None = None) -> ImageTask:
        if data.is_text:
            raise EdgenasError(
                f"data.name: {data.name} is text, but space {space.name} classifies images; use an image "
                "data set (digits, cifar10, cifar100, imagefolder) or space gpt"
            )
        size = (recorded or {}).get("image_size") or data.image_size
        if size is None:
            size = int(getattr(space.largest(), "resolution", 32))
        return cls(load_splits(data, seed, int(size)), data.workers)

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes

    def describe(self) -> dict[str, Any]:
        return self.splits.describe()

    def check_batch_size(self, global_batch: int) -> None:
        if len(self.splits.train) < global_batch:
            raise EdgenasError(
                f"train.batch_size ({global_batch}) exceeds the {len(self.splits.train)} training images; lower it"
            )

    def items(self, global_batch: int) -> int:
        return global_batch

    def _normalizer(self, device: torch.device, channels_last: bool) -> Normalizer:
        return Normalizer(self.splits.mean, self.splits.std, device, channels_last)

    def train_batches(
        self, device: torch.device, *, seed: int, start_step: int, global_batch: int, rank: int = 0,
        world_size: int = 1, workers: int = 0, channels_last: bool = False,
    ) -> Iterator[Batch]:
        s = self.splits
        return train_batches(
            s.train.to(device), self._normalizer(device, channels_last), image_size=s.image_size,
            augment=s.augment, seed=seed, start_step=start_step, global_batch=global_batch, rank=rank,
            world_size=world_size, workers=workers,
        )

    def evaluator(self, split: str, batch_size: int, device: torch.device,
                  amp_dtype: torch.dtype | None = None) -> Evaluator:
        s = self.splits
        images = s.validation if _split_name(split) == "validation" else s.test
        if images is None:
            raise EdgenasError(f"--split test: data set {s.name} has no separate test split; use validation")
        norm = self._normalizer(device, device.type == "cuda")
        calibration = EvalBatches(s.calibration, norm, batch_size, s.image_size, self.workers)
        measure = EvalBatches(images, norm, batch_size, s.image_size, self.workers)
        return functools.partial(_image_score, calibration=calibration, measure=measure, amp_dtype=amp_dtype)

    def eval_summary(self, split: str, samples: int) -> str:
        return (f"{self.splits.name}: accuracy on {samples} {split} images, BN recalibrated on "
                f"{len(self.splits.calibration)}")

    def row(self, result: EvalResult) -> dict[str, Any]:
        return {"accuracy": round(result.accuracy, 2), "loss": round(result.loss, 4), "samples": result.samples}

    @classmethod
    def eval_settings(cls, batch_size: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"split": "validation", "batch_size": batch_size, "bn": "recalibrated",
                "amp": "bf16-on-cuda", "evaluator": "nas.evaluation.evaluate_arch/1"}

    @classmethod
    def objective(cls, result: EvalResult) -> float:
        return result.accuracy

    @classmethod
    def attrs(cls, result: EvalResult) -> dict[str, Any]:
        return {"loss": result.loss, "samples": result.samples}


class TextTask(Task):
    """Next-token prediction on bytes: validation loss and perplexity (no recalibration)."""

    unit = "tokens"
    loss = NEXT_TOKEN

    def __init__(self, splits: TextSplits) -> None:
        self.splits = splits

    @classmethod
    def load(cls, data: DataConfig, seed: int, space: Any, recorded: dict[str, Any] | None = None) -> TextTask:
        if not data.is_text:
            raise EdgenasError(
                f"data.name: {data.name} is an image data set, but space {space.name} is a language model; "
                "use data: {name: pydoc} (built in) or {name: text, path: FILE_OR_DIR}"
            )
        vocab = space.config.vocab_size
        if vocab != 256:
            raise EdgenasError(
                f"space.options.vocab_size is {vocab}; text is read as bytes (256 tokens): remove the key"
            )
        return cls(load_text_splits(data, seed, space.config.max_context))

    @property
    def context(self) -> int:
        """Tokens per training and evaluation window: the supernet's longest context."""
        return self.splits.context

    def describe(self) -> dict[str, Any]:
        return self.splits.describe()

    def check_batch_size(self, global_batch: int) -> None:
        """Windows are drawn at random offsets: any batch size can be filled."""

    def items(self, global_batch: int) -> int:
        return global_batch * self.context

    def train_batches(
        self, device: torch.device, *, seed: int, start_step: int, global_batch: int, rank: int = 0,
        world_size: int = 1, workers: int = 0, channels_last: bool = False,
    ) -> Iterator[Batch]:
        return text_train_batches(self.splits.train, self.context, device, seed=seed, start_step=start_step,
                                  global_batch=global_batch, rank=rank, world_size=world_size)

    def eval_batches(self, split: str, batch_size: int, device: torch.device) -> TextEvalBatches:
        """The fixed windows a loss on ``split`` is measured on."""
        stream = self.splits.split(_split_name(split))
        return TextEvalBatches(stream, self.context, batch_size, self.splits.eval_tokens, device)

    def evaluator(self, split: str, batch_size: int, device: torch.device,
                  amp_dtype: torch.dtype | None = None) -> Evaluator:
        batches = self.eval_batches(split, batch_size, device)
        return functools.partial(next_token_loss, batches=batches, amp_dtype=amp_dtype)

    def eval_summary(self, split: str, samples: int) -> str:
        return (f"{self.splits.name}: loss (nats per byte) and perplexity on {samples} {split} tokens, "
                f"windows of {self.context}")

    def row(self, result: EvalResult) -> dict[str, Any]:
        return {"loss": round(result.loss, 4), "perplexity": round(result.perplexity, 3),
                "accuracy": round(result.accuracy, 2), "samples": result.samples}

    @classmethod
    def eval_settings(cls, batch_size: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"split": "validation", "batch_size": batch_size, "metric": "negative-loss",
                "eval_tokens": data.get("eval_tokens"), "context": data.get("context"),
                "amp": "bf16-on-cuda", "evaluator": "nas.evaluation.next_token_loss/1"}

    @classmethod
    def objective(cls, result: EvalResult) -> float:
        return -result.loss

    @classmethod
    def attrs(cls, result: EvalResult) -> dict[str, Any]:
        return {"loss": result.loss, "perplexity": result.perplexity,
                "next_token_accuracy": result.accuracy, "tokens": result.samples}


TASKS: dict[str, type[Task]] = {"gpt": TextTask}
"""The task of each space that is not an image classifier (by space name)."""


def task_type(space_name: str) -> type[Task]:
    """The task class of the space named ``space_name`` (:class:`ImageTask` unless listed in :data:`TASKS`)."""
    return TASKS.get(space_name, ImageTask)


def load_task(space: Any, data: DataConfig, seed: int, recorded: dict[str, Any] | None = None) -> Task:
    """The task of ``space`` with its data read and split (``recorded``: a checkpoint's data description)."""
    return task_type(space.name).load(data, seed, space, recorded)


__all__ = ["Evaluator", "ImageTask", "TASKS", "Task", "TextTask", "load_task", "task_type"]
