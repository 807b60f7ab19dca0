"""Timing: stable medians (repeats until the median is known, capped) and drift correction
by a reference network timed in alternation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latency_predictors.timing import (
    Timing,
    TimingConfig,
    median_is_stable,
    more_repeats,
    time_calls,
    time_paired,
)


def fake_clock(durations):
    """A clock that advances by the next duration (seconds) at every second reading: the
    time of one call, as ``time_calls`` reads it before and after each repeat."""
    now, steps = [0.0], iter(durations)

    def clock():
        clock.readings += 1
        if clock.readings % 2 == 0:
            now[0] += next(steps)
        return now[0]

    clock.readings = 0
    return clock


def test_steady_calls_stop_at_repeat_and_noisy_ones_take_more_up_to_the_cap():
    cfg = TimingConfig(warmup=0, repeat=6, min_repeat_ms=0, max_repeat=18, stable_pct=1.0)
    steady = time_calls(lambda: None, cfg, fake_clock([0.002] * 100))
    assert steady.repeat == 6 and steady.median_ms == pytest.approx(2.0)
    noisy = time_calls(lambda: None, cfg, fake_clock(itertools.cycle([0.001, 0.003])))
    assert noisy.repeat == 18  # never stable: the cap
    settles = time_calls(lambda: None, cfg, fake_clock([0.001, 0.003] * 3 + [0.002] * 100))
    assert 6 < settles.repeat < 18 and median_is_stable(settles.results_ms, cfg)


def test_more_repeats_counts_up_to_the_cap():
    cfg = TimingConfig(repeat=9, max_repeat=20)
    assert more_repeats(0, [], cfg) == 9
    assert more_repeats(9, [1.0] * 9, cfg) == 0  # stable
    assert more_repeats(9, [1.0, 2.0] * 4 + [1.0], cfg) == 3  # a third of repeat at a time
    assert more_repeats(19, [1.0, 2.0] * 9 + [1.0], cfg) == 1 and more_repeats(20, [1.0, 2.0] * 10, cfg) == 0
    assert TimingConfig(repeat=5).repeat_cap == 15
    with pytest.raises(ValueError, match="max_repeat"):
        TimingConfig(repeat=5, max_repeat=3)


def test_paired_timing_is_corrected_repeat_by_repeat():
    t = Timing(results_ms=(2.0, 4.0, 6.0), number=1, reference_ms=(1.0, 2.0, 3.0), baseline_ms=1.5)
    assert t.median_ms == pytest.approx(3.0) and t.spread_ms == pytest.approx(0.0)
    assert t.drift == pytest.approx(2.0 / 1.5)
    assert Timing(results_ms=(2.0, 4.0, 6.0), number=1).median_ms == 4.0  # unpaired: as timed
    assert Timing(results_ms=(2.0,), number=1).drift is None
    with pytest.raises(ValueError, match="one reference reading per repeat"):
        Timing(results_ms=(2.0, 4.0), number=1, reference_ms=(1.0,), baseline_ms=1.0)


def test_drift_exponent_scales_how_much_of_the_reference_slow_down_is_removed():
    kw = dict(results_ms=(2.0, 4.0, 6.0), number=1, reference_ms=(1.0, 2.0, 3.0), baseline_ms=1.5)
    half = Timing(**kw, exponent=0.5)
    expected = [2.0 * 1.5**0.5, 4.0 * 0.75**0.5, 6.0 * 0.5**0.5]
    assert half.values_ms == pytest.approx(expected) and half.median_ms == pytest.approx(expected[1])
    assert Timing(**kw, exponent=0.0).median_ms == pytest.approx(4.0)  # no correction: as timed
    assert Timing(**kw).median_ms == pytest.approx(3.0)  # the default: the full correction


class Machine:
    """A machine whose speed drifts (slowdown 1 to 3 over the calls): every timer reads
    its true cost times the slowdown at the moment it runs."""

    def __init__(self):
        self.calls, self.order = 0, []

    def timer(self, name: str, cost_ms: float):
        def run(cfg=None):
            self.calls += 1
            self.order.append(name)
            slowdown = 1.0 + 2.0 * (0.5 + 0.5 * np.sin(self.calls / 7.0))
            return Timing(results_ms=(cost_ms * slowdown,), number=1)

        return run


def test_time_paired_removes_drift_and_alternates():
    machine = Machine()
    cfg = TimingConfig(warmup=0, repeat=12, min_repeat_ms=0, max_repeat=12)
    t = time_paired(machine.timer("item", 2.0), machine.timer("ref", 1.0), cfg, baseline_ms=1.0)
    raw = np.median(t.results_ms)
    assert t.repeat == 12 and len(t.reference_ms) == 12
    # raw readings wander with the machine; the corrected figure is off only by the drift
    # between two neighbouring calls
    assert abs(raw - 2.0) / 2.0 > 0.3 and abs(t.median_ms - 2.0) / 2.0 < 0.1
    pairs = machine.order[2:]  # after one warm-up call of each
    assert pairs[:8] == ["item", "ref", "ref", "item", "item", "ref", "ref", "item"]  # ABBA
