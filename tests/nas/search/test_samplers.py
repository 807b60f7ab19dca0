"""``--sampler auto``: screened for one device under a budget, NSGA-II for fronts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nas.search.objectives import Budget
from nas.search.samplers import choose_sampler


def _problem(devices: int, budget: Budget) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(budget=budget), devices=[object()] * devices)


@pytest.mark.parametrize(("devices", "budget", "chosen"), [
    (1, Budget(max_latency_ms=5.0), "screened"),
    (1, Budget(max_params_m=1.0), "screened"),
    (2, Budget(max_latency_ms=5.0), "nsga2"),
    (1, Budget(), "nsga2"),
])
def test_auto_picks_by_what_the_search_is_for(devices: int, budget: Budget, chosen: str) -> None:
    assert choose_sampler("auto", _problem(devices, budget)) == chosen
    assert choose_sampler("random", _problem(devices, budget)) == "random"  # an explicit choice stands
