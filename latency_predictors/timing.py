"""What every profiler returns and how it is asked to time: warm-up, repeats, median, spread.

A :class:`Profiler` times a plain ``nn.Module`` on one input shape and returns a
:class:`Timing`. Implementations: :class:`~latency_predictors.tvm_profiler.TVMProfiler`
(local or RPC) and :class:`~latency_predictors.eager_profiler.EagerProfiler` (the torch
baseline). The median of the repeats is the figure; the inter-quartile range is kept
beside it so every number says how noisy it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from torch import nn

from latency_predictors.errors import InputError

CLOCKS = ("wall", "cpu")


@dataclass(frozen=True)
class TimingConfig:
    """How one measurement is taken.

    ``clock="wall"`` is elapsed time (TVM's ``time_evaluator``): what a dedicated device
    shows. ``clock="cpu"`` is the CPU time of the one thread that runs the model: on a
    shared machine it leaves out the time other processes hold the core (the same
    network timed repeatedly on a loaded 2-core machine varied by 3x in wall time and by
    a few percent in thread CPU time); it needs a local, single-threaded CPU target.

    ``warmup`` untimed runs first (caches, lazy allocation), then ``repeat`` timed
    repeats of ``number`` runs each; ``min_repeat_ms`` raises ``number`` until one repeat
    lasts at least that long (short blocks are otherwise below the timer's resolution).
    """

    warmup: int = 3
    number: int = 1
    repeat: int = 15
    min_repeat_ms: int = 10
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.number < 1 or self.repeat < 1 or self.min_repeat_ms < 0:
            raise InputError(
                f"timing needs warmup >= 0, number >= 1, repeat >= 1, min_repeat_ms >= 0; got {self}"
            )
        if self.clock not in CLOCKS:
            raise InputError(f"clock {self.clock!r} is unknown; use one of {CLOCKS}")

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """One measurement: per-repeat mean run times in milliseconds, their median and IQR,
    and the energy of one run where a meter measured it (``None`` otherwise)."""

    results_ms: tuple[float, ...]
    number: int
    energy_mj: float | None = None
    energy_method: str | None = None

    @property
    def median_ms(self) -> float:
        return float(np.median(self.results_ms))

    @property
    def spread_ms(self) -> float:
        """Inter-quartile range of the repeats (robust to the odd preempted repeat)."""
        q1, q3 = np.percentile(self.results_ms, [25, 75])
        return float(q3 - q1)

    @property
    def repeat(self) -> int:
        return len(self.results_ms)


def time_calls(call: Callable[[], None], cfg: TimingConfig, clock: Callable[[], float]) -> Timing:
    """Time ``call`` with ``clock`` (seconds): warm-up, then ``repeat`` repeats of at
    least ``number`` calls and at least ``min_repeat_ms`` of elapsed time each."""
    for _ in range(cfg.warmup):
        call()
    results = []
    for _ in range(cfg.repeat):
        runs, t0, c0 = 0, time.perf_counter(), clock()
        while runs < cfg.number or (time.perf_counter() - t0) * 1e3 < cfg.min_repeat_ms:
            call()
            runs += 1
        results.append((clock() - c0) / runs * 1e3)
    return Timing(results_ms=tuple(results), number=cfg.number)


class Profiler(Protocol):
    """Times modules on one device with one backend.

    ``backend`` names it in the measurement store (``"tvm"``, ``"eager"``); ``describe``
    returns what a stored measurement must record about how it was taken (target, TVM
    version, schedule, threads).
    """

    backend: str

    def describe(self) -> dict[str, Any]: ...

    def measure(self, module: nn.Module, input_shape: tuple[int, ...]) -> Timing: ...

    def prepare(self, module: nn.Module, input_shape: tuple[int, ...]) -> Callable[[], Timing]:
        """Compile once; the returned function takes one measurement each call."""
        ...
