"""What every profiler returns and how it is asked to time: warm-up, repeats, median, spread.

A :class:`Profiler` times a plain ``nn.Module`` on one input (a float input's shape, or an
example tensor such as token ids: :data:`ExampleInput`) and returns a
:class:`Timing`. Implementations: :class:`~latency_predictors.tvm_profiler.TVMProfiler`
(local or RPC) and :class:`~latency_predictors.eager_profiler.EagerProfiler` (the torch
baseline); :class:`~latency_predictors.reference.ReferencedProfiler` wraps either and
pairs every repeat with a reference network (:func:`time_paired`), and with a
:class:`~latency_predictors.machine_state.StateGate` times only while the machine is in
its fast state. The median of the
repeats is the figure; the inter-quartile range is kept beside it so every number says
how noisy it was. Repeats continue past ``repeat`` until the median is stable
(:func:`median_is_stable`), up to ``max_repeat``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from latency_predictors.errors import InputError
from latency_predictors.machine_state import MIN_IN_STATE, StateGate, in_state

CLOCKS = ("wall", "cpu")
CLOCK_CHOICES = ("auto", *CLOCKS)
"""``auto`` is resolved by :func:`latency_predictors.profilers.make_profiler`: ``cpu`` for a
local single-threaded CPU target, ``wall`` for everything else."""


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

    After ``repeat`` repeats, more are taken (a third of ``repeat`` at a time) while the
    median's 95 % confidence half-width (1.57 x IQR / sqrt(n), the box-plot notch) is
    above ``stable_pct`` % of the median, up to ``max_repeat`` repeats in all (``None``:
    three times ``repeat``; ``repeat``: never more).

    Paired with a reference and a state gate (:func:`time_paired`), a measurement waits
    at most ``state_wait_s`` seconds in all for the machine's fast state
    (:mod:`latency_predictors.machine_state`); 0: never waits.
    """

    warmup: int = 3
    number: int = 1
    repeat: int = 15
    min_repeat_ms: int = 10
    clock: str = "wall"
    max_repeat: int | None = None
    stable_pct: float = 1.0
    state_wait_s: float = 20.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.number < 1 or self.repeat < 1 or self.min_repeat_ms < 0:
            raise InputError(
                f"timing needs warmup >= 0, number >= 1, repeat >= 1, min_repeat_ms >= 0; got {self}"
            )
        if self.clock not in CLOCKS:
            raise InputError(f"clock {self.clock!r} is unknown; use one of {CLOCKS}")
        if self.max_repeat is not None and self.max_repeat < self.repeat:
            raise InputError(f"max_repeat ({self.max_repeat}) must be at least repeat ({self.repeat})")
        if not self.stable_pct > 0:
            raise InputError(f"stable_pct must be positive, got {self.stable_pct}")
        if not self.state_wait_s >= 0:
            raise InputError(f"state_wait_s (--state-wait) must be at least 0 seconds (0 turns the state gate off), "
                             f"got {self.state_wait_s}")

    @property
    def repeat_cap(self) -> int:
        return 3 * self.repeat if self.max_repeat is None else self.max_repeat

    def single(self) -> TimingConfig:
        """One repeat, no warm-up: the step :func:`time_paired` alternates."""
        return replace(self, warmup=0, repeat=1, max_repeat=1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """One measurement: per-repeat mean run times in milliseconds, their median and IQR,
    and the energy of one run where a meter measured it (``None`` otherwise).

    When the repeats were paired with a reference network (:func:`time_paired`),
    ``reference_ms`` holds the reference's reading beside each repeat and
    ``baseline_ms`` the reference's calibrated time: every figure is then drift
    corrected, repeat by repeat, as ``result x (baseline / reference) ** exponent`` (what
    the item would read with the machine as it was when the reference was calibrated).
    ``exponent`` is how strongly an item follows the reference's slow-downs: 1 when it
    slows exactly as much (the default), less when it slows less (see
    :mod:`latency_predictors.drift_exponent`, which chooses it per profile). ``fast_ms``,
    when set, is the state gate's threshold: the figures are those of the repeats whose
    reference read at most that (the machine's fast state), when there are enough of them
    (:func:`latency_predictors.machine_state.in_state`).
    """

    results_ms: tuple[float, ...]
    number: int
    energy_mj: float | None = None
    energy_method: str | None = None
    reference_ms: tuple[float, ...] = ()
    baseline_ms: float | None = None
    exponent: float = 1.0
    fast_ms: float | None = None

    def __post_init__(self) -> None:
        if self.reference_ms and (len(self.reference_ms) != len(self.results_ms) or not self.baseline_ms):
            raise ValueError("a paired timing needs one reference reading per repeat and a baseline")

    @property
    def values_ms(self) -> np.ndarray:
        """The per-repeat figures: as timed, or drift corrected when paired (only the
        fast state's repeats when gated and there are enough of them)."""
        raw = np.asarray(self.results_ms, dtype=float)
        if not self.reference_ms:
            return raw
        values = drift_corrected(raw, self.reference_ms, float(self.baseline_ms), self.exponent)  # type: ignore[arg-type]
        mask = in_state(self.reference_ms, self.fast_ms)
        return values if mask is None else values[mask]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.values_ms))

    @property
    def spread_ms(self) -> float:
        """Inter-quartile range of the repeats (robust to the odd preempted repeat)."""
        q1, q3 = np.percentile(self.values_ms, [25, 75])
        return float(q3 - q1)

    @property
    def repeat(self) -> int:
        return len(self.results_ms)

    @property
    def drift(self) -> float | None:
        """How slow the machine ran during this measurement, relative to the calibration
        (median reference reading / baseline; 1.25: 25 % slower), or ``None`` unpaired."""
        if not self.reference_ms:
            return None
        return float(np.median(self.reference_ms)) / float(self.baseline_ms)  # type: ignore[arg-type]

    @property
    def median_ci_pct(self) -> float:
        """Half-width of the median's 95 % confidence interval, in % of the median."""
        return _notch_pct(self.values_ms)


def drift_corrected(results_ms: Sequence[float] | np.ndarray, reference_ms: Sequence[float] | np.ndarray,
                    baseline_ms: float, exponent: float = 1.0) -> np.ndarray:
    """Per-repeat readings corrected for the machine's drift: ``result x (baseline /
    reference) ** exponent``, with the reference's reading taken beside each repeat."""
    raw = np.asarray(results_ms, dtype=float)
    return raw * (float(baseline_ms) / np.asarray(reference_ms, dtype=float)) ** float(exponent)


def _notch_pct(values: Sequence[float] | np.ndarray) -> float:
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return math.inf
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(157.0 * (q3 - q1) / math.sqrt(v.size) / med) if med > 0 else math.inf


def median_is_stable(values: Sequence[float] | np.ndarray, cfg: TimingConfig) -> bool:
    """Whether the median of ``values`` is known to within ``cfg.stable_pct`` % (95 %)."""
    return _notch_pct(values) <= cfg.stable_pct


def more_repeats(done: int, values: Sequence[float] | np.ndarray, cfg: TimingConfig) -> int:
    """How many repeats to take next: 0 once the median is stable or the cap is reached."""
    if done < cfg.repeat:
        return cfg.repeat - done
    if done >= cfg.repeat_cap or median_is_stable(values, cfg):
        return 0
    return min(max(1, cfg.repeat // 3), cfg.repeat_cap - done)


def time_calls(call: Callable[[], None], cfg: TimingConfig, clock: Callable[[], float]) -> Timing:
    """Time ``call`` with ``clock`` (seconds): warm-up, then repeats of at least ``number``
    calls and at least ``min_repeat_ms`` of elapsed time each, until the median is stable
    (``repeat`` to ``max_repeat`` repeats)."""
    for _ in range(cfg.warmup):
        call()
    results: list[float] = []
    while n := more_repeats(len(results), results, cfg):
        for _ in range(n):
            runs, t0, c0 = 0, time.perf_counter(), clock()
            while runs < cfg.number or (time.perf_counter() - t0) * 1e3 < cfg.min_repeat_ms:
                call()
                runs += 1
            results.append((clock() - c0) / runs * 1e3)
    return Timing(results_ms=tuple(results), number=cfg.number)


ExampleInput = tuple[int, ...] | torch.Tensor
"""What a profiler times a module on: the shape of one float32 input without the batch
dimension (timed on standard-normal values), or an example input of batch 1 of any dtype
(int64 token ids), timed as it is (:func:`latency_predictors.cost_metrics.timing_input`)."""


def input_shape_of(example: ExampleInput) -> tuple[int, ...]:
    """The input's shape without the batch dimension (what a measurement records)."""
    if isinstance(example, torch.Tensor):
        return tuple(int(d) for d in example.shape[1:])
    return tuple(example)


def example_tensor(example: ExampleInput) -> torch.Tensor:
    """The batch-1 input a module is exported or run eagerly on."""
    return example if isinstance(example, torch.Tensor) else torch.randn(1, *example)


TimerFn = Callable[..., Timing]
"""What ``Profiler.prepare`` returns: ``timer()`` takes one measurement with the profiler's
settings, ``timer(cfg)`` with ``cfg`` instead (energy is measured only by ``timer()``)."""


def time_paired(item: TimerFn, reference: TimerFn, cfg: TimingConfig, baseline_ms: float,
                exponent: float = 1.0, gate: StateGate | None = None) -> Timing:
    """Time ``item`` and ``reference`` in alternation, one repeat each (``ABBA`` order, so
    a trend in the machine's speed hits both alike), until the median of the drift
    corrected repeats is stable; the reference's readings travel with the result.

    The machine's speed drifts with its load over seconds (thread CPU time of one
    network varied by 70 % over four minutes on the project's loaded 2-core machine);
    the ratio of two timings taken a few milliseconds apart hardly does (CV 2-4 %).

    With a ``gate``, a repeat is only started while the reference reads in the machine's
    fast state: after a slow reading the reference alone is read until it is fast again,
    at most ``cfg.state_wait_s`` in all for the measurement; the repeats counted towards a
    stable median are the in-state ones, until the wait runs out (then every repeat,
    drift corrected, as without a gate).
    """
    item(replace(cfg, repeat=1, max_repeat=1))  # warm-up of both: caches, lazy allocation
    last = reference(replace(cfg, repeat=1, max_repeat=1)).results_ms[0]
    one = cfg.single()
    xs: list[float] = []
    rs: list[float] = []
    waiting = gate is not None and cfg.state_wait_s > 0
    wait_left = cfg.state_wait_s
    if waiting and cfg.repeat < MIN_IN_STATE:  # enough fast-state repeats for the figure to use them
        cfg = replace(cfg, repeat=MIN_IN_STATE, max_repeat=None if cfg.max_repeat is None
                      else max(cfg.max_repeat, MIN_IN_STATE))
    if gate is not None:
        gate.observe([last])

    def counted() -> np.ndarray:
        values = drift_corrected(xs, rs, baseline_ms, exponent)
        fast = gate.fast_ms if waiting and gate is not None else None
        return values if fast is None else values[np.asarray(rs, dtype=float) <= fast]

    while n := more_repeats(len(values := counted()), values, cfg):
        for _ in range(n):
            if waiting and len(xs) - len(values) > cfg.repeat_cap:
                waiting = False  # the state flips within every pair: stop gating this one
            if waiting and gate is not None and not gate.is_fast(last):
                start = time.monotonic()
                waiting = gate.wait(lambda: reference(one).results_ms[0], start + wait_left)
                wait_left -= time.monotonic() - start
            if len(xs) % 2 == 0:
                x, r = item(one), reference(one)
            else:
                r, x = reference(one), item(one)
            xs.append(x.results_ms[0])
            rs.append(last := r.results_ms[0])
            if gate is not None:
                gate.observe([last])
    return Timing(results_ms=tuple(xs), number=cfg.number, reference_ms=tuple(rs), baseline_ms=baseline_ms,
                  exponent=exponent, fast_ms=gate.fast_ms if gate is not None else None)


class Profiler(Protocol):
    """Times modules on one device with one backend.

    ``backend`` names it in the measurement store (``"tvm"``, ``"eager"``); ``describe``
    returns what a stored measurement must record about how it was taken (target, TVM
    version, schedule, threads).
    """

    backend: str

    def describe(self) -> dict[str, Any]: ...

    def measure(self, module: nn.Module, input_shape: ExampleInput) -> Timing: ...

    def prepare(self, module: nn.Module, input_shape: ExampleInput) -> TimerFn:
        """Compile once; the returned function takes one measurement each call
        (``timer()``: with the profiler's settings; ``timer(cfg)``: with ``cfg``)."""
        ...
