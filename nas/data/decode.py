"""Decoding image files with PIL: evaluation crops, training crops, and decoding a whole set."""

from __future__ import annotations

import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nas.data.images import FileImages, TensorImages
from nas.errors import EdgenasError

EVAL_CROP_FRACTION = 0.875  # resize the short side to size / 0.875, keep the centre (ImageNet's usual)


def _open_rgb(path: Path):  # type: ignore[no-untyped-def]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgenasError(f"{path} is not a readable image ({exc}): remove or replace it") from None


def _to_tensor(img) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def decode_eval(path: Path, size: int) -> torch.Tensor:
    """Resize so the short side is ``size / 0.875``, take the centre ``size`` x ``size``."""
    from PIL import Image

    img = _open_rgb(path)
    short = max(size, round(size / EVAL_CROP_FRACTION))
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return _to_tensor(img.crop((left, top, left + size, top + size)))


def decode_train(path: Path, size: int, rng: random.Random, flip: bool) -> torch.Tensor:
    """Random-resized crop (scale 0.08-1, aspect 3/4-4/3) to ``size``, then a random flip."""
    from PIL import Image

    img = _open_rgb(path)
    w, h = img.size
    box = None
    for _ in range(10):
        area = w * h * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            box = (left, top, left + cw, top + ch)
            break
    if box is None:
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    img = img.resize((size, size), Image.BILINEAR, box=box)
    if flip and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return _to_tensor(img)


def decode_all(files: FileImages, size: int) -> TensorImages:
    """Decode every file (evaluation crop) into one uint8 tensor, with a progress bar."""
    workers = min(8, os.cpu_count() or 1)
    out = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    with ThreadPoolExecutor(workers) as pool:
        decoded = pool.map(lambda p: decode_eval(p, size), files.paths)
        for i, image in enumerate(tqdm(decoded, total=len(files), desc="decoding images", unit="img", leave=False)):
            out[i] = image
    return TensorImages(out, files.labels.clone())
