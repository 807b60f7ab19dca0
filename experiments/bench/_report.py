"""Figures as JSON lines: ``{"bench", "figure", "value", "unit", "device", "config"}``.

Every benchmark prints its figures through :func:`emit` and, with ``--out``, writes them
all to ``experiments/results/NAME.json`` via :func:`write_results`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def device_name(device: str = "cpu") -> str:
    """A readable name of the device a figure was measured on."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    import os

    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def emit(records: list[dict[str, Any]], bench: str, figure: str, value: float, unit: str,
         device: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print one figure as a JSON line and keep it in ``records``."""
    record = {"bench": bench, "figure": figure, "value": value, "unit": unit,
              "device": device, "config": config or {}}
    print(json.dumps(record), flush=True)
    records.append(record)
    return record


def write_results(records: list[dict[str, Any]], name: str, out: str | None = None) -> Path:
    """Write ``records`` to ``out`` or ``experiments/results/NAME.json``."""
    path = Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")
    return path
