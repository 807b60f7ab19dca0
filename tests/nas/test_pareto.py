from __future__ import annotations

import random

import pytest

from nas.pareto import knee_index, pareto_front


def test_front_is_exactly_the_non_dominated_points():
    rng = random.Random(0)
    points = [(rng.random(), rng.random()) for _ in range(200)]
    front = set(pareto_front(points))
    for i, (a, c) in enumerate(points):
        dominated = any(b >= a and d <= c and (b, d) != (a, c) for b, d in points)
        assert (i in front) == (not dominated)


def test_knee_is_where_the_front_bends():
    # accuracy rises steeply until cost 3, then barely: the knee is at cost 3
    front = [(50.0, 1.0), (70.0, 2.0), (80.0, 3.0), (81.0, 6.0), (82.0, 10.0)]
    assert front[knee_index(front)] == (80.0, 3.0)
    assert knee_index([(60.0, 1.0), (90.0, 5.0)]) in (0, 1)
    assert knee_index([(60.0, 1.0)]) == 0
    # a front that sags below the line between its ends has no knee: the cheap end, not the
    # most accurate point again (the quickstart registered the same arch twice)
    sagging = [(60.0, 1.0), (62.0, 4.0), (90.0, 5.0)]
    assert knee_index(sagging) == 0
    with pytest.raises(ValueError):
        knee_index([])
