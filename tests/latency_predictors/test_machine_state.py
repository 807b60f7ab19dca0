"""The state gate: timing only while the machine is in its fast state.

The machine here is a two-state model of the project's VM: it is fast or slow for runs
of calls, and in the slow state every item slows by its own factor (the reference by
1.7x, the item by 1.2x), so no correction by the reference's slow-down is right for the
item. The gate must give the item's fast-state time anyway."""

from __future__ import annotations

import numpy as np
import pytest

from latency_predictors.machine_state import (
    MIN_IN_STATE,
    STATE_TOLERANCE,
    StateGate,
    fast_threshold,
    in_state,
)
from latency_predictors.measurements import Measurement
from latency_predictors.reference import Reference
from latency_predictors.timing import Timing, TimingConfig, time_paired


class TwoStateMachine:
    """Fast for ``fast_run`` calls, then slow for ``slow_run`` calls, and so on; every
    timer reads ``cost x slowdown`` (its own slowdown in the slow state)."""

    def __init__(self, fast_run: int, slow_run: int, start_slow: bool = False) -> None:
        self.fast_run, self.slow_run = fast_run, slow_run
        self.calls = fast_run if start_slow else 0
        self.by_name: dict[str, int] = {}

    def slow(self) -> bool:
        return self.calls % (self.fast_run + self.slow_run) >= self.fast_run

    def timer(self, name: str, cost_ms: float, slowdown: float):
        def run(cfg=None):
            factor = slowdown if self.slow() else 1.0
            self.calls += 1
            self.by_name[name] = self.by_name.get(name, 0) + 1
            return Timing(results_ms=(cost_ms * factor,), number=1)

        return run


CFG = TimingConfig(warmup=0, repeat=12, min_repeat_ms=0, max_repeat=12, state_wait_s=5.0)


def calibrated_gate(wait_s: float = 5.0) -> StateGate:
    gate = StateGate(state_wait_s=wait_s)
    gate.observe([1.0] * 30 + [1.7] * 30)  # the reference's readings in both states
    return gate


def test_fast_threshold_is_a_low_quantile_with_tolerance_and_needs_readings():
    assert fast_threshold([1.0] * 5) is None
    readings = [1.0] * 30 + [1.7] * 70
    assert fast_threshold(readings) == pytest.approx(1 + STATE_TOLERANCE)
    assert fast_threshold([0.5] + readings) == pytest.approx(1 + STATE_TOLERANCE)  # one lucky reading does not move it
    mask = in_state([1.0] * MIN_IN_STATE + [1.7], 1.15)
    assert mask is not None and mask.tolist() == [True] * MIN_IN_STATE + [False]
    assert in_state([1.0] * (MIN_IN_STATE - 1) + [1.7] * 9, 1.15) is None  # too few: every repeat counts
    assert in_state([1.0] * 9, None) is None


def test_a_live_gate_recomputes_its_fast_level_as_readings_grow(monkeypatch):
    import latency_predictors.machine_state as machine_state

    calls = []
    monkeypatch.setattr(machine_state, "fast_threshold", lambda r: calls.append(len(r)) or fast_threshold(r))
    gate = StateGate()
    gate.observe([1.0] * 1000)
    assert gate.fast_ms == pytest.approx(1 + STATE_TOLERANCE) and calls[-1] == 1000
    before = len(calls)
    gate.observe([0.8] * 5)  # under 1 % more readings: the level read thrice per repeat is not recomputed
    assert gate.is_fast(1.2) and gate.fast_ms == pytest.approx(1 + STATE_TOLERANCE) and len(calls) == before
    gate.observe([0.8] * 100)  # 10 % more, 9.5 % of them at 0.8: the level follows
    assert gate.fast_ms == pytest.approx(0.8 * (1 + STATE_TOLERANCE)) and calls[-1] == 1105


def test_gated_timing_waits_for_the_fast_state_and_gives_the_items_fast_time():
    machine = TwoStateMachine(fast_run=30, slow_run=60, start_slow=True)
    item, ref = machine.timer("item", 2.0, 1.2), machine.timer("ref", 1.0, 1.7)
    gate = calibrated_gate()
    t = time_paired(item, ref, CFG, baseline_ms=1.0, exponent=1.0, gate=gate)
    assert t.fast_ms == pytest.approx(1 + STATE_TOLERANCE)
    assert t.median_ms == pytest.approx(2.0)  # the fast-state time, not a corrected slow reading
    assert sum(r <= t.fast_ms for r in t.reference_ms) >= CFG.repeat
    assert machine.by_name["ref"] > machine.by_name["item"] + 20  # it waited by reading the reference alone
    assert gate.timeouts == 0 and gate.waited_s >= 0


def test_without_the_gate_the_reference_correction_is_wrong_for_an_item_that_slows_less():
    machine = TwoStateMachine(fast_run=30, slow_run=60, start_slow=True)
    t = time_paired(machine.timer("item", 2.0, 1.2), machine.timer("ref", 1.0, 1.7), CFG, baseline_ms=1.0)
    assert t.median_ms == pytest.approx(2.0 * 1.2 / 1.7)  # over-corrected by 29 %: what the gate avoids


def test_a_machine_that_stays_slow_costs_one_wait_then_falls_back_to_every_repeat():
    machine = TwoStateMachine(fast_run=1, slow_run=10**9, start_slow=True)
    item, ref = machine.timer("item", 2.0, 1.2), machine.timer("ref", 1.0, 1.7)
    gate = calibrated_gate(wait_s=0.05)
    # enough fast readings that the wait's slow ones (thousands a second from these instant
    # timers; a real reference reads at most 100) do not make them under 5 % of all
    gate.observe([1.0] * 5000)
    cfg = TimingConfig(warmup=0, repeat=6, min_repeat_ms=0, max_repeat=6, state_wait_s=0.05)
    first = time_paired(item, ref, cfg, baseline_ms=1.0, exponent=1.0, gate=gate)
    assert gate.timeouts == 1 and first.repeat == 6
    assert first.median_ms == pytest.approx(2.0 * 1.2 / 1.7)  # no fast repeats: every repeat, corrected
    reads = machine.by_name["ref"]
    second = time_paired(item, ref, cfg, baseline_ms=1.0, exponent=1.0, gate=gate)
    assert second.repeat == 6 and gate.timeouts == 1
    assert machine.by_name["ref"] - reads <= 2 * cfg.repeat  # no second wait: one reading per pair, plus one


def test_restate_uses_only_the_fast_state_repeats_of_a_stored_measurement():
    results = (2.0,) * 6 + (2.4,) * 6
    refs = (1.0,) * 6 + (1.7,) * 6
    m = Measurement(device="d", space="mbv3", role="train", item="a", backend="tvm", schedule="untuned",
                    target={"kind": "llvm"}, tvm_version="x", input_shape=(1,), number=1, repeat=12,
                    median_ms=2.0, spread_ms=0.0, results_ms=results, reference_ms=refs)
    gated = Reference("a", 1.0, 3, 1.0, fast_ms=1.15)
    assert gated.restate(m).median_ms == pytest.approx(2.0)
    assert Reference("a", 1.0, 3, 1.0).restate(m).median_ms == pytest.approx(np.median([2.0] * 6 + [2.4 / 1.7] * 6))
    assert Reference.from_json(gated.to_json()) == gated
    assert Reference.from_json({k: v for k, v in gated.to_json().items() if k != "fast_ms"}).fast_ms is None


def test_state_wait_must_not_be_negative():
    from latency_predictors.errors import InputError

    with pytest.raises(InputError, match="state_wait_s"):
        TimingConfig(state_wait_s=-1)
