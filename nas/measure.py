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

import torch
from torch import nn


@dataclass(frozen=True)
class MeasuredCost:
    latency_ms: float
    spread_ms: float
    repeats: int
    energy_mj: float | None
    how: dict[str, Any]


def measure_model(profile: Any, model: nn.Module, input_shape: Any, reach: Any = None,
                  profiler: Any = None) -> MeasuredCost:
    """Compile and time ``model`` (batch 1) on ``profile``'s device (``reach``: another address).

    ``input_shape`` is a float input's shape, or an example input (token ids) itself
    (:data:`latency_predictors.timing.ExampleInput`).
    """
    from latency_predictors.profilers import profiler_for_profile

    profiler = profiler or profiler_for_profile(profile, reach)
    example = input_shape if isinstance(input_shape, torch.Tensor) else tuple(input_shape)
    timing = profiler.measure(model.eval().cpu(), example)
    return MeasuredCost(timing.median_ms, timing.spread_ms, timing.repeat, timing.energy_mj, profiler.describe())


def measure_metrics(profile: Any, space: Any, arch: Any, model: nn.Module, reach: Any = None) -> dict[str, MeasuredCost]:
    """Every latency metric of ``arch`` measured for real on ``profile``'s device, by name
    (``latency_ms``; ``decode_ms`` and ``prefill_ms`` for gpt).

    The metric of the space's default network times ``model`` itself (the fine-tuned
    weights); the others time ``space.build_static(arch, phase=...)`` (a decode step over a
    KV cache of the context): the same shapes and kernels, and weights do not change latency.
    """
    from latency_predictors.cost_metrics import latency_metrics
    from latency_predictors.profilers import profiler_for_profile

    profiler = profiler_for_profile(profile, reach)
    out = {}
    for metric in latency_metrics(space):
        module = model if metric.default else metric.build(space, arch)
        example = metric.timing_input(space, arch)
        out[metric.name] = measure_model(profile, module, example, profiler=profiler)
    return out
