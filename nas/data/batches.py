"""Batches for training and evaluation, normalised on the device.

In-memory data sets are indexed directly (on the GPU when training there): no
``DataLoader``, no worker processes, no copies per epoch. Files are decoded by
``DataLoader`` workers. Either way a training batch depends only on ``(seed, step)``: the
order is a fixed permutation per epoch and the augmentation is drawn per step, so a
resumed run sees exactly the batches the uninterrupted run would have, and each
data-parallel rank takes its contiguous share of the same global batch.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.data.images import FileImages, Images, TensorImages

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Normalizer:
    """uint8 images to normalised float on ``device`` (channels-last if asked)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    channels_last: bool = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        mean = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1) * 255.0
        inv = 1.0 / (torch.tensor(self.std, device=self.device).view(1, -1, 1, 1) * 255.0)
        x = (images.float() - mean) * inv
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


@functools.lru_cache(maxsize=4)
def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch`` (cached: every step of an epoch slices the same one)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def global_batch_indices(n: int, global_batch: int, seed: int, step: int) -> torch.Tensor:
    """The data-set indices of training step ``step`` (each epoch drops its incomplete tail)."""
    per_epoch = n // global_batch
    epoch, within = divmod(step, per_epoch)
    return epoch_permutation(n, seed, epoch)[within * global_batch : (within + 1) * global_batch]


def augment_uint8(images: torch.Tensor, gen: torch.Generator, mode: str, count: int, start: int) -> torch.Tensor:
    """Random crop after zero padding by size/8 (and horizontal flip for ``crop_flip``).

    Parameters are drawn for all ``count`` images of the global batch and this rank uses
    those from ``start`` on, so the result does not depend on how the batch is sharded.
    """
    if mode == "none":
        return images
    b, _, h, w = images.shape
    pad = max(1, h // 8)
    oy = torch.randint(0, 2 * pad + 1, (count,), generator=gen)[start : start + b].to(images.device)
    ox = torch.randint(0, 2 * pad + 1, (count,), generator=gen)[start : start + b].to(images.device)
    flip = (torch.rand(count, generator=gen) < 0.5)[start : start + b].to(images.device)
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = oy[:, None] + torch.arange(h, device=images.device)
    cols = ox[:, None] + torch.arange(w, device=images.device)
    if mode == "crop_flip":
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def train_batches(
    train: Images,
    normalizer: Normalizer,
    *,
    image_size: int,
    augment: str,
    seed: int,
    start_step: int,
    global_batch: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
) -> Iterator[Batch]:
    """This rank's share of every training batch from ``start_step`` on (endless)."""
    local = global_batch // world_size
    start = rank * local
    if isinstance(train, FileImages):
        loader = torch.utils.data.DataLoader(
            _FileDataset(train, image_size, train=True, flip=augment == "crop_flip"),
            batch_sampler=_FileSampler(len(train), seed, start_step, global_batch, start, local),
            num_workers=workers,
            pin_memory=normalizer.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )
        for images, labels in loader:
            yield normalizer(images), labels.to(normalizer.device, non_blocking=True)
        return
    step = start_step
    while True:
        index = global_batch_indices(len(train), global_batch, seed, step)[start : start + local]
        gen = torch.Generator().manual_seed(seed * 7_919 + step)
        index = index.to(train.images.device)
        images = augment_uint8(train.images[index], gen, augment, global_batch, start)
        yield normalizer(images), train.labels[index].to(normalizer.device, non_blocking=True)
        step += 1


class _FileSampler:
    """Endless batches of ``(index, per-image seed)`` for one rank, from ``start_step`` on."""

    def __init__(self, n: int, seed: int, start_step: int, global_batch: int, start: int, local: int) -> None:
        self.args = (n, seed, start_step, global_batch, start, local)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        n, seed, step, global_batch, start, local = self.args
        while True:
            index = global_batch_indices(n, global_batch, seed, step)[start : start + local].tolist()
            yield [(i, (seed * 1_000_003 + step) * 65_536 + start + j) for j, i in enumerate(index)]
            step += 1


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, files: FileImages, size: int, train: bool, flip: bool) -> None:
        self.files, self.size, self.train, self.flip = files, size, train, flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor]:
        from nas.data.decode import decode_eval, decode_train

        if self.train:
            i, sample_seed = item  # type: ignore[misc]
            image = decode_train(self.files.paths[i], self.size, random.Random(sample_seed), self.flip)
        else:
            i = int(item)  # type: ignore[arg-type]
            image = decode_eval(self.files.paths[i], self.size)
        return image, self.files.labels[i]


class EvalBatches(Iterable[Batch]):
    """Fixed-order, unaugmented batches of a split; iterate it as often as needed."""

    def __init__(self, images: Images, normalizer: Normalizer, batch_size: int, image_size: int, workers: int = 0) -> None:
        self.images, self.normalizer, self.batch_size = images, normalizer, batch_size
        self.image_size, self.workers = image_size, workers

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if isinstance(self.images, TensorImages):
            for lo in range(0, len(self.images), self.batch_size):
                images = self.images.images[lo : lo + self.batch_size]
                yield self.normalizer(images), self.images.labels[lo : lo + self.batch_size].to(self.normalizer.device)
            return
        dataset = _FileDataset(self.images, self.image_size, train=False, flip=False)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers)
        for images, labels in loader:
            yield self.normalizer(images), labels.to(self.normalizer.device, non_blocking=True)
