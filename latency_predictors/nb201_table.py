"""Measured NAS-Bench-201 latencies (``shared/data/nb201/latency_ms.csv``) as a numpy table.

Every one of the 15,625 cells timed on 13 devices (HELP's data; GPU columns carry the
batch size as suffix). The table drives the few-shot transfer experiments: a "new"
device is one column, the others are what is already known. The data directory is
found by :func:`nb201_data_dir`; only the csv module and numpy are used.

Example::

    table = load_nb201_latency()
    y = table.column("pixel3")             # ms, row i = NB201 index i
    X = table.matrix(exclude=table.related("pixel3"))
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latency_predictors.errors import InputError

ENV_VAR = "EDGENAS_NB201_DIR"
NUM_ARCHS = 15625

SAME_HARDWARE: tuple[tuple[str, ...], ...] = (
    ("1080ti_1", "1080ti_32", "1080ti_256"),
    ("titanx_1", "titanx_32", "titanx_256"),
)
"""Columns that are one physical device at different batch sizes (not independent devices)."""


def nb201_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The NAS-Bench-201 data directory: ``path`` if given, else ``$EDGENAS_NB201_DIR``,
    else ``../shared/data/nb201`` beside the repository root. Raises ``FileNotFoundError``
    (one line, naming the environment variable) when it does not exist."""
    if path is not None:
        where, how = Path(path), "the path given"
    elif os.environ.get(ENV_VAR):
        where, how = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        root = Path(__file__).resolve().parents[1]
        where, how = root.parent / "shared" / "data" / "nb201", "the default beside the repo"
    if not where.is_dir():
        raise FileNotFoundError(
            f"NAS-Bench-201 data not found at {where} ({how}); set {ENV_VAR} to the folder "
            "holding accuracy.csv and latency_ms.csv"
        )
    return where


def read_nb201_csv(name: str, path: str | os.PathLike[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of ``name`` in the data directory, rows sorted by NB201 index
    (column ``arch``), checked to hold each of the 15,625 indices once."""
    file = nb201_data_dir(path) / name
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; set {ENV_VAR} to the NAS-Bench-201 data folder")
    with file.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    if header[:2] != ["arch", "cellstr"]:
        raise InputError(f"{file}: the first columns must be 'arch,cellstr', got {header[:2]}")
    try:
        rows.sort(key=lambda r: int(r[0]))
        indices = [int(r[0]) for r in rows]
    except (ValueError, IndexError):
        raise InputError(f"{file}: column 'arch' must hold integer NB201 indices") from None
    if indices != list(range(NUM_ARCHS)):
        raise InputError(f"{file}: expected NB201 indices 0..{NUM_ARCHS - 1} once each")
    return header, rows


@dataclass(frozen=True)
class NB201LatencyTable:
    """Latency in ms of every cell (rows, by NB201 index) on every device (columns)."""

    devices: tuple[str, ...]
    cellstrs: tuple[str, ...]
    latency_ms: np.ndarray

    def _col(self, device: str) -> int:
        if device not in self.devices:
            raise KeyError(f"unknown nb201 device {device!r}; known: {', '.join(self.devices)}")
        return self.devices.index(device)

    def column(self, device: str) -> np.ndarray:
        """Latencies (ms) of all cells on ``device``."""
        return self.latency_ms[:, self._col(device)]

    def related(self, device: str) -> tuple[str, ...]:
        """``device`` and the columns measured on the same hardware at other batch sizes."""
        self._col(device)
        for group in SAME_HARDWARE:
            if device in group:
                return tuple(d for d in group if d in self.devices)
        return (device,)

    def matrix(self, exclude: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """Latencies (ms) on every device except ``exclude``, shape ``(15625, n_devices)``."""
        for d in exclude:
            self._col(d)
        keep = [j for j, d in enumerate(self.devices) if d not in exclude]
        return self.latency_ms[:, keep]

    def reference_devices(self, exclude: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
        """Names of the columns :meth:`matrix` keeps, in order."""
        return tuple(d for d in self.devices if d not in exclude)


def load_nb201_latency(path: str | os.PathLike[str] | None = None) -> NB201LatencyTable:
    """Read ``latency_ms.csv`` (see :func:`nb201_data_dir` for where it is looked up)."""
    header, rows = read_nb201_csv("latency_ms.csv", path)
    devices = tuple(header[2:])
    try:
        values = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"latency_ms.csv: non-numeric latency ({exc})") from None
    if values.shape != (NUM_ARCHS, len(devices)) or not devices:
        raise InputError(f"latency_ms.csv: expected {NUM_ARCHS} rows of {len(devices)} latencies")
    if not np.all(values > 0):
        raise InputError("latency_ms.csv: latencies must be positive")
    return NB201LatencyTable(devices, tuple(r[1] for r in rows), values)
