"""Tabulated NAS-Bench-201 accuracy (``shared/data/nb201/accuracy.csv``) for tabular search.

Accuracy (%) of every cell after the benchmark's **12-epoch** schedule, on CIFAR-10,
CIFAR-100 and ImageNet16-120, validation and test splits. With the ``nb201`` space a
search reads accuracy here instead of evaluating a supernet, so the search code can be
measured against the known optimum. The data directory is found as in
:func:`latency_predictors.nb201_table.nb201_data_dir`.

Example::

    table = load_nb201_accuracy()
    table.accuracy("cifar100", "valid")[arch.index]   # one cell
    table.best("cifar10", "test")                     # (index, accuracy)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from latency_predictors.nb201_table import read_nb201_csv

DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
"""Dataset name -> column prefix in ``accuracy.csv``."""
SPLITS: dict[str, str] = {"valid": "val", "test": "test"}
"""Split name -> column suffix in ``accuracy.csv``."""


@dataclass(frozen=True)
class NB201AccuracyTable:
    """Accuracy (%) per (dataset, split), each an array indexed by NB201 index."""

    cellstrs: tuple[str, ...]
    columns: dict[tuple[str, str], np.ndarray]

    def accuracy(self, dataset: str, split: str = "valid") -> np.ndarray:
        """Accuracy (%) of all 15,625 cells on ``dataset`` (``cifar10``, ``cifar100``,
        ``imagenet16-120``) and ``split`` (``valid`` or ``test``)."""
        if dataset not in DATASETS:
            raise ValueError(f"unknown nb201 dataset {dataset!r}; use one of {list(DATASETS)}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        return self.columns[(dataset, split)]

    def best(self, dataset: str, split: str = "valid") -> tuple[int, float]:
        """NB201 index and accuracy of the most accurate cell."""
        acc = self.accuracy(dataset, split)
        i = int(np.argmax(acc))
        return i, float(acc[i])


def load_nb201_accuracy(path: str | os.PathLike[str] | None = None) -> NB201AccuracyTable:
    """Read ``accuracy.csv`` from ``path``, ``$EDGENAS_NB201_DIR`` or ``../shared/data/nb201``."""
    header, rows = read_nb201_csv("accuracy.csv", path)
    columns = {}
    for dataset, prefix in DATASETS.items():
        for split, suffix in SPLITS.items():
            name = f"{prefix}-{suffix}"
            if name not in header:
                raise ValueError(f"accuracy.csv: column {name!r} is missing")
            j = header.index(name)
            try:
                columns[(dataset, split)] = np.array([float(r[j]) for r in rows])
            except ValueError:
                raise ValueError(f"accuracy.csv: column {name!r} has a non-numeric value") from None
    return NB201AccuracyTable(tuple(r[1] for r in rows), columns)
