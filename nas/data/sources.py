"""Readers for each data set: images as uint8 ``(N, 3, H, W)`` tensors, or files decoded later.

Small data sets (digits, CIFAR, a small ImageFolder) are decoded once into memory; a
large ImageFolder tree stays on disk and is decoded by worker processes while training.
Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.decode import decode_all
from nas.data.images import FileImages, RawDataset, TensorImages
from nas.data.safe_pickle import load_cifar_pickle
from nas.errors import EdgenasError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
IN_MEMORY_LIMIT = 4 << 30  # bytes of uint8 pixels an ImageFolder may take in memory


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 images to ``size`` x ``size`` (a no-op at that size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def load_digits(image_size: int) -> RawDataset:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels): real scans shipped with it."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    grey = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) * (255.0 / 16.0))
    images = grey.round().to(torch.uint8).unsqueeze(1).expand(-1, 3, -1, -1)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return RawDataset(TensorImages(resize_uint8(images, image_size), labels), None, tuple(map(str, range(10))))


def load_synthetic(image_size: int, seed: int, samples: int = 512, classes: int = 10) -> RawDataset:
    """Random images for unit tests only: each class is a fixed smooth pattern plus noise.

    Learnable (so tests can see a loss fall) but meaningless as a benchmark.
    """
    gen = torch.Generator().manual_seed(seed)
    patterns = F.interpolate(torch.rand(classes, 3, 4, 4, generator=gen), size=(image_size, image_size), mode="bilinear")
    labels = torch.randint(0, classes, (samples,), generator=gen)
    noise = torch.randn(samples, 3, image_size, image_size, generator=gen) * 0.15
    images = ((patterns[labels] + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return RawDataset(TensorImages(images, labels), None, tuple(f"class{i}" for i in range(classes)))


def load_cifar(path: str | Path, variant: str, image_size: int) -> RawDataset:
    """CIFAR-10/100 in torchvision's on-disk format (``cifar-10-batches-py/``, ``cifar-100-python/``).

    ``path`` is that directory or its parent. The pickles are read with a restricted
    unpickler (see :mod:`nas.data.safe_pickle`).
    """
    root = Path(path).expanduser()
    folder = "cifar-10-batches-py" if variant == "cifar10" else "cifar-100-python"
    if (root / folder).is_dir():
        root = root / folder
    if variant == "cifar10":
        train_files, test_files, meta_file = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"
        label_key, names_key = "labels", "label_names"
    else:
        train_files, test_files, meta_file = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    if not root.is_dir():
        raise EdgenasError(f"data.path {root} does not exist: point it at the {folder} directory")
    if not (root / train_files[0]).is_file():
        raise EdgenasError(f"data.path {root} holds no {train_files[0]}: point it at the {folder} directory")
    classes = tuple(load_cifar_pickle(root / meta_file)[names_key])
    train = _cifar_images([root / f for f in train_files], label_key, len(classes), image_size)
    test = _cifar_images([root / f for f in test_files], label_key, len(classes), image_size)
    return RawDataset(train, test, classes)


def _cifar_images(files: list[Path], label_key: str, num_classes: int, image_size: int) -> TensorImages:
    images, labels = [], []
    for file in files:
        batch = load_cifar_pickle(file)
        data, lab = batch.get("data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise EdgenasError(f"{file} is not a CIFAR batch: 'data' must be a uint8 array of shape (N, 3072)")
        if lab is None or len(lab) != data.shape[0]:
            raise EdgenasError(f"{file} is not a CIFAR batch: '{label_key}' must have one label per image")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(lab, dtype=np.int64)))
    label_tensor = torch.cat(labels)
    if label_tensor.min() < 0 or label_tensor.max() >= num_classes:
        raise EdgenasError(f"{files[0].parent}: labels outside 0..{num_classes - 1}; the files are corrupt")
    return TensorImages(resize_uint8(torch.cat(images), image_size), label_tensor)


def load_imagefolder(path: str | Path, image_size: int, in_memory: bool | None) -> RawDataset:
    """An ImageFolder tree: ``root/CLASS/*.jpg``, or ``root/train/CLASS/...`` with ``root/val/CLASS/...``.

    Classes are the sorted sub-directory names. Images are decoded with PIL, resized so the
    short side is ``image_size`` and centre-cropped when kept in memory; streamed otherwise.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise EdgenasError(f"data.path {root} does not exist: point it at an ImageFolder directory")
    train_root, test_root = root, None
    if (root / "train").is_dir():
        train_root = root / "train"
        test_root = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    classes = tuple(sorted(p.name for p in train_root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise EdgenasError(f"data.path {train_root} needs one sub-directory per class (found {len(classes)})")
    train = _scan(train_root, classes)
    test = _scan(test_root, classes) if test_root is not None else None
    if in_memory is None:
        in_memory = (len(train) + len(test or ())) * 3 * image_size * image_size <= IN_MEMORY_LIMIT
    if in_memory:
        train = decode_all(train, image_size)
        test = decode_all(test, image_size) if test is not None else None
    return RawDataset(train, test, classes)


def _scan(root: Path, classes: tuple[str, ...]) -> FileImages:
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise EdgenasError(f"{root} has no class directory {name!r} (the training split has it)")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise EdgenasError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return FileImages(tuple(paths), torch.tensor(labels, dtype=torch.int64))
