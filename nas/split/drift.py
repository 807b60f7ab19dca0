"""Drift correction of a split run's compute: each side's reference network, timed beside each request.

A device profile that was drift corrected (:mod:`latency_predictors.reference`) records its
reference network and that network's time at calibration (``baseline_ms``): its
predictions are what the device computes at the speed it had then. A split run on a
shared machine computes at whatever speed the machine has at that moment (on the
project's 2-core machine the same network's edge compute moved 20-45 % between two runs
with the load), so its raw compute is not what the prediction prices.

Each side therefore builds its profile's reference network, compiles it exactly as its
part (:func:`~nas.split.parts.compile_part`: TVM as profiled, or eager with the same
threads) and times one run of it beside each request's compute, alternately after and
before it (``ABBA``, as :func:`~latency_predictors.timing.time_paired` does), on the same
wall and thread-CPU clocks. The corrected compute is ``raw / reference now x baseline``,
both read on the clock the profile was measured with. The reference runs are never inside
a raw figure (the end-to-end time leaves them out), and the link time is never corrected.
A profile without a reference is not corrected: its corrected compute is the raw one.

Example::

    reference = DriftReference.for_profile(edge_profile)      # None: no reference recorded
    out, compute = paired_compute(edge.run, x, reference, i)
    side = SideCorrection.of(edge_profile, ran=True)
    side.fields("edge", compute)  # edge_ref_ms, edge_ref_cpu_ms, edge_drift, edge_corrected_ms
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latency_predictors.timing import drift_corrected
from nas.split.parts import CompiledPart, Part, compile_part

_COMPILED: dict[str, DriftReference] = {}


@dataclass(frozen=True)
class Compute:
    """One side's compute for one request, on the wall and the thread-CPU clock (ms), and
    the reference run timed beside it (``None``: no reference)."""

    wall_ms: float
    cpu_ms: float
    ref_wall_ms: float | None = None
    ref_cpu_ms: float | None = None


def profile_clock(profile: Any) -> str:
    """The clock ``profile`` was measured with (``cpu`` or ``wall``; profiles without timing
    settings were timed on the wall clock, :class:`~latency_predictors.timing.TimingConfig`'s default)."""
    return str((profile.timing or {}).get("clock", "wall"))


class DriftReference:
    """A profile's reference network, compiled like that device's parts, ready to be timed once
    per request. Build it with :meth:`for_profile` (compiled once per process and profile)."""

    def __init__(self, item: str, baseline_ms: float, clock: str, compiled: CompiledPart, example: np.ndarray) -> None:
        self.item, self.baseline_ms, self.clock = item, baseline_ms, clock
        self.compiled, self.example = compiled, example

    @classmethod
    def for_profile(cls, profile: Any) -> DriftReference | None:
        """The reference of ``profile`` (``None`` when it records none), built as
        :func:`~latency_predictors.profilers.profiler_for_profile` builds it (the default
        metric's network of the reference arch, on its timing input) and compiled as
        :func:`~nas.split.parts.compile_part` compiles that device's parts."""
        from latency_predictors.cost_metrics import default_metric
        from latency_predictors.reference import Reference

        reference = Reference.from_json(getattr(profile, "reference", None))
        if reference is None:
            return None
        key = json.dumps([profile.name, profile.backend, profile.target, profile.schedule, profile.space,
                          reference.item, reference.baseline_ms, profile_clock(profile)], sort_keys=True, default=str)
        if key not in _COMPILED:
            space = profile.build_space()
            arch = space.arch_from_json(reference.item)
            metric = default_metric(space)
            module = metric.build(space, arch).eval()
            given = metric.timing_input(space, arch)
            if isinstance(given, torch.Tensor):
                part = Part(module, tuple(int(d) for d in given.shape[1:]), not given.is_floating_point())
                example = given.numpy()
            else:  # a float input's shape: standard-normal values, as the profilers time it
                part = Part(module, tuple(given))
                example = torch.randn(1, *given, generator=torch.Generator().manual_seed(0)).numpy()
            _COMPILED[key] = cls(reference.item, reference.baseline_ms, profile_clock(profile),
                                 compile_part(part, profile), example)
        return _COMPILED[key]

    def time_once(self) -> tuple[float, float]:
        """One run of the reference: ``(wall ms, thread CPU ms)``."""
        t0, c0 = time.perf_counter(), time.thread_time()
        self.compiled.run(self.example)
        c1, t1 = time.thread_time(), time.perf_counter()
        return (t1 - t0) * 1e3, (c1 - c0) * 1e3


def paired_compute(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, reference: DriftReference | None,
                   index: int) -> tuple[np.ndarray, Compute]:
    """``run(x)`` timed on both clocks, with one run of ``reference`` beside it: after it for
    an even ``index``, before it for an odd one (a trend in the machine's speed hits both
    alike); without a reference, ``run(x)`` alone."""
    ref: tuple[float, float] | None = None
    if reference is not None and index % 2:
        ref = reference.time_once()
    t0, c0 = time.perf_counter(), time.thread_time()
    out = run(x)
    c1, t1 = time.thread_time(), time.perf_counter()
    if reference is not None and not index % 2:
        ref = reference.time_once()
    wall, cpu = (t1 - t0) * 1e3, (c1 - c0) * 1e3
    return out, Compute(wall, cpu, *(ref if ref is not None else (None, None)))


@dataclass(frozen=True)
class SideCorrection:
    """How one side's compute is corrected: its profile's clock and the reference's baseline
    (``None``: no correction, because the profile records no reference or the side runs nothing)."""

    clock: str
    baseline_ms: float | None
    item: str | None
    note: str
    exponent: float = 1.0

    @classmethod
    def of(cls, profile: Any, ran: bool) -> SideCorrection:
        """For a side whose part runs on ``profile``'s device (``ran``: it has something to run)."""
        from latency_predictors.reference import Reference

        clock = profile_clock(profile)
        reference = Reference.from_json(getattr(profile, "reference", None))
        if not ran:
            return cls(clock, None, None, "nothing to run on this side: corrected = raw")
        if reference is None:
            return cls(clock, None, None, f"the profile {profile.name!r} records no reference network: "
                                          "not drift corrected, corrected = raw")
        return cls(clock, reference.baseline_ms, reference.item,
                   "raw x (baseline / reference now) ** exponent on the profile's clock (the profile's drift "
                   "exponent); one run of the reference, compiled as this part, timed beside each request's compute "
                   "(alternately after and before it)", reference.exponent)

    def fields(self, side: str, compute: Compute) -> dict[str, float]:
        """The request record's figures of ``side``: the reference's readings (wall and CPU
        clock), the drift (reference now / baseline: 1.2 is 20 % slower than at calibration)
        and the corrected compute; only the corrected compute (= raw) without a reference."""
        raw = compute.cpu_ms if self.clock == "cpu" else compute.wall_ms
        if self.baseline_ms is None:
            return {f"{side}_corrected_ms": raw}
        if compute.ref_wall_ms is None or compute.ref_cpu_ms is None:
            raise ValueError(f"the {side} side has a reference but no reading of it")
        now = compute.ref_cpu_ms if self.clock == "cpu" else compute.ref_wall_ms
        return {f"{side}_ref_ms": compute.ref_wall_ms, f"{side}_ref_cpu_ms": compute.ref_cpu_ms,
                f"{side}_drift": now / self.baseline_ms, f"{side}_corrected_ms": float(drift_corrected([raw], [now], self.baseline_ms, self.exponent)[0])}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"corrected": self.baseline_ms is not None, "clock": self.clock, "how": self.note}
        if self.baseline_ms is not None:
            out.update(reference=self.item, baseline_ms=self.baseline_ms, exponent=self.exponent)
        return out


__all__ = ["Compute", "DriftReference", "SideCorrection", "paired_compute", "profile_clock"]
