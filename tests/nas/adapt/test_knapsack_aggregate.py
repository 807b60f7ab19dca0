"""Knapsack optimality against brute force; aggregation arithmetic."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nas.adapt.aggregate import importance_weight, weighted_average
from nas.adapt.costs import Cost, ModularCosts
from nas.adapt.knapsack import Infeasible, Item, brute_force, solve
from nas.adapt.methods import BudgetError, choose_modules
from search_spaces.modular import PRESETS


@pytest.mark.parametrize("seed", range(12))
def test_knapsack_matches_brute_force(seed):
    rng = random.Random(seed)
    groups = [[Item(k, rng.random(), tuple(rng.uniform(0, 1) for _ in range(3))) for k in range(rng.randint(1, 4))]
              for _ in range(3)]
    capacity = tuple(rng.uniform(0.8, 3.0) for _ in range(3))
    try:
        expected = brute_force(groups, capacity)
    except Infeasible:
        with pytest.raises(Infeasible):
            solve(groups, capacity)
        return
    value, chosen = solve(groups, capacity)
    assert value == pytest.approx(expected)
    assert all(len(keys) >= 1 for keys in chosen)
    picked = [it for g, keys in zip(groups, chosen) for it in g if it.key in keys]
    assert np.all(np.sum([it.cost for it in picked], axis=0) <= np.asarray(capacity) + 1e-9)
    assert sum(it.value for it in picked) == pytest.approx(value)


def test_knapsack_exactly_one_per_group():
    groups = [[Item(0, 1.0, (1.0,)), Item(1, 3.0, (2.0,))], [Item(0, 1.0, (1.0,)), Item(1, 2.5, (2.0,))]]
    value, chosen = solve(groups, (3.0,), exactly_one=True)
    assert value == pytest.approx(4.0) and chosen == [(1,), (0,)]


def test_choose_modules_respects_budget_and_names_the_smallest_cost():
    costs = ModularCosts(PRESETS["mnist1d"])
    importance = np.full((4, 9), 1 / 9)
    arch = choose_modules(importance, costs.full(), costs, 0.05, device=0)
    assert all(len(layer) == 9 for layer in arch.layers)  # everything fits the full budget
    tight = Cost(*(v * 1.0 for v in (costs.fixed() + costs.module()).as_tuple()))
    arch = choose_modules(importance, tight, costs, 0.05, device=0)
    assert sum(1 for _, k in arch.modules() if k != 8) == 1 and costs.of_arch(arch).fits(tight)
    with pytest.raises(BudgetError, match="device 7: .*smallest sub-model .*memory"):
        choose_modules(importance, Cost(1.0, 1.0, 1.0), costs, 0.05, device=7)


def test_weighted_average_slices_and_weights():
    target = {"a": torch.zeros(4), "b": torch.ones(2, 2)}
    updates = [({"a": torch.full((4,), 2.0)}, lambda n: 1.0),
               ({"a": torch.full((2,), 8.0), "b": torch.full((1, 2), 5.0)}, lambda n: 3.0)]
    out = weighted_average(target, updates)
    assert out["a"].tolist() == [6.5, 6.5, 2.0, 2.0]  # (1*2 + 3*8) / 4 on the shared prefix
    assert out["b"].tolist() == [[5.0, 5.0], [1.0, 1.0]]  # uncovered row untouched
    assert target["a"].tolist() == [0.0] * 4  # the input state is not modified
    kept = weighted_average(target, updates[:1], keep=1.0)
    assert kept["a"].tolist() == [1.0] * 4


def test_importance_weights_modules_and_samples_for_shared():
    w = importance_weight([[0.1, 0.9], [0.5, 0.5]], samples=70)
    assert w("layers.0.1.conv1.weight") == pytest.approx(0.9)
    assert w("layers.1.0.bn2.bias") == pytest.approx(0.5)
    assert w("head.2.weight") == 70.0
    two = [({"layers.0.1.w": torch.tensor([1.0])}, importance_weight([[0, 0.75]], 10)),
           ({"layers.0.1.w": torch.tensor([5.0])}, importance_weight([[0, 0.25]], 10))]
    assert weighted_average({"layers.0.1.w": torch.zeros(1)}, two)["layers.0.1.w"].item() == pytest.approx(2.0)
