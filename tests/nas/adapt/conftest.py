"""Small shared data for the adaptation tests (MNIST-1D generated locally, small)."""

from __future__ import annotations

import pytest

from nas.adapt.data import load_domain_data


@pytest.fixture(scope="session")
def small_mnist1d():
    pytest.importorskip("mnist1d")
    return load_domain_data("mnist1d", seed=0, proxy_samples=400, device_samples=1500)


def tiny_config(out_dir, **overrides):
    """A config dict small enough for a unit test (tiny modular net, few devices and steps)."""
    cfg = {
        "data": {"name": "mnist1d", "proxy_samples": 400, "device_samples": 1500},
        "devices": {"count": 12, "per_round_min": 4, "per_round_max": 5, "min_samples": 20,
                    "max_samples": 40, "test_samples": 20, "fail_prob": 0.0, "straggler_prob": 0.0},
        "cloud": {"preset": "tiny", "pretrain_steps": 30, "sharpen_steps": 10, "batch_size": 32},
        "local": {"epochs": 1, "batch_size": 16},
        "rounds": 2,
        "out_dir": str(out_dir),
        "parallel": "sequential",
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg
