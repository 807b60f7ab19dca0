"""The elastic (mbv3) decomposition: knapsack over stages, absorb with rejections."""

from __future__ import annotations

import torch

from nas.adapt.costs import Cost
from nas.adapt.elastic import arch_cost, choose_elastic_arch, elastic_round
from nas.adapt.methods import BudgetError
from search_spaces import get_space


def test_elastic_arch_fits_and_grows_with_the_budget():
    space = get_space("mbv3", preset="small")
    full = arch_cost(space, space.largest())
    flops = []
    for f in (0.3, 0.6, 1.0):
        budget = Cost(*(f * v for v in full.as_tuple()))
        arch = choose_elastic_arch(space, budget)
        assert arch_cost(space, arch).fits(budget)
        flops.append(space.flops(arch))
    widest = space.largest(resolutions=(space.smallest().resolution,))  # the knapsack keeps the resolution
    assert flops[0] < flops[1] <= flops[2] == space.flops(widest)
    try:
        choose_elastic_arch(space, Cost(1, 1, 1), device=3)
    except BudgetError as exc:
        assert "device 3" in str(exc) and "smallest sub-network" in str(exc)
    else:
        raise AssertionError("an impossible budget must raise")


def test_elastic_round_absorbs_good_and_rejects_nan():
    space = get_space("mbv3", preset="small")
    supernet = space.build_supernet()
    arch = space.smallest()
    good, bad = supernet.extract(arch), supernet.extract(arch)
    with torch.no_grad():
        for p in good.parameters():
            p.add_(1.0)
        next(bad.parameters()).fill_(float("nan"))
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    rejected = elastic_round(supernet, [(arch, good, 1.0), (arch, bad, 1.0)])
    assert len(rejected) == 1 and "non-finite" in rejected[0]
    after = supernet.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_elastic_decomposition_runs_in_the_simulator(tmp_path):
    """The same simulator, methods and checks over the mbv3 supernet (digits, tiny sizes)."""
    from nas.adapt.config import SimulationConfig
    from nas.adapt.data import load_domain_data
    from nas.adapt.decomposition import ElasticDecomposition
    from nas.adapt.simulator import Simulation
    from nas.config import load_config
    from tests.nas.adapt.conftest import tiny_config

    data = load_domain_data("digits", seed=0, proxy_samples=200, device_samples=600)
    cfg = load_config(SimulationConfig, tiny_config(
        tmp_path, data={"name": "digits"}, decomposition="elastic", methods=["nebula", "fedavg"], rounds=1,
        cloud={"preset": None, "pretrain_steps": 3}, devices={"count": 6, "per_round_min": 2, "per_round_max": 2,
                                                              "budget_low": 0.6}))
    sim = Simulation(cfg, progress=False, data=data)
    assert isinstance(sim.decomp, ElasticDecomposition)
    before = {k: v.clone() for k, v in sim.cloud.state_dict().items()}
    nebula = sim.run_method("nebula")[0]
    assert nebula["accepted"] == 2 and nebula["bytes_up"] > 0
    after = sim.cloud.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert 0 < nebula["modules_per_device_mean"] <= sum(sim.full_arch.depths)
    fedavg = sim.run_method("fedavg")[0]
    assert fedavg["bytes_down"] > nebula["bytes_down"]  # the whole largest network against sub-networks


def test_elastic_has_no_heterofl():
    import pytest

    from nas.adapt.config import SimulationConfig

    with pytest.raises(ValueError, match="heterofl"):
        SimulationConfig(decomposition="elastic")
