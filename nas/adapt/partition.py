"""Device data: non-IID label skew, unbalanced sizes, and continuous drift.

Each device holds ``classes_per_device`` of the classes (label skew, m of n) and between
``min_samples`` and ``max_samples`` training samples (unbalanced), drawn from the device
domain's pools by index. A drift step replaces a ``share`` of every device's samples with
samples of a class set in which one class was swapped for a new one (continuous
adaptation). Everything is a pure function of ``(seed, step)``, so a resumed run sees
the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class PartitionSpec:
    """How devices' data are drawn."""

    devices: int = 100
    classes_per_device: int = 3
    min_samples: int = 50
    max_samples: int = 150
    test_samples: int = 60
    num_classes: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.classes_per_device <= self.num_classes:
            raise ValueError(f"classes_per_device must be in 1..{self.num_classes}, got {self.classes_per_device}")
        if not 1 <= self.min_samples <= self.max_samples:
            raise ValueError(f"need 1 <= min_samples <= max_samples, got {self.min_samples} and {self.max_samples}")
        if self.devices < 1 or self.test_samples < 1:
            raise ValueError("devices and test_samples must be at least 1")


@dataclass(frozen=True)
class DeviceData:
    """One device's classes and the pool indices of its training and test samples."""

    device: int
    classes: tuple[int, ...]
    train: np.ndarray
    test: np.ndarray


def _by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


def _draw(by_class: list[np.ndarray], classes: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices spread evenly over ``classes`` (no repeats within a class when possible)."""
    per = np.full(len(classes), n // len(classes))
    per[: n % len(classes)] += 1
    picks = [rng.choice(by_class[c], size=k, replace=k > len(by_class[c])) for c, k in zip(classes, per)]
    return np.concatenate(picks)


def partition(spec: PartitionSpec, pool_y: np.ndarray, test_y: np.ndarray, seed: int) -> list[DeviceData]:
    """Step 0: every device's classes, training and test samples."""
    rng = np.random.default_rng([seed, 0])
    pool, test = _by_class(pool_y, spec.num_classes), _by_class(test_y, spec.num_classes)
    missing = [c for c in range(spec.num_classes) if len(pool[c]) == 0 or len(test[c]) == 0]
    if missing:
        raise ValueError(f"classes {missing} have no samples in the device pools; lower num_classes")
    out = []
    for d in range(spec.devices):
        classes = tuple(sorted(rng.choice(spec.num_classes, spec.classes_per_device, replace=False).tolist()))
        n = int(rng.integers(spec.min_samples, spec.max_samples + 1))
        out.append(DeviceData(d, classes, _draw(pool, classes, n, rng), _draw(test, classes, spec.test_samples, rng)))
    return out


def drift(devices: list[DeviceData], spec: PartitionSpec, pool_y: np.ndarray, test_y: np.ndarray,
          share: float, seed: int, step: int) -> list[DeviceData]:
    """One environment step: swap one class per device and replace ``share`` of its samples."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"drift share must be in [0, 1], got {share}")
    rng = np.random.default_rng([seed, step])
    pool, test = _by_class(pool_y, spec.num_classes), _by_class(test_y, spec.num_classes)
    out = []
    for dev in devices:
        classes = list(dev.classes)
        outside = [c for c in range(spec.num_classes) if c not in classes]
        if outside:
            classes[int(rng.integers(len(classes)))] = int(rng.choice(outside))
        classes_t = tuple(sorted(classes))
        n = len(dev.train)
        k = int(round(share * n))
        keep = rng.choice(n, size=n - k, replace=False)
        train = np.concatenate([dev.train[keep], _draw(pool, classes_t, k, rng)]) if k else dev.train
        out.append(replace(dev, classes=classes_t, train=train,
                           test=_draw(test, classes_t, len(dev.test), rng)))
    return out


def devices_at(step: int, spec: PartitionSpec, pool_y: np.ndarray, test_y: np.ndarray,
               seed: int, share: float) -> list[DeviceData]:
    """Devices' data after ``step`` drift steps (step 0: the initial partition)."""
    devices = partition(spec, pool_y, test_y, seed)
    for s in range(1, step + 1):
        devices = drift(devices, spec, pool_y, test_y, share, seed, s)
    return devices
