"""The multi-dimensional knapsack that picks a device's modules.

Groups are layers; each item is a module with a value (its importance on the device's
data) and a cost vector (memory, compute, bandwidth). A solution takes at least one item
from every group and keeps ``base + sum(costs)`` within the capacity in every dimension,
maximising the total value. Exact: each group's subsets are enumerated and reduced to
their Pareto front (no subset costing more in every dimension for less value survives),
then a depth-first search over groups prunes with an optimistic bound. Layers hold few
candidate modules (those the selector routes to), so this is fast in practice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Item:
    """One module: ``key`` identifies it within its group."""

    key: int
    value: float
    cost: tuple[float, ...]


class Infeasible(ValueError):
    """No choice of at least one item per group fits the capacity."""


def _subsets(items: Sequence[Item], room: np.ndarray, one: bool) -> list[tuple[float, np.ndarray, tuple[int, ...]]]:
    out = []
    for r in range(1, 2 if one else len(items) + 1):
        for combo in itertools.combinations(items, r):
            cost = np.sum([it.cost for it in combo], axis=0)
            if np.all(cost <= room + 1e-9):
                out.append((sum(it.value for it in combo), cost, tuple(it.key for it in combo)))
    out.sort(key=lambda s: -s[0])
    front: list[tuple[float, np.ndarray, tuple[int, ...]]] = []
    for cand in out:  # sorted by value: a later one is dominated if an earlier one costs no more
        if not any(np.all(f[1] <= cand[1]) and f[0] >= cand[0] for f in front):
            front.append(cand)
    return front


def solve(groups: Sequence[Sequence[Item]], capacity: Sequence[float],
          base: Sequence[float] | None = None, exactly_one: bool = False) -> tuple[float, list[tuple[int, ...]]]:
    """Best total value and the chosen keys per group; raises :class:`Infeasible`.

    ``exactly_one`` makes it a multiple-choice knapsack (one option per group).
    """
    cap = np.asarray(capacity, dtype=float)
    start = np.zeros_like(cap) if base is None else np.asarray(base, dtype=float)
    room = cap - start
    if np.any(room < -1e-9):
        raise Infeasible("the fixed part alone exceeds the capacity")
    fronts = [_subsets(g, room, exactly_one) for g in groups]
    if any(not f for f in fronts):
        raise Infeasible("some group has no item that fits")
    best_rest = np.cumsum([f[0][0] for f in fronts][::-1])[::-1].tolist() + [0.0]
    min_rest = np.cumsum([np.min([s[1] for s in f], axis=0) for f in fronts][::-1], axis=0)[::-1]
    min_rest = np.vstack([min_rest, np.zeros_like(cap)])
    best: list = [-np.inf, None]

    def search(g: int, value: float, used: np.ndarray, chosen: list[tuple[int, ...]]) -> None:
        if g == len(fronts):
            if value > best[0]:
                best[0], best[1] = value, list(chosen)
            return
        if value + best_rest[g] <= best[0] + 1e-12 or np.any(used + min_rest[g] > room + 1e-9):
            return
        for v, cost, keys in fronts[g]:
            if np.all(used + cost + min_rest[g + 1] <= room + 1e-9):
                chosen.append(keys)
                search(g + 1, value + v, used + cost, chosen)
                chosen.pop()

    search(0, 0.0, np.zeros_like(cap), [])
    if best[1] is None:
        raise Infeasible("no combination with one item per group fits")
    return float(best[0]), best[1]


def brute_force(groups: Sequence[Sequence[Item]], capacity: Sequence[float],
                base: Sequence[float] | None = None) -> float:
    """The optimum by enumerating every combination (for tests on small instances)."""
    cap = np.asarray(capacity, dtype=float) - (0 if base is None else np.asarray(base, dtype=float))
    per_group = [[c for r in range(1, len(g) + 1) for c in itertools.combinations(g, r)] for g in groups]
    best = -np.inf
    for choice in itertools.product(*per_group):
        items = [it for combo in choice for it in combo]
        if np.all(np.sum([it.cost for it in items], axis=0) <= cap + 1e-9):
            best = max(best, sum(it.value for it in items))
    if best == -np.inf:
        raise Infeasible("no combination fits")
    return float(best)
