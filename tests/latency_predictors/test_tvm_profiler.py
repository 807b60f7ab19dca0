"""TVM compile-and-time on this machine's CPU, target parsing, and the eager baseline."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.timing import TimingConfig

tvm = pytest.importorskip("tvm")

from lp_helpers import CPU_TARGET, FAST  # noqa: E402

from latency_predictors.tvm_profiler import TVMProfiler, parse_target  # noqa: E402


def tiny_module() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()).eval()


def test_parse_target_accepts_json_text_and_dict():
    assert parse_target('{"kind": "llvm", "num-cores": 1}') == CPU_TARGET
    assert parse_target(dict(CPU_TARGET)) == CPU_TARGET


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"kind": llvm}', "not valid JSON"),
        ('["llvm"]', "JSON object"),
        ('{"num-cores": 1}', "kind"),
        ('{"kind": "no-such-kind"}', "rejects target"),
    ],
)
def test_parse_target_rejects_bad_input_with_one_line(text, words):
    with pytest.raises(ValueError) as err:
        parse_target(text)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow  # TVM builds
@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_tvm_times_a_module_with_repeats(clock):
    timing = TimingConfig(warmup=1, repeat=4, min_repeat_ms=1, clock=clock)
    result = TVMProfiler(CPU_TARGET, timing=timing).measure(tiny_module(), (4, 8, 8))
    assert 4 <= result.repeat <= 12 and len(result.results_ms) == result.repeat  # until the median is stable
    assert result.median_ms > 0 and result.spread_ms >= 0
    assert result.energy_mj is None  # no meter on a machine without RAPL: nothing invented


@pytest.mark.slow  # TVM builds
def test_bigger_work_takes_longer():
    """Timing means something: 16x the channels costs clearly more than the tiny module."""
    small = TVMProfiler(CPU_TARGET, timing=FAST).measure(tiny_module(), (4, 8, 8))
    big_module = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU()).eval()
    big = TVMProfiler(CPU_TARGET, timing=FAST).measure(big_module, (64, 16, 16))
    assert big.median_ms > 5 * small.median_ms


@pytest.mark.slow  # a TVM build
def test_prepare_compiles_once_and_times_repeatedly():
    timer = TVMProfiler(CPU_TARGET, timing=FAST).prepare(tiny_module(), (4, 8, 8))
    assert all(timer().median_ms > 0 for _ in range(3))


def test_cpu_clock_refuses_multithreaded_targets():
    with pytest.raises(ValueError, match="num-cores"):
        TVMProfiler({"kind": "llvm", "num-cores": 2}, timing=TimingConfig(clock="cpu"))


def test_eager_baseline_times_and_restores_threads():
    before = torch.get_num_threads()
    result = EagerProfiler(threads=1, timing=FAST).measure(tiny_module(), (4, 8, 8))
    assert result.median_ms > 0 and FAST.repeat <= result.repeat <= FAST.repeat_cap
    assert torch.get_num_threads() == before


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a machine with two cores")
def test_timing_keeps_the_cpus_the_process_was_given():
    """TVM's config_threadpool pins the calling thread to a core of its choosing; a process
    started with ``taskset -c N`` must still run (and time) on N."""
    before = os.sched_getaffinity(0)
    last = {max(before)}
    os.sched_setaffinity(0, last)
    try:
        TVMProfiler(CPU_TARGET, timing=FAST).measure(nn.Linear(8, 8), (8,))
        assert os.sched_getaffinity(0) == last
    finally:
        os.sched_setaffinity(0, before)
