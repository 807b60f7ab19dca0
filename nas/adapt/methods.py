"""The methods compared in one simulator: Nebula and its four baselines.

Each method says what a device downloads (a :class:`Plan`), whether it trains and
uploads, how the cloud aggregates accepted updates, and which accuracy counts:

- ``nebula``: the knapsack picks modules by importance under the device's budgets; the
  cloud averages each module over its holders, weighted by normalised importance.
- ``no_adaptation``: the cloud model as trained on proxy data, never fine-tuned.
- ``local_only``: the device's Nebula sub-model, fine-tuned on local data only, kept.
- ``fedavg``: the full model on every device (budgets ignored; violations counted).
- ``heterofl``: the widest width-scaled copy that fits the budgets; slice-wise averaging.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import torch

from nas.adapt.aggregate import importance_weight, sample_weight, weighted_average
from nas.adapt.cloud import module_importance
from nas.adapt.costs import Cost, CostModel
from nas.adapt.knapsack import Infeasible, Item, solve
from nas.adapt.wire import pack
from nas.errors import EdgenasError
from search_spaces.modular import ModularArch, ModularNet

HETEROFL_RATIOS = (1.0, 0.5, 0.25, 0.125, 0.0625)


class BudgetError(EdgenasError):
    """No sub-model fits a device's budget; the message names the smallest one's cost."""


@dataclass
class Plan:
    """What one device gets this round."""

    device: int
    arch: ModularArch
    width_ratio: float
    state: dict[str, torch.Tensor]
    cost: Cost
    train: bool = True
    upload: bool = True
    importance: np.ndarray | None = None
    notes: dict[str, float] = field(default_factory=dict)


def choose_modules(importance: np.ndarray, budget: Cost, costs: CostModel, min_importance: float,
                   device: int) -> ModularArch:
    """Knapsack over modules the selector routes to (importance >= ``min_importance``)."""
    skip = costs.config.skip
    module_cost = costs.module().as_tuple()
    groups = []
    for row in importance:
        items = [Item(int(k), float(v), module_cost) for k, v in enumerate(row[:skip]) if v >= min_importance]
        items.append(Item(skip, float(row[skip]), (0.0, 0.0, 0.0)))
        groups.append(items)
    try:
        _, chosen = solve(groups, budget.as_tuple(), costs.fixed().as_tuple())
    except Infeasible:
        raise BudgetError(f"device {device}: budget ({budget.describe()}) is below the smallest "
                          f"sub-model (skip modules only: {costs.fixed().describe()})") from None
    return ModularArch(tuple(tuple(keys) for keys in chosen))


def slice_state(state: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Prefix slices of ``state`` shaped like ``like`` (HeteroFL's narrower copies)."""
    return {k: state[k][tuple(slice(0, s) for s in v.shape)].clone() if v.dim() else state[k].clone()
            for k, v in like.items()}


class Method(abc.ABC):
    """Base: ``plan`` is the method; aggregation defaults to sample-weighted averaging."""

    name = ""
    evaluate_after_aggregation = False

    @abc.abstractmethod
    def plan(self, sim, device: int, x: np.ndarray) -> Plan:  # type: ignore[no-untyped-def]
        """What ``device`` (local training data ``x``) gets this round; may raise :class:`BudgetError`."""

    def aggregate(self, sim, accepted: list) -> None:  # type: ignore[no-untyped-def]
        """Replace the cloud state by the weighted average of accepted ``(plan, tensors, update)``."""
        if accepted:
            sim.cloud.load_state_dict(weighted_average(
                sim.cloud.state_dict(), [(t, sample_weight(u.samples)) for _, t, u in accepted]))


class Nebula(Method):
    name = "nebula"

    def plan(self, sim, device, x):  # type: ignore[no-untyped-def]
        importance = module_importance(sim.cloud, x)
        arch = choose_modules(importance, sim.budgets[device], sim.costs, sim.config.cloud.min_importance, device)
        sub = sim.cloud.extract(arch)
        return Plan(device, arch, 1.0, sub.state_dict(), sim.costs.of_arch(arch), importance=importance)

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        if accepted:
            sim.cloud.load_state_dict(weighted_average(
                sim.cloud.state_dict(),
                [(t, importance_weight(p.importance.tolist(), u.samples)) for p, t, u in accepted]))


class LocalOnly(Method):
    """The device keeps fine-tuning the sub-model it first derived; nothing goes back."""

    name = "local_only"

    def plan(self, sim, device, x):  # type: ignore[no-untyped-def]
        if device in sim.local_states:
            arch, weights = sim.local_states[device]
            state = ModularNet(sim.costs.config, arch).state_dict()
            state.update(weights)
            return Plan(device, arch, 1.0, state, sim.costs.of_arch(arch), upload=False, notes={"cached": 1})
        importance = module_importance(sim.cloud, x)
        arch = choose_modules(importance, sim.budgets[device], sim.costs, sim.config.cloud.min_importance, device)
        return Plan(device, arch, 1.0, sim.cloud.extract(arch).state_dict(), sim.costs.of_arch(arch), upload=False)

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        return None


class NoAdaptation(Method):
    name = "no_adaptation"

    def plan(self, sim, device, x):  # type: ignore[no-untyped-def]
        return Plan(device, sim.full_arch, 1.0, sim.cloud.state_dict(), sim.costs.full(), train=False,
                    upload=False, notes={"cached": 1})

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        return None


class FedAvg(Method):
    name = "fedavg"
    evaluate_after_aggregation = True

    def plan(self, sim, device, x):  # type: ignore[no-untyped-def]
        cost = sim.costs.full()
        return Plan(device, sim.full_arch, 1.0, sim.cloud.state_dict(), cost,
                    notes={"over_budget": float(not cost.fits(sim.budgets[device]))})


class HeteroFL(Method):
    name = "heterofl"
    evaluate_after_aggregation = True

    def plan(self, sim, device, x):  # type: ignore[no-untyped-def]
        budget = sim.budgets[device]
        for ratio in HETEROFL_RATIOS:
            if sim.costs.full(ratio).fits(budget):
                like = ModularNet(sim.costs.config, width_ratio=ratio).state_dict()
                return Plan(device, sim.full_arch, ratio, slice_state(sim.cloud.state_dict(), like),
                            sim.costs.full(ratio), notes={"width_ratio": ratio})
        smallest = sim.costs.full(HETEROFL_RATIOS[-1])
        raise BudgetError(f"device {device}: budget ({budget.describe()}) is below the smallest "
                          f"HeteroFL model (width {HETEROFL_RATIOS[-1]}: {smallest.describe()})")


METHOD_TYPES: dict[str, type[Method]] = {
    m.name: m for m in (Nebula, NoAdaptation, LocalOnly, FedAvg, HeteroFL)
}


def download_bytes(plan: Plan, selector_cached: bool) -> int:
    """Serialised bytes the device receives (the selector only until it holds a copy)."""
    if plan.notes.get("cached"):
        return 0
    return len(pack({k: v for k, v in plan.state.items() if not (selector_cached and k.startswith("selector."))}))
