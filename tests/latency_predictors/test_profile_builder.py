"""The profile workflow end to end: measure, persist, resume, fit, validate, reload (no pickles);
drift correction, the noise probe, the budget's minimums and the plan it records."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from lp_helpers import FAST

from latency_predictors import profile_builder
from latency_predictors.device_profile import DeviceProfile, fit_cost_model, measurements_for
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.machine_state import STATE_TOLERANCE
from latency_predictors.measurements import MeasurementStore
from latency_predictors.profile_builder import MAX_RETAKES, ProfileBuilder, ProfilePlan, _interleave
from latency_predictors.reference import Reference

# network_share: blocks first until they run out (the order is then independent of timing)
PLAN = ProfilePlan(noise_repeats=3, holdout=3, train=4, pool_archs=30, seed_blocks=6, round_size=3, max_blocks=10,
                   reference_readings=2, network_share=0.001)


class CountingProfiler:
    """The real profiler, counting what it is asked to time (to check resume)."""

    def __init__(self, inner):
        self.inner, self.backend, self.timing, self.calls = inner, inner.backend, inner.timing, 0

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


@pytest.mark.slow  # profiles and fits, ~5-10 s
def test_eager_profile_resumes_without_remeasuring_and_reloads(tiny_space, tmp_path):
    first = CountingProfiler(EagerProfiler(threads=1, timing=FAST))
    profile = builder(tiny_space, first, tmp_path).run()
    assert profile.counts == {"block": 10, "train": 4, "holdout": 3, "noise": 3, "reference": 2}
    # the reference and every block and network prepared once; the noise probe is the
    # first held-out network, timed again without compiling again
    assert first.calls == 1 + 10 + 4 + 3 + profile.plan.get("retaken", 0)  # (+ networks timed again: slow state)
    assert set(profile.validation) == {"block_sum", "whole_network"}
    assert profile.validation["block_sum"]["n"] == 3 and "drift corrected" in profile.validation["block_sum"]["how"]
    noise = profile.noise_floor
    assert noise["n"] == 3 and noise["cv_pct"] >= 0 and noise["max_rel_dev_pct"] >= 0
    assert noise["drift_range_pct"] >= 0 and noise["drift_min"] <= noise["drift_max"] and "uncorrected_cv_pct" in noise
    assert profile.reference["item"] == tiny_space.arch_key(tiny_space.smallest()) and profile.reference["baseline_ms"] > 0
    # the drift exponent was chosen from the profile's own measurements, and is recorded
    assert 0.0 <= profile.reference["exponent"] <= 1.0 and noise["exponent"] == profile.reference["exponent"]
    assert profile.reference["exponent_chosen_by"]["tried"] and "block_sum" in str(profile.validation)
    assert profile.plan["holdout"] == 3 and profile.plan["train"] == 4 and profile.plan["notes"] == []
    assert profile.plan["holdout_from_budget"] is False
    assert profile.energy == "not measured"
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    rows = store.query("dev", role="block")
    assert all(r.backend == "eager" and r.repeat >= FAST.repeat and r.median_ms > 0 for r in rows)
    # every block and network carries the reference's reading beside each repeat, and
    # its figure is the corrected one
    for r in rows + store.query("dev", role="train"):
        assert len(r.reference_ms) == r.repeat
    ref = Reference.from_json(profile.reference)
    assert ref.fast_ms is None and "state" not in noise  # FAST has no state gate (see the slow-spell test)
    for r in measurements_for(profile, store, "train"):  # as read: in the profile's terms
        assert r.median_ms == pytest.approx(np.median(
            np.asarray(r.results_ms) * (ref.baseline_ms / np.asarray(r.reference_ms)) ** ref.exponent))
    assert [m.reference_ms for m in store.query("dev", role="reference")] == [(), ()]  # calibration: unpaired

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


@pytest.mark.slow  # profiles twice, ~5-10 s
def test_interrupted_profile_keeps_what_was_measured(tiny_space, tmp_path):
    class Drops(CountingProfiler):
        def prepare(self, module, shape):
            if self.calls >= 4:
                raise KeyboardInterrupt  # the user pressed Ctrl-C
            return super().prepare(module, shape)

    with pytest.raises(KeyboardInterrupt):
        builder(tiny_space, Drops(EagerProfiler(threads=1, timing=FAST)), tmp_path).run()
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    kept = {role: len(store.query("dev", role=role)) for role in ("reference", "holdout", "noise", "block", "train")}
    # prepared: the reference, the first held-out network (then its first noise reading);
    # interrupted while compiling the first round of 3 blocks
    assert kept == {"reference": 2, "holdout": 1, "noise": 1, "block": 0, "train": 0}
    resumed = CountingProfiler(EagerProfiler(threads=1, timing=FAST))
    profile = builder(tiny_space, resumed, tmp_path).run()
    # only what was missing: the reference (compiled again, not re-calibrated), 10 blocks,
    # 6 networks, and the noise probe compiled again for its last two readings
    assert resumed.calls == 1 + 10 + 6 + 1
    assert profile.counts == {"block": 10, "train": 4, "holdout": 3, "noise": 3, "reference": 2}


def test_budget_cut_short_still_measures_the_minimum_networks(tiny_space, tmp_path):
    plan = ProfilePlan(budget_minutes=1e-4, noise_repeats=2, holdout=4, train=6, pool_archs=20, seed_blocks=4,
                       reference_readings=1)
    profile = builder(tiny_space, EagerProfiler(threads=1, timing=FAST), tmp_path, plan=plan).run()
    assert profile.counts["holdout"] == 2 and profile.counts["train"] == 3 and profile.counts["block"] == 0
    assert profile.predictor == "whole_network" and "error" in profile.validation["block_sum"]
    assert profile.validation["whole_network"]["n"] == 2
    assert any("5 of 10 planned networks unmeasured (3 training, 2 held-out)" in n for n in profile.plan["notes"])


@pytest.mark.slow  # profiles and fits, ~5-10 s
def test_budget_left_after_the_plan_buys_more_training_networks(tiny_space, tmp_path):
    """Without --train, a plan measured with budget left goes on with training networks
    (every metric's phase) up to max_train; none of them is a planned or held-out one."""
    plan = ProfilePlan(budget_minutes=5, noise_repeats=2, holdout=2, pool_archs=20, seed_blocks=4, round_size=3,
                       max_blocks=6, reference_readings=1, max_train=7)
    assert plan.train_count() == 10  # planned from the budget; max_train below it caps the extras at 0
    plan = ProfilePlan(**{**plan.__dict__, "budget_minutes": 1.0, "max_train": 6})
    assert plan.train_count() == 4
    profile = builder(tiny_space, EagerProfiler(threads=1, timing=FAST), tmp_path, plan=plan).run()
    assert profile.counts["train"] == 6 and profile.plan["train"] == 4 and profile.plan["extra_train"] == 2
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    train = {m.item for m in store.query("dev", role="train")}
    assert len(train) == 6 and not train & {m.item for m in store.query("dev", role="holdout")}
    assert not any("unmeasured" in note for note in profile.plan["notes"])


class SlowSpell:
    """The real profiler, with the machine "slow" while the ``spell``-th module prepared (a
    block or a network, once the gate has a threshold) is timed, for its first ``times``
    measurements (retakes prepare it again: modules are recognised by structure and input):
    the reference (the first module prepared, or the one of ``reference``) then reads 1.7
    instead of 1.0, as the project's VM's two states. The spell ends when any other module
    runs. ``slow_calibration``: the machine is slow from the start (the reference's
    calibration readings too) until the spell ends."""

    def __init__(self, inner, spell, times=1, reference=None, slow_calibration=False):
        self.inner, self.backend, self.timing, self.spell, self.times = inner, inner.backend, inner.timing, spell, times
        self.spells, self.prepared, self.spell_readings, self.marked = 0, 0, set(), None
        self.reference, self.timed = reference, set()
        self.slow = slow_calibration  # until the first module other than the reference runs

    def describe(self):
        return self.inner.describe()

    def prepare(self, module, shape):
        timer, index, mark = self.inner.prepare(module, shape), self.prepared, (str(module), str(shape))
        self.prepared += 1
        if index == self.spell:
            self.marked = mark
        if self.reference is None:
            self.reference = mark

        def run(cfg=None):
            if mark == self.reference:  # the reference network: timed, but read as the machine's state alone
                t = timer(cfg)  # (the real machine's own noise would make the test flaky)
                return replace(t, results_ms=(1.7 if self.slow else 1.0,) * len(t.results_ms))
            if mark == self.marked and index not in self.timed:  # a measurement of it starts (or a retake)
                self.timed.add(index)
                self.slow = self.spells < self.times
                self.spells += self.slow
            elif mark != self.marked:
                self.slow = False
            t = timer(cfg)
            if self.slow:
                self.spell_readings.update(t.results_ms)
            return t

        return run


def slow_rows(profiler, tmp_path):
    """The stored blocks and networks all of whose repeats were timed in the slow spell."""
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    rows = [m for r in ("train", "holdout", "block") for m in store.query("dev", role=r)]
    return rows, [m for m in rows if set(m.results_ms) <= profiler.spell_readings]


@pytest.mark.slow  # profiles and fits, ~5-10 s
# (1 with a slow calibration: the first network, timed in the slow state the calibration caught,
# so in the fast state by the gate's first level and not queued; slow by the level it settles on)
@pytest.mark.parametrize("spell, role, times, slow_calibration",
                         [(12, "network", 1, False), (8, "block", 1, False), (8, "block", 3, False),
                          (1, "network", 1, True)])
def test_a_measurement_timed_in_the_slow_state_is_timed_again_and_replaced(tiny_space, tmp_path, spell, role, times,
                                                                           slow_calibration, monkeypatch):
    if slow_calibration:  # the periodic check, not only the one after the plan
        monkeypatch.setattr(profile_builder, "RESCAN_S", 0.0)
    timing = replace(FAST, state_wait_s=0.2)
    profiler = SlowSpell(EagerProfiler(threads=1, timing=timing), spell, times, slow_calibration=slow_calibration)
    profile = builder(tiny_space, profiler, tmp_path).run()
    # a retake still in the slow state is queued again: times - 1 slow retakes, then one in the fast state
    assert profiler.spells == times and profiler.spell_readings and profile.plan["retaken"] == times
    rows, slow = slow_rows(profiler, tmp_path)
    assert len(rows) == 7 + 10  # replaced, not added
    assert not slow  # the measurement taken in the spell was replaced by its retake
    assert not any("not timed in the machine's fast state" in note for note in profile.plan["notes"])
    # the profile's fast state: threshold from every reference reading, baseline its median fast reading
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    ref = Reference.from_json(profile.reference)
    readings = np.concatenate([m.reference_ms if m.reference_ms else m.results_ms for m in store.query("dev")])
    assert ref.fast_ms == pytest.approx((1 + STATE_TOLERANCE) * np.percentile(readings, 5))
    assert ref.baseline_ms == pytest.approx(np.median(readings[readings <= ref.fast_ms]))
    state = profile.noise_floor["state"]
    assert state["fast_ms"] == ref.fast_ms and 0 <= state["slow_readings_pct"] < 100 and state["measurements"] > 0
    for r in measurements_for(profile, store, "train"):  # as read: only fast-state repeats, when enough
        values = np.asarray(r.results_ms) * (ref.baseline_ms / np.asarray(r.reference_ms)) ** ref.exponent
        fast = np.asarray(r.reference_ms) <= ref.fast_ms
        assert r.median_ms == pytest.approx(np.median(values[fast] if fast.sum() >= 5 else values))


def test_drift_correction_can_be_turned_off(tiny_space, tmp_path):
    plan = ProfilePlan(budget_minutes=1e-4, noise_repeats=0, holdout=2, train=3, pool_archs=10, drift_correction=False)
    profile = builder(tiny_space, EagerProfiler(threads=1, timing=FAST), tmp_path, plan=plan).run()
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    assert profile.reference is None and "reference" not in {m.role for m in store.query("dev")}
    assert all(m.reference_ms == () for m in store.query("dev"))
    assert "drift corrected" not in profile.validation["whole_network"]["how"]


@pytest.mark.parametrize(
    "minutes, holdout, train, note",
    [(3, 3, 6, True), (10, 5, 12, True), (20, 10, 12, False), (0.5, 3, 4, True)],
)
def test_holdout_and_training_networks_follow_the_budget(minutes, holdout, train, note):
    plan = ProfilePlan(budget_minutes=minutes)
    n, why = plan.holdout_count()
    assert n == holdout and plan.train_count() == train and (why is not None) == note
    if note:
        assert f"{holdout} held-out networks" in why and "--holdout" in why
    assert ProfilePlan(budget_minutes=minutes, holdout=7, train=2).holdout_count() == (7, None)
    assert ProfilePlan(budget_minutes=minutes, holdout=7, train=2).train_count() == 2


def test_interleave_spreads_held_out_networks_and_starts_with_one():
    order = _interleave(["h0", "h1", "h2"], [f"t{i}" for i in range(6)])
    assert order[0] == ("holdout", "h0") and len(order) == 9
    positions = [i for i, (role, _) in enumerate(order) if role == "holdout"]
    assert positions == [0, 3, 6]


@pytest.mark.slow  # profiles twice, ~10 s
def test_a_block_never_timed_in_the_fast_state_is_retaken_when_the_profile_resumes(tiny_space, tmp_path):
    timing = replace(FAST, state_wait_s=0.2)
    stuck = SlowSpell(EagerProfiler(threads=1, timing=timing), 8, times=1 + MAX_RETAKES)  # every retake slow too
    first = builder(tiny_space, stuck, tmp_path).run()
    assert first.plan["retaken"] == MAX_RETAKES and stuck.spells == 1 + MAX_RETAKES
    rows, slow = slow_rows(stuck, tmp_path)
    assert len(slow) == 1 and len(rows) == 7 + 10  # left as measured (drift corrected), still one row
    # run again (a longer budget, or the same): the block is timed again, now in the fast state
    again = SlowSpell(EagerProfiler(threads=1, timing=timing), spell=-1, reference=stuck.reference)
    second = builder(tiny_space, again, tmp_path).run()
    rows, _ = slow_rows(stuck, tmp_path)
    assert second.plan["retaken"] == 1 and len(rows) == 7 + 10
    assert not any(set(m.results_ms) <= stuck.spell_readings for m in rows)
