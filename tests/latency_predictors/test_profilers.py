"""Rebuilding the profiler a profile was measured with."""

from __future__ import annotations

from latency_predictors.device_profile import DeviceProfile
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.profilers import profiler_for_profile


def test_an_eager_profile_rebuilds_its_eager_profiler(tiny_space):
    """An eager profile stores the eager profiler's own target (``torch-cpu``, not a TVM
    kind): measuring like it again must not send that target to TVM."""
    described = EagerProfiler(threads=1).describe()
    profile = DeviceProfile(name="cpu", space=tiny_space.describe(), target=described["target"],
                            reached={"kind": "local"}, backend="eager", timing={"repeat": 3, "clock": "cpu"})
    profiler = profiler_for_profile(profile)
    assert isinstance(profiler, EagerProfiler) and profiler.threads == 1 and profiler.timing.repeat == 3
    arch = tiny_space.smallest()
    assert profiler.measure(tiny_space.build_static(arch), tiny_space.input_shape(arch)).median_ms > 0
