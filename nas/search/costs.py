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
    """Predicted cost of archs on one device.

    ``metrics``: the latency metrics it predicts, the primary first (``("latency_ms",)``;
    ``("decode_ms", "prefill_ms")`` for gpt); ``predict_latency_ms`` is the primary one.
    """

    name: str
    metrics: tuple[str, ...]

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray: ...

    def predict_metrics(self, archs: Sequence[Any]) -> dict[str, np.ndarray]:
        """Every latency metric of ``archs``, by name."""
        ...

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
    metrics: tuple[str, ...] = ("latency_ms",)

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        return self.latency_ms[[a.index for a in archs]]

    def predict_metrics(self, archs: Sequence[Any]) -> dict[str, np.ndarray]:
        return {"latency_ms": self.predict_latency_ms(archs)}

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

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.model.metrics)

    def predict_latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        return np.asarray(self.model.predict(list(archs))[self.model.primary], dtype=float)

    def predict_metrics(self, archs: Sequence[Any]) -> dict[str, np.ndarray]:
        out = self.model.predict(list(archs))
        return {m: np.asarray(out[m], dtype=float) for m in self.metrics}

    def metric_error(self, metric: str) -> float | None:
        """Like :attr:`latency_error`, for ``metric``."""
        if metric == self.metrics[0]:
            return self.latency_error
        table = (self.profile_json.get("metric_validation") or {}).get(metric, {})
        mape = (table.get(self.profile_json.get("predictor", ""), {}) or {}).get("mape_pct")
        return None if mape is None or not math.isfinite(mape) else float(mape) / 100.0

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
        out = {"kind": "profile", "predictor": p.get("predictor"), "created": p.get("created"),
               "counts": p.get("counts", {})}
        if self.metrics != ("latency_ms",):  # studies of one-metric spaces keep their identity
            out["metrics"] = list(self.metrics)
        return out


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


def check_budget_units(budget: Any, space: Any, devices: Sequence[DeviceCost]) -> None:
    """Refuse, in one line naming the fix, a budget the space or a device has no metric for:
    ``--max-latency-ms`` on gpt (it has ``decode_ms`` and ``prefill_ms``), ``--max-decode-ms``
    on an image space, ``--max-memory-mb`` on a space that does not count inference memory."""
    from nas.search.objectives import LATENCY_BUDGETS, flag

    for d in devices:
        for metric in budget.latency_limits():
            if metric in d.metrics:
                continue
            given = flag(LATENCY_BUDGETS[metric])
            fixes = " or ".join(flag(LATENCY_BUDGETS[m]) for m in d.metrics if m in LATENCY_BUDGETS)
            what = {"decode_ms": "one token after a KV cache of the context",
                    "prefill_ms": "the whole context at once"}
            hint = "".join(f" ({what[m]})" for m in d.metrics[:1] if m in what)
            raise EdgenasError(f"{given}: device {d.name!r} predicts {', '.join(d.metrics)} for space {space.name}, "
                               f"not {metric}; use {fixes}{hint}")
    if budget.max_memory_mb is not None and not hasattr(space, "memory_bytes"):
        raise EdgenasError(f"--max-memory-mb: space {space.name} does not count inference memory; "
                           "bound its size with --max-params-m")


def _table_device(name: str, space: Any) -> TableLatency:
    if space.name != "nb201":
        raise EdgenasError(f"--device {name}: measured-table devices exist only for --space nb201")
    from latency_predictors.nb201_table import load_nb201_latency

    table = load_nb201_latency()
    column = name[len(TABLE_PREFIX):]
    if column not in table.devices:
        raise EdgenasError(f"--device {name}: no such nb201 column; use table:NAME with NAME one of {', '.join(table.devices)}")
    return TableLatency(name, column, table.column(column).copy())
