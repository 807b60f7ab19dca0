"""Adaptation data: CIFAR from a local directory (never downloaded), and a clear error without one."""

from __future__ import annotations

import numpy as np
import pytest

from nas.adapt.config import SimulationConfig
from nas.adapt.data import load_domain_data
from nas.adapt.simulator import simulate
from nas.config import load_config
from nas.errors import EdgenasError
from tests.nas.adapt.conftest import tiny_config
from tests.nas.test_data import _write_cifar10


def test_cifar10_from_a_local_directory_runs_a_simulation(tmp_path):
    data, labels = _write_cifar10(tmp_path / "cifar", n=60, n_test=60)
    domain = load_domain_data("cifar10", seed=0, proxy_samples=100, root=tmp_path / "cifar")
    assert domain.input_shape == (3, 32, 32) and domain.num_classes == 10
    assert len(domain.proxy_y) == 100 and len(domain.pool_y) == 5 * 60 - 100 and len(domain.test_y) == 60
    assert domain.pool_x.dtype == np.float32 and 0.0 <= domain.pool_x.min() and domain.pool_x.max() <= 1.0
    # the official test batch is the test pool, pixel for pixel
    np.testing.assert_allclose(domain.test_x[0].reshape(-1) * 255.0, data[0].astype(np.float32), atol=1e-3)
    cfg = load_config(SimulationConfig, tiny_config(
        tmp_path / "sim", data={"name": "cifar10", "root": str(tmp_path / "cifar"), "proxy_samples": 100},
        devices={"count": 4, "per_round_min": 2, "per_round_max": 2, "min_samples": 10, "max_samples": 20,
                 "test_samples": 5},
        cloud={"pretrain_steps": 8, "sharpen_steps": 4}, methods=["nebula", "fedavg"], rounds=1))
    results = simulate(cfg, progress=False)
    assert results["summary"]["nebula"]["bytes_per_device_round"] > 0
    assert results["dataset"] == "cifar10"


def test_cifar_without_a_root_names_the_fix():
    with pytest.raises(EdgenasError, match="data.root is required"):
        load_domain_data("cifar10")
