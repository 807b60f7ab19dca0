"""Measure a model for real on a profiled device, the way its profile was measured.

The device profile records its target, how the device was reached (this machine, an RPC
server, a tracker key, and the cross compiler that links for it), the schedule (untuned
or MetaSchedule with its database) and the timing settings;
:func:`~latency_predictors.profilers.profiler_for_profile` rebuilds that profiler, so a
fine-tuned model's measured latency is comparable with what the device's predictor said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class MeasuredCost:
    latency_ms: float
    spread_ms: float
    repeats: int
    energy_mj: float | None
    how: dict[str, Any]


def measure_model(profile: Any, model: nn.Module, input_shape: tuple[int, ...], reach: Any = None) -> MeasuredCost:
    """Compile and time ``model`` (batch 1) on ``profile``'s device (``reach``: another address)."""
    from latency_predictors.profilers import profiler_for_profile

    profiler = profiler_for_profile(profile, reach)
    timing = profiler.measure(model.eval().cpu(), tuple(input_shape))
    return MeasuredCost(timing.median_ms, timing.spread_ms, timing.repeat, timing.energy_mj, profiler.describe())
