"""Measure a model for real on a profiled device, the way its profile was measured.

The device profile records its target, how the device was reached (this machine, an RPC
server, a tracker key), the schedule (untuned or MetaSchedule with its database) and the
timing settings, so a fine-tuned model's measured latency is comparable with what the
device's predictor said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from nas.errors import EdgenasError


@dataclass(frozen=True)
class MeasuredCost:
    latency_ms: float
    spread_ms: float
    repeats: int
    energy_mj: float | None
    how: dict[str, Any]


def profiler_for(profile: Any, rpc: str | None = None, tracker: str | None = None, key: str | None = None) -> Any:
    """A profiler that reaches ``profile``'s device as it was reached when profiled
    (``rpc``/``tracker``/``key`` override the recorded address)."""
    from latency_predictors.energy import detect_meter
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import TVMProfiler, target_threads

    timing = TimingConfig(**profile.timing) if profile.timing else TimingConfig()
    schedule = Schedule(**{k: v for k, v in profile.schedule.items() if k in ("kind", "trials", "database")})
    if profile.backend == "eager":
        from latency_predictors.eager_profiler import EagerProfiler

        return EagerProfiler(threads=target_threads(profile.target), timing=timing)
    reached = profile.reached or {"kind": "local"}
    if rpc or tracker or reached.get("kind") in ("rpc", "tracker"):
        from latency_predictors.rpc import connect

        if not (rpc or tracker):
            rpc = reached.get("address") if reached.get("kind") == "rpc" else None
            tracker = reached.get("tracker") if reached.get("kind") == "tracker" else None
            key = key or reached.get("key")
        session = connect(profile.target, rpc=rpc, tracker=tracker, key=key)
        return TVMProfiler(profile.target, session=session, timing=timing, schedule=schedule)
    return TVMProfiler(profile.target, timing=timing, schedule=schedule, meter=detect_meter(profile.target))


def measure_model(profile: Any, model: nn.Module, input_shape: tuple[int, ...], **reach: Any) -> MeasuredCost:
    """Compile and time ``model`` (batch 1) on ``profile``'s device."""
    if profile.backend not in ("tvm", "eager"):
        raise EdgenasError(f"device {profile.name} was profiled with backend {profile.backend!r}, which cannot measure a model here")
    profiler = profiler_for(profile, **reach)
    timing = profiler.measure(model.eval().cpu(), tuple(input_shape))
    return MeasuredCost(timing.median_ms, timing.spread_ms, timing.repeat, timing.energy_mj, profiler.describe())
