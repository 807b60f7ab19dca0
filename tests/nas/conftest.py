"""Tiny training configs for the nas tests (resolution 24-28, batch 8, a few steps)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY: dict[str, Any] = {
    "seed": 0,
    "log_every": 1,
    "space": {"name": "mbv3", "options": {"preset": "small", "resolutions": [24, 28]}},
    "data": {"name": "digits", "limit": 240, "val_fraction": 0.2, "calibration_size": 32},
    "train": {"steps": 4, "batch_size": 8, "num_random": 1, "lr": 0.05, "warmup_steps": 1,
              "device": "cpu", "threads": 1},
    "checkpoint": {"every_steps": 2},
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., Path]:
    """``tiny_config(name="a", train={"steps": 6})`` writes a tiny YAML config, returns its path."""

    def write(name: str = "tiny", **changes: Any) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merge(TINY, changes)))
        return path

    return write
