"""Offline data for adaptation: a cloud proxy domain and a shifted device domain.

The cloud model is trained on *proxy* data; devices see data of the same classes from a
shifted environment (more noise, shear and translation for MNIST-1D; noise, shifts and
contrast for digits), so adapting to local data matters. Every array is float32
``(N, C, H, W)`` (a 1-D signal has ``H = 1``) with int64 labels. Nothing is downloaded:
MNIST-1D comes from the ``mnist1d`` package's own generator, digits from scikit-learn,
CIFAR only from a local path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import EdgenasError

DATASETS = ("mnist1d", "digits", "cifar10", "cifar100")


@dataclass(frozen=True)
class DomainData:
    """Cloud proxy data and the device domain's training and test pools."""

    name: str
    proxy_x: np.ndarray
    proxy_y: np.ndarray
    pool_x: np.ndarray
    pool_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.pool_x.shape[1:])  # type: ignore[return-value]


def load_domain_data(name: str, seed: int = 0, proxy_samples: int = 3000,
                     device_samples: int = 16000, root: str | Path | None = None) -> DomainData:
    """The data set ``name`` split into a cloud proxy and a shifted device domain."""
    if name == "mnist1d":
        return _mnist1d(seed, proxy_samples, device_samples)
    if name == "digits":
        return _digits(seed, proxy_samples, device_samples)
    if name in ("cifar10", "cifar100"):
        return _cifar(name, seed, proxy_samples, root)
    raise EdgenasError(f"data.name {name!r} is not supported; choose one of {', '.join(DATASETS)}")


def _mnist1d_signals(samples: int, seed: int, **shift: float) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` signals from the mnist1d generator (``make_dataset``; it never downloads)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise EdgenasError("data.name mnist1d needs the mnist1d package: pip install 'edgenas[adapt]'") from None
    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = samples, seed, 1.0
    for key, value in shift.items():
        setattr(args, key, value)
    state = np.random.get_state()  # make_dataset reseeds numpy's global generator
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.asarray(data["x"], dtype=np.float32)[:, None, None, :]
    return x, np.asarray(data["y"], dtype=np.int64)


def _mnist1d(seed: int, proxy_samples: int, device_samples: int) -> DomainData:
    # The proxy domain is cleaner than the field: less correlated noise, shear and scaling.
    px, py = _mnist1d_signals(proxy_samples, seed + 1, corr_noise_scale=0.1, shear_scale=0.3,
                              iid_noise_scale=0.01, scale_coeff=0.2)
    dx, dy = _mnist1d_signals(device_samples, seed + 2, corr_noise_scale=0.35, shear_scale=0.9,
                              iid_noise_scale=0.05, scale_coeff=0.5)
    cut = int(len(dy) * 0.8)
    return DomainData("mnist1d", px, py, dx[:cut], dy[:cut], dx[cut:], dy[cut:], 10)


def _shifted_digits(images: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """``copies`` field versions of each image: +-1 pixel shifts, lower contrast, noise."""
    out = []
    for _ in range(copies):
        shift = rng.integers(-1, 2, size=(len(images), 2))
        moved = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(images, shift)])
        contrast = rng.uniform(0.5, 1.0, size=(len(images), 1, 1))
        out.append(moved * contrast + rng.normal(0.0, 0.15, size=moved.shape))
    return np.concatenate(out).astype(np.float32)


def _digits(seed: int, proxy_samples: int, device_samples: int) -> DomainData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    n_proxy = min(proxy_samples, len(labels) // 3)
    proxy, rest = order[:n_proxy], order[n_proxy:]
    cut = int(len(rest) * 0.75)
    pool, test = rest[:cut], rest[cut:]
    copies = max(1, device_samples // len(pool))
    pool_x = _shifted_digits(images[pool], copies, rng)
    test_x = _shifted_digits(images[test], max(1, copies // 2), rng)
    return DomainData(
        "digits", images[proxy][:, None], labels[proxy],
        pool_x[:, None], np.tile(labels[pool], copies),
        test_x[:, None], np.tile(labels[test], max(1, copies // 2)), 10,
    )


def _cifar(name: str, seed: int, proxy_samples: int, root: str | Path | None) -> DomainData:
    if root is None:
        raise EdgenasError(f"data.root is required for {name}: point it at the local CIFAR directory")
    from nas.data.sources import load_cifar

    raw = load_cifar(root, name, 32)
    x = raw.train.images.float().numpy() / 255.0
    y = raw.train.labels.numpy()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    proxy, rest = order[:proxy_samples], order[proxy_samples:]
    test_x = raw.test.images.float().numpy() / 255.0 if raw.test is not None else x[rest[-5000:]]
    test_y = raw.test.labels.numpy() if raw.test is not None else y[rest[-5000:]]
    return DomainData(name, x[proxy], y[proxy], x[rest], y[rest], test_x.astype(np.float32),
                      test_y, len(raw.classes))
