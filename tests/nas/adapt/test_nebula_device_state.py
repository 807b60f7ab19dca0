"""Nebula's device side: what a device keeps between rounds, what it fetches, how the cloud averages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.adapt.aggregate import HEAD_KEYS, importance_weight, weighted_average
from nas.adapt.config import SimulationConfig
from nas.adapt.methods import METHOD_TYPES, download_bytes
from nas.adapt.simulator import Simulation
from nas.adapt.wire import Update, UpdateRejected, validate
from nas.config import load_config
from tests.nas.adapt.conftest import tiny_config


def _after_one_round(tmp_path, data, method):
    cfg = load_config(SimulationConfig, tiny_config(tmp_path, methods=[method], rounds=1))
    sim = Simulation(cfg, progress=False, data=data)
    meta = sim._restore(method, 0)
    record = sim.round(METHOD_TYPES[method](), 0, meta)
    return sim, record


def _plan_again(sim, method, device):
    dev = sim.devices(1)[device]
    return METHOD_TYPES[method]().plan(sim, device, sim.data.pool_x[dev.train], sim.data.pool_y[dev.train])


def test_nebula_device_keeps_its_classifier_and_statistics_and_fetches_changed_modules(tmp_path, small_mnist1d):
    sim, record = _after_one_round(tmp_path, small_mnist1d, "nebula")
    device = max(sim.local_states, key=lambda d: sim.decomp.units(sim.local_states[d][0]))
    arch, held = sim.local_states[device]
    assert sim.decomp.units(arch) > 0
    plan = _plan_again(sim, "nebula", device)
    assert plan.arch == arch  # same data, same selector: same modules
    for name in HEAD_KEYS:  # its own classifier (its classes are not new), nothing sent
        assert torch.equal(plan.state[name], held[name]) and name not in plan.sent
    stats = [k for k in plan.state if k.endswith("running_mean")]
    assert stats and all(torch.equal(plan.state[k], held[k]) and k not in plan.sent for k in stats)
    changed = [k for k in plan.sent if k.startswith("layers.")]
    assert changed  # the cloud averaged its modules: the new versions come down
    assert all(torch.equal(plan.state[k], sim.cloud.state_dict()[k]) for k in changed)
    fresh = sim.local_states.pop(device)  # the same device holding nothing fetches everything
    sim.held_versions.pop(device), sim.held_classes.pop(device)
    full = METHOD_TYPES["nebula"]().plan(sim, device, *_xy(sim, device))
    sim.local_states[device] = fresh
    assert 0 < download_bytes(plan, True) < download_bytes(full, True)


def _xy(sim, device):
    dev = sim.devices(0)[device]
    return sim.data.pool_x[dev.train], sim.data.pool_y[dev.train]


def test_nebula_fetches_rows_only_for_classes_new_to_the_device(tmp_path, small_mnist1d):
    sim, record = _after_one_round(tmp_path, small_mnist1d, "nebula")
    device = record["sampled"][0]
    known = sim.held_classes[device]
    new = next(c for c in range(10) if c not in known)
    x, y = _xy(sim, device)
    y = y.copy()
    y[:3] = new  # as after a drift step that brought a new class
    plan = METHOD_TYPES["nebula"]().plan(sim, device, x, y)
    weight = "head.2.weight"
    assert plan.sent[weight].shape[0] == 1  # one row travels
    assert torch.equal(plan.state[weight][new], sim.cloud.state_dict()[weight][new])
    _, held = sim.local_states[device]
    others = [c for c in range(10) if c != new]
    assert torch.equal(plan.state[weight][others], held[weight][others])


def test_local_only_keeps_the_clouds_selector(tmp_path, small_mnist1d):
    sim, record = _after_one_round(tmp_path, small_mnist1d, "local_only")
    device = record["sampled"][0]
    plan = _plan_again(sim, "local_only", device)
    cloud = sim.cloud.state_dict()
    selector = [k for k in plan.state if k.startswith("selector.")]
    assert selector and all(torch.equal(plan.state[k], cloud[k]) for k in selector)
    assert download_bytes(plan, True) == 0


def test_classifier_rows_are_averaged_over_the_devices_that_saw_the_class():
    target = {"head.2.weight": torch.zeros(3, 2), "head.2.bias": torch.zeros(3), "stem.0.weight": torch.zeros(1)}
    a = {"head.2.weight": torch.ones(3, 2), "head.2.bias": torch.ones(3), "stem.0.weight": torch.ones(1)}
    b = {"head.2.weight": torch.full((3, 2), 5.0), "head.2.bias": torch.full((3,), 5.0), "stem.0.weight": torch.full((1,), 5.0)}
    out = weighted_average(target, [(a, importance_weight([[1.0]], 10, [10, 0, 0])),
                                    (b, importance_weight([[1.0]], 30, [15, 15, 0]))])
    assert out["head.2.bias"].tolist() == pytest.approx([(10 + 75) / 25, 5.0, 0.0])  # class 2: nobody, unchanged
    assert out["head.2.weight"][1].tolist() == [5.0, 5.0]
    assert out["stem.0.weight"].item() == pytest.approx((10 + 150) / 40)  # shared tensors by samples


def test_class_histogram_must_add_up():
    good = Update.build(1, "v", {"w": torch.ones(1)}, samples=4, class_counts=(1, 3))
    assert good.nbytes == len(good.payload) + 8
    validate(good, "v", {"w": torch.Size([1])})
    bad = Update.build(1, "v", {"w": torch.ones(1)}, samples=4, class_counts=(1, 1))
    with pytest.raises(UpdateRejected, match="histogram"):
        validate(bad, "v", {"w": torch.Size([1])})


def test_unrouted_modules_are_not_trained():
    from search_spaces import get_space

    net = get_space("nebula", preset="tiny").build_supernet()
    with torch.no_grad():  # route every sample to module 0 of each layer
        for gate in net.selector.gates:
            gate.weight.zero_()
            gate.bias.copy_(torch.tensor([10.0, 5.0, -10.0, -10.0]))
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 1, 1, 16)).astype(np.float32))
    net(x).sum().backward()
    assert net.layers[0]["0"].conv1.weight.grad is not None and net.layers[0]["1"].conv1.weight.grad is not None
    assert net.layers[0]["2"].conv1.weight.grad is None
