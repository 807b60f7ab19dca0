"""The devices of a workspace: list them, import one measured elsewhere, predict what archs cost.

These are what ``edgenas devices`` and ``edgenas predict`` run. A device is a profile
(``WORKSPACE/profiles/NAME.json``) plus its measurements; :mod:`nas.profiling` makes one
through TVM, :func:`import_device` from a CSV of whole networks measured elsewhere
(columns ``arch``, ``latency_ms`` and optionally ``energy_mj``).

Example::

    from nas.devices import import_device, predict_costs
    from nas.workspace import Workspace

    ws = Workspace.resolve()
    import_device(ws, "pixel7", "nb201", "pixel7.csv")
    predict_costs(ws, "pixel7", space, archs)["latency_ms"]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import EdgenasError
from nas.spaces import build_space
from nas.workspace import Workspace, check_device_name


def list_devices(workspace: Workspace) -> list[Any]:
    """Every device profile of the workspace (a damaged one is reported, not skipped silently)."""
    return [workspace.load_profile(name) for name in workspace.device_names()]


def import_device(workspace: Workspace, name: str, space: str | Any, measurements: str | Path, *,
                  preset: str | None = None, replace: bool = False, progress: bool = True) -> tuple[Any, int]:
    """Import ``measurements`` (CSV) as device ``name``; returns the profile and the row count.

    An existing device of that name is refused unless ``replace`` (then its profile is kept
    as a backup beside the new one); a device of another space under that name is always
    refused.
    """
    from latency_predictors.csv_import import read_measurements_csv
    from latency_predictors.device_import import import_device as store_import

    check_device_name(name)
    built = build_space(space, preset=preset) if isinstance(space, str) else space
    rows = read_measurements_csv(measurements, built)
    profile = store_import(name, built, rows, workspace.measurements(), workspace.profiles_dir, str(measurements),
                           replace=replace, progress=progress)
    return profile, len(rows)


def predict_costs(workspace: Workspace, device: str, space: Any, archs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Predicted ``latency_ms`` (and ``energy_mj`` where the device has a meter) of ``archs``."""
    if not archs:
        raise EdgenasError("no archs to predict")
    return workspace.cost_model(device, space).predict(list(archs))


__all__ = ["import_device", "list_devices", "predict_costs"]
