"""The methods compared in one simulator: Nebula and its four baselines.

Each method says what a device downloads (a :class:`Plan`), whether it trains and
uploads, how the cloud aggregates accepted updates, and which accuracy counts:

- ``nebula``: the knapsack picks modules by importance under the device's budgets; the
  device keeps its sub-model between rounds and downloads only the tensors whose cloud
  copy changed since it last got them (or that it lacks); the cloud averages each module
  over its holders, weighted by normalised importance, and each class's classifier row
  over the devices that trained on that class.
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

from nas.adapt.aggregate import (
    module_of,
    sample_weight,
    weighted_average,
)
from nas.adapt.costs import Cost, ModularCosts
from nas.adapt.knapsack import Infeasible, Item, solve
from nas.adapt.wire import pack
from nas.errors import EdgenasError
from search_spaces.modular import ModularArch

HETEROFL_RATIOS = (1.0, 0.5, 0.25, 0.125, 0.0625)
LOCAL_STATS = ("running_mean", "running_var", "num_batches_tracked")  # batch-norm statistics of local data


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
    sent: dict[str, torch.Tensor] | None = None  # what is downloaded (``None``: all of ``state``)
    versions: dict[str, int] | None = None  # cloud versions of the groups the device now holds


def tensor_group(name: str) -> str:
    """The unit a tensor travels and is versioned with: ``layers.L.K`` for a module, else its top-level part."""
    key = module_of(name)
    return f"layers.{key[0]}.{key[1]}" if key else name.split(".", 1)[0]


def choose_modules(importance: np.ndarray, budget: Cost, costs: ModularCosts, min_importance: float,
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
    def plan(self, sim, device: int, x: np.ndarray, y: np.ndarray) -> Plan:  # type: ignore[no-untyped-def]
        """What ``device`` (local training data ``x``, labels ``y``) gets this round; may raise
        :class:`BudgetError`."""

    def aggregate(self, sim, accepted: list) -> None:  # type: ignore[no-untyped-def]
        """Replace the cloud state by the weighted average of accepted ``(plan, tensors, update)``."""
        if accepted:
            sim.cloud.load_state_dict(weighted_average(
                sim.cloud.state_dict(), [(t, sample_weight(u.samples)) for _, t, u in accepted],
                where=sim.decomp.where))


class Nebula(Method):
    """Modules by importance under the budgets; devices keep what they hold and fetch what changed.

    The classifier is the device's own (its rows were trained on its classes); only the rows
    of classes it has not trained on yet come from the cloud, where each row is the average
    over the devices that trained on that class. Batch-norm statistics describe the
    device's data and stay on the device once it has them.
    """

    name = "nebula"

    def plan(self, sim, device, x, y):  # type: ignore[no-untyped-def]
        decomp = sim.decomp
        arch, importance = decomp.choose(sim.cloud, x, sim.budgets[device], device, sim.config.cloud.min_importance)
        cloud = sim.cloud.state_dict()
        cloud_versions, held_versions = sim.cloud_versions, sim.held_versions.get(device, {})
        _, held = sim.local_states.get(device, (None, {}))
        known = set(sim.held_classes.get(device, ()))
        new_rows = sorted(set(np.unique(y).tolist()) - known) if known else None
        state, sent, versions = {}, {}, {}
        for name, shape in decomp.shapes(arch).items():
            group = decomp.group(name)
            versions[group] = cloud_versions.get(group, 0)
            mine = held.get(name)
            if mine is not None and mine.shape != shape:
                mine = None  # another slice of that tensor (its sub-network changed): fetch it
            if name in decomp.head_keys and mine is not None and new_rows is not None:
                state[name] = mine.clone()  # its own classifier; the cloud's rows of new classes
                if new_rows:
                    rows = cloud[name][decomp.where(cloud[name].shape, shape)][new_rows]
                    state[name][new_rows] = rows
                    sent[name] = rows
            elif mine is not None and (held_versions.get(group) == versions[group] or name.endswith(LOCAL_STATS)):
                state[name] = mine  # its own copy: the cloud has nothing newer, or its data's statistics
            else:
                state[name] = cloud[name][decomp.where(cloud[name].shape, shape)].clone() if len(shape) \
                    else cloud[name].clone()
                if not name.startswith("selector."):  # frozen in the cloud too; counted once, when first sent
                    sent[name] = state[name]
        return Plan(device, arch, 1.0, state, decomp.cost(arch), importance=importance, sent=sent,
                    versions=versions, notes={"kept_tensors": float(len(state) - len(sent))})

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        if accepted:
            sim.cloud.load_state_dict(weighted_average(
                sim.cloud.state_dict(),
                [(t, sim.decomp.weight(p.importance, u.samples, u.class_counts)) for p, t, u in accepted],
                where=sim.decomp.where))


class LocalOnly(Method):
    """The device keeps fine-tuning the sub-model it first derived; nothing goes back."""

    name = "local_only"

    def plan(self, sim, device, x, y):  # type: ignore[no-untyped-def]
        decomp = sim.decomp
        if device in sim.local_states:
            arch, weights = sim.local_states[device]
            state = decomp.extract(sim.cloud.state_dict(), arch)  # the selector it got first (never trained)
            state.update({k: v for k, v in weights.items() if not k.startswith("selector.")})
            return Plan(device, arch, 1.0, state, decomp.cost(arch), upload=False, notes={"cached": 1})
        arch, _ = decomp.choose(sim.cloud, x, sim.budgets[device], device, sim.config.cloud.min_importance)
        return Plan(device, arch, 1.0, decomp.extract(sim.cloud.state_dict(), arch), decomp.cost(arch), upload=False)

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        return None


class NoAdaptation(Method):
    name = "no_adaptation"

    def plan(self, sim, device, x, y):  # type: ignore[no-untyped-def]
        return Plan(device, sim.full_arch, 1.0, sim.decomp.extract(sim.cloud.state_dict(), sim.full_arch),
                    sim.decomp.cost(sim.full_arch), train=False, upload=False, notes={"cached": 1})

    def aggregate(self, sim, accepted):  # type: ignore[no-untyped-def]
        return None


class FedAvg(Method):
    name = "fedavg"
    evaluate_after_aggregation = True

    def plan(self, sim, device, x, y):  # type: ignore[no-untyped-def]
        cost = sim.decomp.cost(sim.full_arch)
        return Plan(device, sim.full_arch, 1.0, sim.decomp.extract(sim.cloud.state_dict(), sim.full_arch), cost,
                    notes={"over_budget": float(not cost.fits(sim.budgets[device]))})


class HeteroFL(Method):
    name = "heterofl"
    evaluate_after_aggregation = True

    def plan(self, sim, device, x, y):  # type: ignore[no-untyped-def]
        budget, decomp = sim.budgets[device], sim.decomp
        for ratio in HETEROFL_RATIOS:
            if decomp.cost(sim.full_arch, ratio).fits(budget):
                return Plan(device, sim.full_arch, ratio, decomp.extract(sim.cloud.state_dict(), sim.full_arch, ratio),
                            decomp.cost(sim.full_arch, ratio), notes={"width_ratio": ratio})
        smallest = decomp.cost(sim.full_arch, HETEROFL_RATIOS[-1])
        raise BudgetError(f"device {device}: budget ({budget.describe()}) is below the smallest "
                          f"HeteroFL model (width {HETEROFL_RATIOS[-1]}: {smallest.describe()})")


METHOD_TYPES: dict[str, type[Method]] = {
    m.name: m for m in (Nebula, NoAdaptation, LocalOnly, FedAvg, HeteroFL)
}


def download_bytes(plan: Plan, selector_cached: bool) -> int:
    """Serialised bytes the device receives (the selector only until it holds a copy)."""
    if plan.notes.get("cached"):
        return 0
    tensors = dict(plan.sent if plan.sent is not None else plan.state)
    if not selector_cached and plan.sent is not None:  # a first download includes the selector
        tensors.update({k: v for k, v in plan.state.items() if k.startswith("selector.")})
    tensors = {k: v for k, v in tensors.items() if not (selector_cached and k.startswith("selector."))}
    return len(pack(tensors)) if tensors else 0
