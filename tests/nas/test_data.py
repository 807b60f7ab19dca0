"""Data sets: deterministic splits, real digits, CIFAR files read safely, ImageFolder, batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import (
    DataConfig,
    EvalBatches,
    FileImages,
    Normalizer,
    TensorImages,
    load_cifar_pickle,
    load_splits,
    train_batches,
)
from nas.errors import EdgenasError


def _ids(images: TensorImages) -> set[bytes]:
    return {img.numpy().tobytes() + bytes([int(lab)]) for img, lab in zip(images.images, images.labels)}


def test_splits_are_deterministic_disjoint_and_follow_the_seed() -> None:
    cfg = DataConfig(name="digits", val_fraction=0.2, calibration_size=100)
    a, b, c = load_splits(cfg, 0, 16), load_splits(cfg, 0, 16), load_splits(cfg, 1, 16)
    for name in ("train", "validation", "calibration"):
        assert torch.equal(getattr(a, name).images, getattr(b, name).images)
        assert torch.equal(getattr(a, name).labels, getattr(b, name).labels)
    assert not torch.equal(a.validation.labels, c.validation.labels)
    assert len(a.train) + len(a.validation) == 1797 and len(a.validation) == round(0.2 * 1797)
    assert len(a.calibration) == 100
    train, val = _ids(a.train), _ids(a.validation)
    assert _ids(a.calibration) <= train
    # digits has a few duplicate images; held-out images are (nearly all) unseen in training
    assert len(val & train) <= 5


def test_digits_are_the_real_scikit_learn_scans() -> None:
    from sklearn.datasets import load_digits

    splits = load_splits(DataConfig(name="digits", val_fraction=0.1), 0, 8)
    sk = load_digits()
    assert splits.num_classes == 10 and splits.image_size == 8
    # at 8x8 no resizing happens: every image is a scikit-learn image scaled to 0..255
    ours = torch.cat([splits.train.images, splits.validation.images])[:, 0].numpy().astype(np.float64)
    theirs = {np.round(img * 255 / 16).astype(np.uint8).tobytes() for img in sk.images}
    assert all(img.astype(np.uint8).tobytes() in theirs for img in ours)
    assert torch.equal(splits.train.images[:, 0], splits.train.images[:, 2])  # grey in 3 channels
    counts = torch.bincount(torch.cat([splits.train.labels, splits.validation.labels]), minlength=10)
    assert counts.tolist() == np.bincount(sk.target).tolist()
    big = load_splits(DataConfig(name="digits"), 0, 32)
    assert big.train.images.shape[1:] == (3, 32, 32) and big.train.images.dtype == torch.uint8


def _write_cifar10(root: Path, n: int = 20, n_test: int = 5) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    for i in range(1, 6):
        batch = {b"batch_label": b"training batch", b"labels": labels, b"data": data, b"filenames": []}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": labels[:n_test], b"data": data[:n_test]}, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [s.decode() for s in names]}, protocol=2))
    return data, labels


def test_cifar_directory_is_read_with_the_restricted_unpickler(tmp_path: Path) -> None:
    data, labels = _write_cifar10(tmp_path)
    splits = load_splits(DataConfig(name="cifar10", path=str(tmp_path), val_fraction=0.1, calibration_size=8), 0, 32)
    assert splits.classes[0] == "airplane" and splits.num_classes == 10
    assert len(splits.train) + len(splits.validation) == 100 and len(splits.test) == 5
    everything = torch.cat([splits.train.images, splits.validation.images]).reshape(100, -1).numpy()
    assert {row.tobytes() for row in everything} == {row.tobytes() for row in data}


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_cifar_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({"data": _Exploit(marker)}, protocol=2))
    with pytest.raises(EdgenasError, match=r"not a genuine CIFAR file .*refused global (posix|os|nt)\.system"):
        load_cifar_pickle(evil)
    assert not marker.exists()
    builtins_eval = pickle.dumps({"x": eval}, protocol=2)  # a reference to builtins.eval
    (tmp_path / "b").write_bytes(builtins_eval)
    with pytest.raises(EdgenasError, match=r"refused global (__builtin__|builtins)\.eval"):
        load_cifar_pickle(tmp_path / "b")


def test_a_truncated_cifar_file_is_a_one_line_error(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(EdgenasError, match="data_batch_3 is truncated or corrupt"):
        load_splits(DataConfig(name="cifar10", path=str(tmp_path)), 0, 32)


def _write_image_folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for cls in ("cat", "dog", "eel"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


@pytest.mark.parametrize("in_memory", [True, False])
def test_image_folder_in_memory_and_streamed(tmp_path: Path, in_memory: bool) -> None:
    _write_image_folder(tmp_path)
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), val_fraction=0.0, in_memory=in_memory, workers=0)
    splits = load_splits(cfg, 0, 16)
    assert splits.classes == ("cat", "dog", "eel") and len(splits.train) == 18 and len(splits.validation) == 6
    assert isinstance(splits.train, TensorImages if in_memory else FileImages)
    norm = Normalizer(splits.mean, splits.std, torch.device("cpu"))
    x, y = next(train_batches(splits.train, norm, image_size=16, augment="crop_flip", seed=0, start_step=0, global_batch=6))
    assert x.shape == (6, 3, 16, 16) and x.dtype == torch.float32 and y.shape == (6,)
    batches = list(EvalBatches(splits.validation, norm, 4, 16))
    assert [b[0].shape[0] for b in batches] == [4, 2]


def test_broken_image_is_a_one_line_error(tmp_path: Path) -> None:
    _write_image_folder(tmp_path)
    (tmp_path / "train" / "cat" / "9.png").write_bytes(b"not a png")
    with pytest.raises(EdgenasError, match="9.png is not a readable image"):
        load_splits(DataConfig(name="imagefolder", path=str(tmp_path), in_memory=True), 0, 16)


def test_train_batches_shard_and_resume_exactly() -> None:
    splits = load_splits(DataConfig(name="synthetic-test-only"), 0, 16)
    norm = Normalizer(splits.mean, splits.std, torch.device("cpu"))

    def batches(start: int, rank: int = 0, world: int = 1):  # type: ignore[no-untyped-def]
        return train_batches(splits.train, norm, image_size=16, augment="crop_flip", seed=3,
                             start_step=start, global_batch=8, rank=rank, world_size=world)

    full = batches(0)
    steps = [next(full) for _ in range(60)]  # crosses epoch boundaries (460 images / 8)
    resumed = batches(57)
    for step in (57, 58, 59):
        x, y = next(resumed)
        assert torch.equal(x, steps[step][0]) and torch.equal(y, steps[step][1])
    r0, r1 = next(batches(5, 0, 2)), next(batches(5, 1, 2))
    assert torch.equal(torch.cat([r0[0], r1[0]]), steps[5][0])
    assert not torch.equal(steps[0][0], steps[1][0])
