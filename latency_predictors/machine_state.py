"""Timing only while the machine is in its fast state: the state gate.

A shared or virtualised machine does not slow down smoothly. On the project's 2-core
cloud VM the reference network (:mod:`latency_predictors.reference`) reads about 3 ms
of thread CPU time, or 4.6-6.5 ms, switching every few seconds to minutes. What switches
it is work on the *other* core: with a search benchmark (scikit-learn, numpy) running
there the reference read 6.4 ms, and within a second of that process being paused it read
3.05 ms until it was resumed (the two vCPUs evidently share a physical core or its caches;
a pure Python busy loop there hardly slows it). Worse, items do not slow by the same factor: a 100 ms gpt
prefill slowed 1.1x while small networks slowed up to 1.7x, so no single correction of
slow-state readings is right for every item (:mod:`latency_predictors.drift_exponent`
finds the best compromise, and on that machine it left a quarter of never-seen gpt
networks more than 10 % off).

The gate removes the slow state instead of correcting it. Every repeat is paired with a
reading of the reference; the machine is *in its fast state* when that reading is within
:data:`STATE_TOLERANCE` of the reference's fast level (the :data:`FAST_QUANTILE`-th
percentile of its readings: a low quantile, not the minimum, so one lucky reading does
not move it). While timing, :class:`StateGate` waits (timing only the reference, a few
milliseconds a reading) until the machine is fast again before each repeat, up to
``TimingConfig.state_wait_s`` per measurement; a measurement's figure is the median of
its in-state repeats when it has at least :data:`MIN_IN_STATE` of them, and of all its
repeats (drift corrected as before) otherwise. On the stored readings of a loaded gpt
profile, figures from in-state repeats only put 100 % of the never-seen networks within
±10 % for both phases (the networks with enough in-state repeats) where the corrected
figures of all repeats put 72-82 %.

What the profile reports is therefore the device's latency in its fast state, the state a
dedicated device is in; the summary says how often the machine was slow and how many
measurements could not be taken in the fast state within the wait.

Example::

    gate = StateGate(state_wait_s=20)
    gate.observe(readings_of_the_reference)      # calibration
    timing = time_paired(item, reference, cfg, baseline_ms, exponent, gate=gate)
    timing.fast_ms                               # the threshold its figure was gated with
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

STATE_TOLERANCE = 0.25
"""A reading at most this much above the fast level counts as the fast state. The two
states of the project's VM are 1.5-2x apart, so 25 % still separates them; but its
fast state is itself spread (an mbv3 reference read 0.86-1.1 ms without a slow spell), and
with 15 % a third of a quiet profile's readings counted as slow: its waits took about 40 %
of a 10-minute profile (100 blocks timed where 170 were without the gate). Re-scored on the
stored readings of three profiles, 25 % was as exact or more (gpt decode / prefill 88 / 90
-> 92 / 92 %, mbv3 96 -> 97 % of never-seen networks within ±10 %): a mildly slow repeat,
drift corrected, is better than none."""

FAST_QUANTILE = 5.0
"""The fast level is this percentile of the reference's readings."""

MIN_READINGS = 20
"""Readings needed before there is a fast level (fewer: no gating)."""

MIN_IN_STATE = 5
"""A measurement's figure uses its in-state repeats when it has at least this many."""

REFRESH = 0.01
"""A live gate recomputes its fast level when its readings have grown by this share since
the last time (it is read several times per repeat; over a profile's 10,000-20,000
readings a percentile costs about a millisecond, and 1 % more readings hardly move it)."""


def fast_threshold(readings: Sequence[float] | np.ndarray) -> float | None:
    """The highest reference reading that counts as the fast state, from the reference's
    readings so far; ``None`` with fewer than :data:`MIN_READINGS`."""
    values = np.asarray(readings, dtype=float)
    if values.size < MIN_READINGS:
        return None
    return float((1 + STATE_TOLERANCE) * np.percentile(values, FAST_QUANTILE))


def in_state(reference_ms: Sequence[float] | np.ndarray, fast_ms: float | None) -> np.ndarray | None:
    """Which repeats were timed in the fast state (their reference reading at most
    ``fast_ms``), or ``None`` when there is no threshold or fewer than
    :data:`MIN_IN_STATE` such repeats (the figure then uses every repeat)."""
    if fast_ms is None or not len(reference_ms):
        return None
    mask = np.asarray(reference_ms, dtype=float) <= fast_ms
    return mask if int(mask.sum()) >= MIN_IN_STATE else None


@dataclass
class StateGate:
    """The live gate of one profiler: what it has seen of the reference, and the waiting.

    ``threshold_ms`` fixes the threshold (a finished profile's, so later measurements are
    gated as the profile was); without it the threshold follows the readings observed
    (:func:`fast_threshold`). ``state_wait_s`` bounds the wait of one measurement (0: no
    waiting, figures still use in-state repeats when there are enough). After a wait that
    ran out, the next measurements do not wait until a fast reading is seen again, so a
    machine that stays slow costs one wait, not one per measurement.
    """

    state_wait_s: float = 20.0
    threshold_ms: float | None = None
    readings: list[float] = field(default_factory=list)
    waited_s: float = 0.0
    timeouts: int = 0
    _patient: bool = True
    _level: tuple[int, float | None] = (0, None)  # (readings it was computed from, fast level)

    @property
    def fast_ms(self) -> float | None:
        if self.threshold_ms is not None:
            return self.threshold_ms
        n, level = self._level
        if len(self.readings) != n and (level is None or len(self.readings) >= n * (1 + REFRESH)):
            self._level = (len(self.readings), fast_threshold(self.readings))
        return self._level[1]

    def observe(self, readings: Iterable[float]) -> None:
        """Record reference readings (ms): they move the fast level."""
        values = [float(r) for r in readings]
        self.readings.extend(values)
        fast = self.fast_ms
        if fast is not None and any(v <= fast for v in values):
            self._patient = True

    def is_fast(self, reading_ms: float) -> bool:
        fast = self.fast_ms
        return fast is None or reading_ms <= fast

    def wait(self, read_reference: Callable[[], float], deadline: float) -> bool:
        """Read the reference until it reads fast (``True``) or ``deadline``
        (``time.monotonic()``) passes, or straight away when an earlier wait ran out and
        no fast reading has been seen since (``False``)."""
        if self.fast_ms is None:
            return True
        start = time.monotonic()
        try:
            while True:
                reading = read_reference()
                self.observe([reading])
                if self.is_fast(reading):
                    return True
                if not self._patient or time.monotonic() >= deadline:
                    if self._patient:
                        self.timeouts += 1
                    self._patient = False
                    return False
        finally:
            self.waited_s += time.monotonic() - start


__all__ = ["FAST_QUANTILE", "MIN_IN_STATE", "MIN_READINGS", "REFRESH", "STATE_TOLERANCE", "StateGate", "fast_threshold",
           "in_state"]
