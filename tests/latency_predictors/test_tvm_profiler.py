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


@pytest.mark.slow  # a TVM build in a subprocess
@pytest.mark.skipif(len(getattr(__import__("os"), "sched_getaffinity", lambda _: ())(0)) < 2,
                    reason="needs a process allowed on two or more cores")
def test_timing_stays_on_the_cores_the_process_is_allowed(tmp_path):
    """TVM binds its threads to the "big" cores by frequency (core 0 here), ignoring
    ``taskset``: two profiling runs pinned apart would both land on core 0. And it leaves
    the calling thread bound after: work after a profile (fine-tuning) ran on one core."""
    import subprocess
    import sys

    allowed = sorted(os.sched_getaffinity(0))
    script = tmp_path / "pin.py"
    script.write_text(
        "import os\n"
        "from torch import nn\n"
        "from latency_predictors.tvm_profiler import LocalSession, TVMProfiler\n"
        "from latency_predictors.timing import TimingConfig\n"
        f"target = {CPU_TARGET!r}\n"
        "profiler = TVMProfiler(target, timing=TimingConfig(warmup=1, repeat=3, min_repeat_ms=1))\n"
        "timer = profiler.prepare(nn.Sequential(nn.Conv2d(3, 4, 3)).eval(), (3, 8, 8))\n"
        "with profiler.session.pinned():\n"
        "    print('timing', sorted(os.sched_getaffinity(0)))\n"
        "timer()\n"
        "print('after', sorted(os.sched_getaffinity(0)))\n"
        f"os.sched_setaffinity(0, {{{allowed[-1]}}})\n"
        "with LocalSession(target).pinned():\n"
        "    print('restricted', sorted(os.sched_getaffinity(0)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()[-3:]
    assert lines == [f"timing [{allowed[0]}]", f"after {allowed}", f"restricted [{allowed[-1]}]"]
