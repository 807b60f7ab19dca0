"""Non-IID label skew, unbalanced sizes and continuous drift."""

from __future__ import annotations

import numpy as np
import pytest

from nas.adapt.partition import PartitionSpec, devices_at, drift, partition

POOL_Y = np.repeat(np.arange(10), 200)
TEST_Y = np.repeat(np.arange(10), 50)


@pytest.mark.parametrize("m", [2, 5])
def test_label_skew_and_unbalanced_sizes(m):
    spec = PartitionSpec(devices=100, classes_per_device=m, min_samples=50, max_samples=150, test_samples=30)
    devices = partition(spec, POOL_Y, TEST_Y, seed=3)
    assert len(devices) == 100
    sizes = [len(d.train) for d in devices]
    assert min(sizes) >= 50 and max(sizes) <= 150 and len(set(sizes)) > 20  # unbalanced
    for d in devices:
        assert len(d.classes) == m
        assert set(POOL_Y[d.train]) == set(d.classes) and set(TEST_Y[d.test]) == set(d.classes)
        counts = np.bincount(POOL_Y[d.train], minlength=10)[list(d.classes)]
        assert counts.max() - counts.min() <= 1  # spread evenly over the device's classes
    assert len({d.classes for d in devices}) > 10
    again = partition(spec, POOL_Y, TEST_Y, seed=3)
    assert all(np.array_equal(a.train, b.train) for a, b in zip(devices, again))


def test_drift_swaps_one_class_and_replaces_a_share():
    spec = PartitionSpec(devices=30, classes_per_device=3, min_samples=60, max_samples=60, test_samples=30)
    start = partition(spec, POOL_Y, TEST_Y, seed=1)
    after = drift(start, spec, POOL_Y, TEST_Y, share=0.5, seed=1, step=1)
    for a, b in zip(start, after):
        assert len(set(a.classes) & set(b.classes)) == 2
        assert len(b.train) == len(a.train)
        kept = np.isin(b.train, a.train).sum()
        assert 30 <= kept <= 60  # 30 replaced (fresh draws may coincide with old indices)
        assert set(TEST_Y[b.test]) == set(b.classes)
    assert all(np.array_equal(x.train, y.train) for x, y in zip(after, devices_at(1, spec, POOL_Y, TEST_Y, 1, 0.5)))
    with pytest.raises(ValueError, match="share"):
        drift(start, spec, POOL_Y, TEST_Y, share=1.5, seed=1, step=1)


def test_bad_specs_name_the_problem():
    with pytest.raises(ValueError, match="classes_per_device"):
        PartitionSpec(classes_per_device=11)
    with pytest.raises(ValueError, match="min_samples"):
        PartitionSpec(min_samples=100, max_samples=50)
