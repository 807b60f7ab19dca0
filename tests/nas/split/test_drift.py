"""Drift correction of a split run: each side's reference network timed beside each request,
compute reported as raw x (baseline / reference now) ** exponent, the link never corrected."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from split_helpers import worker_processes

from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.reference import ReferencedProfiler
from latency_predictors.timing import TimingConfig
from nas.split import Link, RunSettings, load_pair, plan_split, run_split_links
from nas.split.drift import DriftReference

pytestmark = pytest.mark.slow  # a second Python process per run (torch import, a few seconds)

CPU = {"clock": "cpu", "repeat": 5, "warmup": 1, "number": 1, "min_repeat_ms": 10}


@pytest.fixture(scope="module")
def pair(pair_workspace):
    return load_pair(pair_workspace, "edge", "cloud")


EXPONENT = 0.8  # the profiles' drift exponent (a profile chooses it; see latency_predictors.drift_exponent)


@pytest.fixture(scope="module")
def referenced(pair, small_space):
    """The pair's profiles as two drift-corrected eager CPU-clock devices: the reference is
    the space's largest network (long enough that leaving it out of the end-to-end time is
    visible), its baseline calibrated here as a profile calibrates it."""
    ref = small_space.largest()
    profiler = ReferencedProfiler(EagerProfiler(threads=1, timing=TimingConfig(**CPU)), small_space.build_static(ref),
                                  small_space.input_shape(ref))
    baseline = float(np.median([profiler.time_reference().median_ms for _ in range(3)]))
    reference = {"item": small_space.arch_key(ref), "baseline_ms": baseline, "readings": 3, "exponent": EXPONENT}
    common = dict(target={"kind": "torch-cpu", "num-cores": 1}, timing=CPU, reference=reference)
    return (dataclasses.replace(pair.edge.profile, **common), dataclasses.replace(pair.cloud.profile, **common),
            baseline)


def _check_side(request: dict[str, float], side: str, baseline: float) -> None:
    """corrected == raw (CPU clock: the profiles') x (baseline / reference now) ** the profile's
    drift exponent, from the readings."""
    raw, now = request[f"{side}_cpu_ms"], request[f"{side}_ref_cpu_ms"]
    assert request[f"{side}_ref_ms"] > 0 and now > 0
    assert request[f"{side}_corrected_ms"] == pytest.approx(raw * (baseline / now) ** EXPONENT, rel=1e-12)
    assert request[f"{side}_drift"] == pytest.approx(now / baseline, rel=1e-12)


def test_both_sides_are_corrected_with_their_reference_and_the_link_is_not(pair, small_space, referenced):
    edge_profile, cloud_profile, baseline = referenced
    arch = small_space.smallest()
    links = [Link(2e6, 30.0), Link(20e6, 5.0)]
    results = run_split_links(small_space, arch, small_space.build_static(arch), 4, edge_profile, cloud_profile, links,
                              settings=RunSettings(requests=4, warmup=1))
    for link, result in zip(links, results):
        assert result.drift["edge"]["corrected"] and result.drift["cloud"]["corrected"]
        assert result.drift["edge"]["baseline_ms"] == baseline and result.drift["edge"]["clock"] == "cpu"
        assert result.drift["edge"]["exponent"] == EXPONENT == result.drift["cloud"]["exponent"]
        assert len(result.requests) == 4
        for r in result.requests:
            _check_side(r, "edge", baseline)
            _check_side(r, "cloud", baseline)
            # raw figures kept; the corrected end-to-end time replaces the compute only
            assert r["e2e_ms"] == pytest.approx(r["edge_ms"] + r["link_ms"] + r["cloud_ms"])
            assert r["e2e_cpu_ms"] == pytest.approx(r["edge_cpu_ms"] + r["link_ms"] + r["cloud_cpu_ms"])
            assert r["e2e_corrected_ms"] == pytest.approx(r["edge_corrected_ms"] + r["link_ms"]
                                                          + r["cloud_corrected_ms"], rel=1e-12)
        s = result.summary()
        # the reference runs (one per side per request) stay out of the end-to-end time: what
        # remains beside compute is the link (plus scheduling), not the link plus two references
        predicted = plan_split(small_space, arch, pair.edge, pair.cloud, link).point(4).link_ms
        references = s["edge_ref_ms"]["median"] + s["cloud_ref_ms"]["median"]
        assert predicted <= s["link_ms"]["median"] < predicted + 0.5 * references, (link, s)
        # calibrated a moment ago, run as the profile ran it: the machine's speed has not moved 2x
        assert 0.5 < s["edge_drift"]["median"] < 2.0 and 0.5 < s["cloud_drift"]["median"] < 2.0
    assert not worker_processes()


def test_edge_only_is_corrected_and_a_side_with_nothing_to_run_is_not(small_space, referenced):
    edge_profile, cloud_profile, baseline = referenced
    arch = small_space.smallest()
    last = len(small_space.cuts(arch)) - 1
    (result,) = run_split_links(small_space, arch, small_space.build_static(arch), last, edge_profile, cloud_profile,
                                [Link(1e6, 50.0)], settings=RunSettings(requests=3, warmup=1))
    assert result.drift["edge"]["corrected"] and not result.drift["cloud"]["corrected"]
    for r in result.requests:
        _check_side(r, "edge", baseline)
        assert "cloud_ref_ms" not in r and r["cloud_corrected_ms"] == 0.0 and r["link_ms"] == 0.0
        assert r["e2e_ms"] == r["edge_ms"] and r["e2e_corrected_ms"] == r["edge_corrected_ms"]


def test_without_a_reference_corrected_is_raw(pair, small_space, referenced):
    """The edge profile on the CPU clock without a reference, the cloud's as the fixture wrote
    it (no timing settings: the wall clock): nothing is corrected, nothing extra is timed."""
    edge_profile = dataclasses.replace(referenced[0], reference=None)
    cloud_profile = pair.cloud.profile
    assert DriftReference.for_profile(edge_profile) is None and DriftReference.for_profile(cloud_profile) is None
    arch = small_space.smallest()
    (result,) = run_split_links(small_space, arch, small_space.build_static(arch), 4, edge_profile, cloud_profile,
                                [Link(20e6, 5.0)], settings=RunSettings(requests=3, warmup=1))
    assert not result.drift["edge"]["corrected"] and not result.drift["cloud"]["corrected"]
    assert "no reference" in result.drift["edge"]["how"]
    for r in result.requests:
        assert not [k for k in r if "_ref_" in k or k.endswith("_drift")]
        assert r["edge_corrected_ms"] == r["edge_cpu_ms"]  # the edge profile's clock
        assert r["cloud_corrected_ms"] == r["cloud_ms"]  # the cloud profile's clock: wall
        assert r["e2e_corrected_ms"] == pytest.approx(r["edge_cpu_ms"] + r["link_ms"] + r["cloud_ms"], rel=1e-12)
    assert not worker_processes()
