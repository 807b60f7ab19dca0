"""Few-shot predictors for imported devices: :class:`FewShotLatencyRegressor` on a space's archs.

The regressor works on feature rows (reference devices' latencies, then arch cost
features); this adapter builds those rows from archs, so a device imported with a few
measured rows predicts any arch of the space. For ``nb201`` the reference latencies are
the measured table (``latency_ms.csv``: every cell on 13 devices) and the cost features
the cell's op counts followed by their dead part (:func:`arch_features`), so the
regressor can tell a runtime that drops dead code from one that runs it. Used by
``edgenas devices import`` when few rows are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latency_predictors.errors import InputError
from latency_predictors.measurements import Measurement
from search_spaces import SearchSpace
from search_spaces.nb201.arch import OPS

FEWSHOT_MAX_ROWS = 50
"""Imports with at most this many rows use the few-shot regressor where it applies."""


def fewshot_supported(space: SearchSpace) -> bool:
    """True where the few-shot regressor and its features exist for ``space``."""
    if space.name != "nb201":
        return False
    try:
        import latency_predictors.fewshot  # noqa: F401
        from latency_predictors.nb201_table import nb201_data_dir

        nb201_data_dir()
    except (ImportError, FileNotFoundError):
        return False
    return True


def arch_features(archs: Sequence[Any]) -> np.ndarray:
    """Cost features of nb201 archs as the few-shot regressor takes them: op counts, then
    the dead part of each (``n_arch_features=8, n_dead_features=4``)."""
    rows = [(*a.op_counts(), *a.dead_op_counts()) for a in archs]
    return np.asarray(rows, dtype=np.float64) if rows else np.zeros((0, 2 * (len(OPS) - 1)))


def make_regressor(n_arch_features: int, **params: Any) -> Any:
    """The few-shot regressor as ``devices import`` configures it for features built by
    :func:`arch_features` (``params`` override its defaults)."""
    from latency_predictors.fewshot import FewShotLatencyRegressor

    return FewShotLatencyRegressor(n_arch_features=n_arch_features, n_dead_features=n_arch_features // 2, **params)


class FewShotArchModel:
    """Fitted few-shot model over archs: ``predict(archs)`` in ms."""

    def __init__(self, space: SearchSpace, reference: Sequence[str], regressor: Any) -> None:
        self.space = space
        self.reference = tuple(reference)
        self.regressor = regressor
        self._table: Any = None

    def features(self, archs: Sequence[Any]) -> np.ndarray:
        idx = np.asarray([a.index for a in archs], dtype=int)
        counts = arch_features(archs)
        if not self.reference:
            return counts
        if self._table is None:
            from latency_predictors.nb201_table import load_nb201_latency

            table = load_nb201_latency()
            self._table = table.matrix(exclude=[d for d in table.devices if d not in self.reference])
        return np.column_stack([self._table[idx], counts])

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        return self.regressor.predict(self.features(archs))


def fit_fewshot(space: SearchSpace, measurements: Sequence[Measurement], params: dict[str, Any]) -> FewShotArchModel:
    """Fit on ``measurements`` (whole networks); ``params`` holds ``reference`` (table
    columns used as features) and the regressor's own parameters."""
    if not fewshot_supported(space):
        raise InputError(f"few-shot prediction needs the nb201 space and its latency table, not {space.name}")
    params = dict(params)
    reference = params.pop("reference", [])
    archs = [space.arch_from_json(m.item) for m in measurements]
    model = FewShotArchModel(space, reference, None)
    regressor = make_regressor(arch_features(archs[:1]).shape[1], **params)
    model.regressor = regressor.fit(model.features(archs), [m.median_ms for m in measurements])
    return model
