"""The elastic-supernet decomposition: device sub-networks of the mbv3 cloud supernet.

A device's sub-network is chosen per stage (depth, kernel, expand ratio, uniform within
the stage) by a multiple-choice knapsack under its memory, compute and bandwidth
budgets, valuing capacity (MACs) and costing each stage option by its blocks' predicted
or counted cost; costs add up over blocks, so a stage option's cost is its difference
from the smallest network. Trained sub-networks return through ``absorb_many``:
slice-wise averages weighted by each device's importance (or sample count). A module
for another arch or with non-finite values is rejected alone, the others still absorbed.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from nas.adapt.costs import FLOAT_BYTES, Cost
from nas.adapt.knapsack import Infeasible, Item, solve
from nas.adapt.methods import BudgetError

log = logging.getLogger("edgenas.adapt")


def arch_cost(space: Any, arch: Any, batch_size: int = 32,
              compute: Callable[[Any], float] | None = None) -> Cost:
    """Training cost of an mbv3 arch from its blocks (``compute`` may be a latency predictor)."""
    params = space.params(arch)
    macs = compute(arch) if compute else 3 * space.flops(arch)
    activations = sum(b.in_shape[0] * b.in_shape[1] * b.in_shape[2] + b.mid_channels * b.in_shape[1] * b.in_shape[2]
                      for b in space.blocks(arch))
    return Cost(FLOAT_BYTES * (3 * params + batch_size * activations), macs, FLOAT_BYTES * 2 * params)


def _with_stage(space: Any, base: Any, stage: int, depth: int, kernel: int, expand: int) -> Any:
    depths = list(base.depths)
    depths[stage] = depth
    kernels, expands = [], []
    for s, d in enumerate(depths):
        kernels += [kernel if s == stage else base.kernels[0]] * d
        expands += [expand if s == stage else base.expands[0]] * d
    return type(base)(tuple(depths), tuple(kernels), tuple(expands), base.resolution)


def choose_elastic_arch(space: Any, budget: Cost, device: int = 0, batch_size: int = 32,
                        compute: Callable[[Any], float] | None = None, resolution: int | None = None) -> Any:
    """The largest-capacity stage-uniform mbv3 arch within ``budget`` (exact knapsack).

    ``resolution``: the device's input size (default: the space's smallest); costs are at it.
    """
    cfg = space.config
    small = space.smallest()
    if resolution is not None:
        small = dataclasses.replace(small, resolution=resolution)
    base = arch_cost(space, small, batch_size, compute)
    groups: list[Sequence[Item]] = []
    options: list[list[tuple[int, int, int]]] = []
    for s in range(space.num_stages):
        stage_items, stage_opts = [], []
        for i, (d, k, e) in enumerate(itertools.product(cfg.depths, cfg.kernels, cfg.expands)):
            arch = _with_stage(space, small, s, d, k, e)
            c = arch_cost(space, arch, batch_size, compute)
            delta = tuple(max(0.0, a - b) for a, b in zip(c.as_tuple(), base.as_tuple()))
            stage_items.append(Item(i, float(space.flops(arch) - space.flops(small)) + 1.0, delta))
            stage_opts.append((d, k, e))
        groups.append(stage_items)
        options.append(stage_opts)
    try:
        _, chosen = solve(groups, budget.as_tuple(), base.as_tuple(), exactly_one=True)
    except Infeasible:
        raise BudgetError(f"device {device}: budget ({budget.describe()}) is below the smallest "
                          f"sub-network {small} ({base.describe()})") from None
    picks = [options[s][keys[0]] for s, keys in enumerate(chosen)]
    depths = tuple(d for d, _, _ in picks)
    kernels = tuple(k for d, k, _ in picks for _ in range(d))
    expands = tuple(e for d, _, e in picks for _ in range(d))
    arch = type(small)(depths, kernels, expands, small.resolution)
    space.validate(arch)
    return arch


def elastic_round(supernet: Any, updates: Sequence[tuple[Any, nn.Module, float]],
                  keep: float = 0.0) -> list[str]:
    """Absorb every valid ``(arch, module, weight)``; returns the rejection messages."""
    good, rejected = [], []
    for arch, module, weight in updates:
        try:
            supernet._checked_state(arch, module)  # the supernet's own shape and finiteness check
        except ValueError as exc:
            log.warning("rejected elastic update: %s", exc)
            rejected.append(str(exc))
            continue
        good.append((arch, module, weight))
    if good:
        supernet.absorb_many(good, keep=keep)
    return rejected
