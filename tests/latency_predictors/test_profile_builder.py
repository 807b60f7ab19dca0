"""The profile workflow end to end: measure, persist, resume, fit, validate, reload (no pickles)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lp_helpers import FAST

from latency_predictors.device_profile import DeviceProfile, fit_cost_model
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.measurements import MeasurementStore
from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan

PLAN = ProfilePlan(noise_repeats=3, holdout=3, train=4, pool_archs=30, seed_blocks=6, round_size=3, max_blocks=10)


class CountingProfiler:
    """The real profiler, counting what it is asked to time (to check resume)."""

    def __init__(self, inner):
        self.inner, self.backend, self.calls = inner, inner.backend, 0

    def describe(self):
        return self.inner.describe()

    def measure(self, module, shape):
        self.calls += 1
        return self.inner.measure(module, shape)

    def prepare(self, module, shape):
        self.calls += 1
        return self.inner.prepare(module, shape)


def builder(space, profiler, tmp_path, name="dev", plan=PLAN):
    profile = DeviceProfile(name=name, space=space.describe(), target=profiler.describe()["target"],
                            reached={"kind": "local"}, backend=profiler.backend)  # fmt: skip
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    return ProfileBuilder(profile, space, profiler, store, tmp_path / "profiles", plan=plan, progress=False,
                          log=lambda _: None)  # fmt: skip


@pytest.mark.slow  # profiles and fits, ~5-7 s
def test_eager_profile_resumes_without_remeasuring_and_reloads(tiny_space, tmp_path):
    first = CountingProfiler(EagerProfiler(threads=1, timing=FAST))
    profile = builder(tiny_space, first, tmp_path).run()
    assert profile.counts == {"block": 10, "train": 4, "holdout": 3, "noise": 3}
    assert first.calls == 1 + 10 + 4 + 3  # noise compiled once, then timed 3 times
    assert set(profile.validation) == {"block_sum", "whole_network"}
    assert profile.validation["block_sum"]["n"] == 3 and "how" in profile.validation["block_sum"]
    assert profile.noise_floor["n"] == 3 and profile.noise_floor["cv_pct"] >= 0
    assert profile.energy == "not measured"
    rows = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}").query("dev", role="block")
    assert all(r.backend == "eager" and r.repeat == FAST.repeat and r.median_ms > 0 for r in rows)

    again = CountingProfiler(EagerProfiler(threads=1, timing=FAST))
    builder(tiny_space, again, tmp_path).run()
    assert again.calls == 0  # everything was already in the store

    path = tmp_path / "profiles" / "dev.json"
    data = json.loads(path.read_text())  # plain JSON, refitted on load
    loaded = DeviceProfile.from_json(data)
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    model = fit_cost_model(loaded, store)
    archs = [tiny_space.sample() for _ in range(5)]
    pred = model.predict(archs)["latency_ms"]
    assert pred.shape == (5,) and np.all(pred > 0)


def test_interrupted_profile_keeps_what_was_measured(tiny_space, tmp_path):
    class Drops(CountingProfiler):
        def measure(self, module, shape):
            if self.calls >= 4:
                raise KeyboardInterrupt  # the user pressed Ctrl-C
            return super().measure(module, shape)

    with pytest.raises(KeyboardInterrupt):
        builder(tiny_space, Drops(EagerProfiler(threads=1, timing=FAST)), tmp_path).run()
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    assert len(store.query("dev")) == 3 + 3  # noise repeats and the holdout networks
    resumed = CountingProfiler(EagerProfiler(threads=1, timing=FAST))
    builder(tiny_space, resumed, tmp_path).run()
    assert resumed.calls == 10 + 4  # only what was missing: the blocks and training networks
