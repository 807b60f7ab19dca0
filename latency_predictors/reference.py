"""Drift correction: every measurement paired, repeat by repeat, with a reference network.

A shared machine's speed drifts with its load: on the project's 2-core machine (load
average 5-10 from other jobs) the thread CPU time of one compiled network, timed again
and again for four minutes, ranged over 70 % of its median (CV 16 %), so blocks timed in
a quiet minute and networks timed in a busy one do not add up. The ratio of that network
to a *reference* network timed a few milliseconds before or after it ranged far less
(CV 2-4 %). :class:`ReferencedProfiler` therefore wraps a profiler and times every item
alternately with one reference network (:func:`~latency_predictors.timing.time_paired`),
and reports it as ``item x (baseline / reference) ** exponent``, with ``baseline`` the
reference's time when it was calibrated at the start of the profile. Not every network
slows as much as the reference: on the same machine a 100 ms gpt prefill slowed 1.1x
while the 3.6 ms reference slowed 1.7x, so dividing by the whole slow-down (exponent 1)
made its readings *noisier* (CV 12 % against 6 % uncorrected). The profile therefore
chooses the exponent from its own measurements
(:func:`latency_predictors.drift_exponent.choose_exponent`; 0.9 for the mbv3 space on
this machine, 0.5-0.7 for gpt). The readings of the reference travel with every
measurement (stored beside it), and the profile records the reference and its baseline,
so later measurements of the device (a fine-tuned model, ``--verify``) are corrected
the same way (:func:`latency_predictors.profilers.profiler_for_profile`).

The reference's readings also tell the machine's *state*: with a
:class:`~latency_predictors.machine_state.StateGate` repeats are only taken while the
machine is in its fast state, and a finished profile records the threshold
(``fast_ms``) and sets its baseline to the reference's median fast-state reading, so its
figures are the device's fast-state latencies (:mod:`latency_predictors.machine_state`).

Example::

    profiler = ReferencedProfiler(make_profiler(target), space.build_static(ref), space.input_shape(ref))
    readings = [profiler.time_reference() for _ in range(5)]
    profiler.baseline_ms = float(np.median([t.median_ms for t in readings]))
    timing = profiler.measure(model, shape)      # drift corrected
    timing.drift                                  # 1.3: the machine ran 30 % slow meanwhile
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from latency_predictors.errors import ProfilingError
from latency_predictors.machine_state import StateGate, in_state
from latency_predictors.timing import (
    ExampleInput,
    Profiler,
    TimerFn,
    Timing,
    TimingConfig,
    drift_corrected,
    input_shape_of,
    time_paired,
)


@dataclass(frozen=True)
class Reference:
    """What a profile records about its reference network: which network (``item``, the
    arch's key in the profile's space), its calibrated time ``baseline_ms``, how many
    calibration readings that is the median of, the drift ``exponent`` and, for a state
    gated profile, ``fast_ms``: the highest reading of the machine's fast state (then
    ``baseline_ms`` is the median fast-state reading)."""

    item: str
    baseline_ms: float
    readings: int
    exponent: float = 1.0
    chosen_by: dict[str, Any] | None = None
    fast_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"item": self.item, "baseline_ms": self.baseline_ms, "readings": self.readings,
               "exponent": self.exponent,
               "how": "every repeat of every measurement is paired with one repeat of this network; "
                      "figures are item x (baseline / reference) ** exponent"}
        if self.chosen_by is not None:
            out["exponent_chosen_by"] = self.chosen_by
        if self.fast_ms is not None:
            out["fast_ms"] = self.fast_ms
            out["how"] += ("; only repeats whose reference read at most fast_ms (the machine's fast state) "
                           "count, when a measurement has enough of them")
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Reference | None:
        """The reference of a profile's JSON (``None`` if not drift corrected); profiles
        written before the exponent existed read as exponent 1 (how they were corrected)."""
        if not data or "item" not in data or not data.get("baseline_ms"):
            return None
        fast = data.get("fast_ms")
        return cls(str(data["item"]), float(data["baseline_ms"]), int(data.get("readings", 0)),
                   float(data.get("exponent", 1.0)), data.get("exponent_chosen_by"),
                   None if fast is None else float(fast))

    def restate(self, m: Any) -> Any:
        """A stored measurement (:class:`~latency_predictors.measurements.Measurement`) with
        its median and IQR recomputed from its paired readings in this reference's terms
        (baseline, exponent and fast-state threshold): measurements stay comparable when the profile's exponent
        is chosen after they were taken. Unpaired measurements come back as stored."""
        if not getattr(m, "reference_ms", ()) or len(m.reference_ms) != len(m.results_ms):
            return m
        values = drift_corrected(m.results_ms, m.reference_ms, self.baseline_ms, self.exponent)
        mask = in_state(m.reference_ms, self.fast_ms)
        if mask is not None:
            values = values[mask]
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        return replace(m, median_ms=float(median), spread_ms=float(q3 - q1))


class ReferencedProfiler:
    """``inner``, with every measurement paired with ``module`` (the reference network).

    The reference is compiled on first use and kept loaded. ``baseline_ms`` must be set
    (from :meth:`time_reference` readings, or a profile's :class:`Reference`) before
    :meth:`measure`. With a ``gate`` every measurement waits for the machine's fast state
    (:mod:`latency_predictors.machine_state`).
    """

    def __init__(self, inner: Profiler, module: nn.Module, input_shape: ExampleInput,
                 baseline_ms: float | None = None, item: str = "", exponent: float = 1.0,
                 gate: StateGate | None = None) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.timing: TimingConfig = getattr(inner, "timing", TimingConfig())
        self.module, self.item = module, item
        self.input: ExampleInput = input_shape if isinstance(input_shape, torch.Tensor) else tuple(input_shape)
        self.input_shape = input_shape_of(input_shape)
        self.baseline_ms = baseline_ms
        self.exponent = exponent
        self.gate = gate
        self._reference: TimerFn | None = None

    @property
    def stats(self) -> Any:
        return getattr(self.inner, "stats", None)

    def reference_timer(self) -> TimerFn:
        if self._reference is None:
            self._reference = self.inner.prepare(self.module, self.input)
        return self._reference

    def time_reference(self) -> Timing:
        """One unpaired measurement of the reference (a calibration reading; its repeats
        are observed by the gate)."""
        timing = self.reference_timer()()
        if self.gate is not None:
            self.gate.observe(timing.results_ms)
        return timing

    def describe(self) -> dict[str, Any]:
        out = dict(self.inner.describe())
        out["reference"] = {"item": self.item, "baseline_ms": self.baseline_ms, "exponent": self.exponent}
        if self.gate is not None and self.gate.threshold_ms is not None:
            out["reference"]["fast_ms"] = self.gate.threshold_ms
        return out

    def measure(self, module: nn.Module, input_shape: ExampleInput) -> Timing:
        return self.prepare(module, input_shape)()

    def prepare(self, module: nn.Module, input_shape: ExampleInput) -> TimerFn:
        """Compile ``module`` once; each call of the returned function is one paired,
        drift-corrected measurement (``timer(cfg)``: with other settings)."""
        return self.prepare_many([(module, input_shape)])[0]

    def prepare_many(self, items: list[tuple[nn.Module, ExampleInput]]) -> list[TimerFn]:
        """:meth:`prepare` for several modules (compiled together where the profiler can)."""
        if not self.baseline_ms:
            raise ProfilingError("the reference network has no baseline yet: calibrate it first")
        many = getattr(self.inner, "prepare_many", None)
        timers = many(items) if many else [self.inner.prepare(m, shape) for m, shape in items]
        return [self._paired(item) for item in timers]

    def _paired(self, item: TimerFn) -> TimerFn:
        reference = self.reference_timer()

        def timer(cfg: TimingConfig | None = None) -> Timing:
            timing = time_paired(item, reference, cfg or self.timing, float(self.baseline_ms),  # type: ignore[arg-type]
                                 self.exponent, self.gate)
            if cfg is None and getattr(self.inner, "meter", None) is not None:
                energy = item()  # the meter's own window, with the profiler's settings
                return replace(timing, energy_mj=energy.energy_mj, energy_method=energy.energy_method)
            return timing

        return timer


__all__ = ["Reference", "ReferencedProfiler"]
