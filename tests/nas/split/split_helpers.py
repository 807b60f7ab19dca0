"""Devices whose cost is a known formula, fitted by the real predictors (for the split tests).

A synthetic device's block costs ``overhead + mflops * ms_per_mflop`` and a whole network
``per_call`` more than the sum of its blocks; the measurements go into a real workspace
store and the real :func:`~latency_predictors.device_profile.fit_cost_model` fits them, so
the planner is tested against costs that are known exactly.
"""

from __future__ import annotations

import random
from typing import Any

from latency_predictors.device_profile import DeviceProfile
from latency_predictors.measurements import Measurement
from nas.workspace import Workspace


def block_cost(block: Any, ms_per_mflop: float, overhead: float) -> float:
    return overhead + block.flops / 1e6 * ms_per_mflop


def synthetic_device(ws: Workspace, name: str, space: Any, *, ms_per_mflop: float, overhead: float = 0.05,
                     per_call: float = 0.3, nets: int = 12, seed: int = 0) -> DeviceProfile:
    """Store a profile and measurements of a device with known costs; returns the profile."""
    rng = random.Random(seed)
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(40)]
    common = dict(device=name, space=space.name, backend="eager", schedule="untuned", target={"kind": "synthetic"},
                  tvm_version="", number=1, repeat=1, spread_ms=0.0)
    rows, seen = [], set()
    for arch in archs:
        for b in space.blocks(arch):
            if b.key() not in seen:
                seen.add(b.key())
                rows.append(Measurement(role="block", item=b.key(), input_shape=tuple(b.in_shape),
                                        median_ms=block_cost(b, ms_per_mflop, overhead), **common))
    for arch in archs[:nets]:
        total = per_call + sum(block_cost(b, ms_per_mflop, overhead) for b in space.blocks(arch))
        rows.append(Measurement(role="train", item=space.arch_key(arch), input_shape=tuple(space.input_shape(arch)),
                                median_ms=total, **common))
    ws.measurements().add_many(rows)
    profile = DeviceProfile(name=name, space=space.describe(), target={"kind": "synthetic"},
                            reached={"kind": "local"}, backend="eager", predictor="block_sum",
                            predictor_params={"candidates": ["ridge"]})
    profile.save(ws.profile_path(name))
    return profile


def worker_processes() -> list:
    """The cloud processes this test process started and that are still running."""
    import os

    import psutil

    from nas.split.run import WORKER_MARK

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(WORKER_MARK) == str(os.getpid()):
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found
