"""Drift correction through a reference network: wrapping a real profiler, the profile's
record of it, and the clock a profile uses by default."""

from __future__ import annotations

import pytest
from lp_helpers import FAST
from torch import nn

from latency_predictors.device_profile import DeviceProfile
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.errors import ProfilingError
from latency_predictors.profilers import Reach, profiler_for_profile, resolve_clock
from latency_predictors.reference import Reference, ReferencedProfiler


def conv(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()).eval()


def test_referenced_measurement_carries_the_reference_readings():
    inner = EagerProfiler(threads=1, timing=FAST)
    profiler = ReferencedProfiler(inner, conv(8), (8, 16, 16))
    with pytest.raises(ProfilingError, match="calibrate"):
        profiler.measure(conv(4), (4, 8, 8))
    profiler.baseline_ms = profiler.time_reference().median_ms
    t = profiler.measure(conv(16), (16, 16, 16))
    assert t.repeat >= FAST.repeat and len(t.reference_ms) == t.repeat and t.baseline_ms == profiler.baseline_ms
    assert t.median_ms > 0 and t.drift is not None and t.drift > 0
    assert profiler.describe()["reference"]["baseline_ms"] == profiler.baseline_ms


def test_reference_round_trips_through_the_profile_json():
    ref = Reference("{\"x\":1}", 1.25, 5)
    assert Reference.from_json(ref.to_json()) == ref
    assert Reference.from_json(None) is None and Reference.from_json({"item": "a"}) is None
    chosen = Reference("{\"x\":1}", 1.25, 5, 0.7, {"rule": "r", "tried": [{"exponent": 0.7, "score": 1.0}]})
    assert Reference.from_json(chosen.to_json()) == chosen
    old = {"item": "{\"x\":1}", "baseline_ms": 1.25, "readings": 5}  # written before the exponent existed
    assert Reference.from_json(old).exponent == 1.0


def test_restate_recomputes_a_stored_measurement_with_the_references_exponent():
    from latency_predictors.measurements import Measurement

    m = Measurement(device="d", space="mbv3", role="train", item="a", backend="tvm", schedule="untuned",
                    target={"kind": "llvm"}, tvm_version="x", input_shape=(1,), number=1, repeat=3,
                    median_ms=3.0, spread_ms=0.0, results_ms=(2.0, 4.0, 6.0), reference_ms=(1.0, 2.0, 3.0))
    assert Reference("a", 1.5, 3, 1.0).restate(m).median_ms == pytest.approx(3.0)
    assert Reference("a", 1.5, 3, 0.0).restate(m).median_ms == pytest.approx(4.0)
    half = Reference("a", 1.5, 3, 0.5).restate(m)
    assert half.median_ms == pytest.approx(4.0 * 0.75**0.5) and half.spread_ms > 0 and half.item == "a"
    unpaired = Measurement(**{**m.__dict__, "reference_ms": ()})
    assert Reference("a", 1.5, 3, 0.5).restate(unpaired) is unpaired


@pytest.mark.slow  # imports TVM (~9 s on the loaded 2-core machine)
def test_profiler_for_a_corrected_profile_pairs_with_the_same_reference(tiny_space):
    arch = tiny_space.smallest()
    profile = DeviceProfile(name="d", space=tiny_space.describe(), target={"kind": "llvm", "num-cores": 1},
                            reached={"kind": "local"}, backend="eager", timing=FAST.to_json(),
                            reference=Reference(tiny_space.arch_key(arch), 0.5, 3).to_json())
    pytest.importorskip("tvm")  # make_profiler checks the target with TVM
    profiler = profiler_for_profile(profile)
    assert isinstance(profiler, ReferencedProfiler) and profiler.baseline_ms == 0.5
    assert profiler.input_shape == tiny_space.input_shape(arch)
    profile.reference = None
    assert isinstance(profiler_for_profile(profile), EagerProfiler)  # an old profile: as it was measured


@pytest.mark.parametrize(
    "clock, target, reach, expected",
    [
        ("auto", {"kind": "llvm", "num-cores": 1}, Reach(), "cpu"),
        ("auto", {"kind": "llvm"}, Reach(), "cpu"),
        ("auto", {"kind": "llvm", "num-cores": 4}, Reach(), "wall"),
        ("auto", {"kind": "cuda"}, Reach(), "wall"),
        ("auto", {"kind": "llvm", "num-cores": 1}, Reach("rpc", address="10.0.0.2:9090"), "wall"),
        ("wall", {"kind": "llvm", "num-cores": 1}, Reach(), "wall"),
    ],
)
def test_auto_clock_is_cpu_time_only_for_local_single_thread_cpus(clock, target, reach, expected):
    assert resolve_clock(clock, target, reach) == expected


def test_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="clock 'gpu' is unknown"):
        resolve_clock("gpu", {"kind": "llvm"})
