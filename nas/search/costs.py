"""What an architecture costs on a device, as the search sees it: predicted, never invented.

A search reads cost through :class:`DeviceCost` (a protocol): ``predict_latency_ms``
and ``predict_energy_mj`` for a batch of archs, and ``latency_error``, the predictor's
own validation error, from which the safety margin on a budget is derived. Two
implementations:

* :class:`ProfileCost`: a device profiled with ``edgenas profile`` or imported with
  ``edgenas devices import`` (``WORKSPACE/profiles/NAME.json``); its predictors are
  refitted from the stored measurements when the search starts.
* :class:`TableLatency`: for ``nb201`` only, ``table:COLUMN`` reads the *measured*
  latency of every cell on one of the 13 devices of ``shared/data/nb201/latency_ms.csv``
  (an oracle: use it to study the search itself, and to judge a predicted search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nas.errors import EdgenasError
from nas.workspace import Workspace, check_device_name

TABLE_PREFIX = "table:"


class DeviceCost(Protocol):
    """Predicted cost of archs on one device."""

    name: str

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray: ...

    def predict_energy_mj(self, archs: Sequence[Any]) -> np.ndarray | None: ...

    @property
    def latency_error(self) -> float | None:
        """Mean relative error of the latency predictor on held-out networks (0.05 = 5 %)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Identity of the cost source (stored with the study, so a study is not reused
        with another profile of the same name)."""
        ...


@dataclass
class TableLatency:
    """Measured NAS-Bench-201 latency of one of the benchmark's devices (exact, no predictor)."""

    name: str
    column: str
    latency_ms: np.ndarray

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        return self.latency_ms[[a.index for a in archs]]

    def predict_energy_mj(self, archs: Sequence[Any]) -> np.ndarray | None:
        return None

    @property
    def latency_error(self) -> float | None:
        return 0.0

    def describe(self) -> dict[str, Any]:
        return {"kind": "nb201-table", "column": self.column}


@dataclass
class ProfileCost:
    """A stored device profile's fitted predictors (``latency_predictors.device_profile``)."""

    name: str
    model: Any
    profile_json: dict[str, Any]

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        return np.asarray(self.model.predict(list(archs))["latency_ms"], dtype=float)

    def predict_energy_mj(self, archs: Sequence[Any]) -> np.ndarray | None:
        if getattr(self.model, "energy", None) is None:
            return None
        return np.asarray(self.model.predict(list(archs))["energy_mj"], dtype=float)

    @property
    def latency_error(self) -> float | None:
        figures = self.profile_json.get("validation", {}).get(self.profile_json.get("predictor", ""), {})
        mape = figures.get("mape_pct") if isinstance(figures, dict) else None
        return None if mape is None or not math.isfinite(mape) else float(mape) / 100.0

    def describe(self) -> dict[str, Any]:
        p = self.profile_json
        return {"kind": "profile", "predictor": p.get("predictor"), "created": p.get("created"),
                "counts": p.get("counts", {})}


def load_device(name: str, space: Any, workspace: Workspace) -> DeviceCost:
    """The cost source for ``--device NAME``: ``table:COLUMN`` (nb201) or a stored profile."""
    if name.startswith(TABLE_PREFIX):
        return _table_device(name, space)
    if name not in workspace.device_names() and space.name == "nb201":
        check_device_name(name)
        known = ", ".join(workspace.device_names()) or "none is stored yet"
        raise EdgenasError(
            f"unknown device {name!r} in workspace {workspace.root} (known: {known}); profile it with "
            f"`edgenas profile --device {name}` or `edgenas devices import {name} --space nb201 "
            "--measurements FILE.csv`, or use table:COLUMN for nb201's measured devices"
        )
    model = workspace.cost_model(name, space)
    return ProfileCost(name, model, model.profile.to_json())


def _table_device(name: str, space: Any) -> TableLatency:
    if space.name != "nb201":
        raise EdgenasError(f"--device {name}: measured-table devices exist only for --space nb201")
    from latency_predictors.nb201_table import load_nb201_latency

    table = load_nb201_latency()
    column = name[len(TABLE_PREFIX):]
    if column not in table.devices:
        raise EdgenasError(f"--device {name}: no such nb201 column; use table:NAME with NAME one of {', '.join(table.devices)}")
    return TableLatency(name, column, table.column(column).copy())
