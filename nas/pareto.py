"""Pareto fronts of (accuracy, cost) points and the knee of a front.

The knee is the front's point farthest above the straight line joining its cheapest and
its most accurate points, both axes scaled to [0, 1] over the front: where one more unit
of cost stops buying much accuracy (the "Kneedle" idea). A front of one or two points
has no bend; there the point closest to the ideal (top accuracy at the lowest cost) wins.
A front that sags (no point above the line) has no knee either: it gets its cheapest
point, the other end of the trade-off, rather than the most accurate point a second time.
"""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(accuracy, cost)`` points (accuracy up, cost down)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][0] > best:
            front.append(i)
            best = points[i][0]
    return front


def knee_index(front: Sequence[tuple[float, float]]) -> int:
    """Index (into ``front``) of the knee of a Pareto front of ``(accuracy, cost)`` points."""
    if not front:
        raise ValueError("an empty front has no knee")
    accs = [p[0] for p in front]
    costs = [p[1] for p in front]
    a_lo, a_span = min(accs), (max(accs) - min(accs)) or 1.0
    c_lo, c_span = min(costs), (max(costs) - min(costs)) or 1.0
    norm = [((a - a_lo) / a_span, (c - c_lo) / c_span) for a, c in front]
    if len(front) <= 2:
        return max(range(len(front)), key=lambda i: norm[i][0] - norm[i][1])
    cheap = min(range(len(front)), key=lambda i: (norm[i][1], -norm[i][0]))
    rich = max(range(len(front)), key=lambda i: (norm[i][0], -norm[i][1]))
    (a0, c0), (a1, c1) = norm[cheap], norm[rich]

    def height(i: int) -> float:  # how far above the chord (in accuracy), per unit of chord
        a, c = norm[i]
        if c1 == c0:
            return a - a0
        return a - (a0 + (a1 - a0) * (c - c0) / (c1 - c0))

    knee = max(range(len(front)), key=lambda i: (height(i), norm[i][0]))
    if height(knee) <= 1e-12:
        # no point above the chord: the front does not bend, and the "knee" would be the
        # most accurate point itself; the other end of the trade-off is the distinct choice
        # (as for two points)
        return cheap
    return knee
