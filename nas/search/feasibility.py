"""Is a budget reachable at all? Answered before the first trial, from predictions alone.

For each constrained cost (latency or energy per device, FLOPs, parameters) this finds
the smallest value any arch of the space reaches: exactly, over every arch, for spaces
that can be enumerated (``nb201``: 15,625 cells, one batched prediction); otherwise by a
quick search (``mbv3``): coordinate descent over the space's Optuna parameters, started
from the smallest arch and a few random ones, each step trying every choice of one
parameter. The message says which method gave the figure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import EdgenasError
from nas.search.objectives import LATENCY_BUDGETS
from nas.search.objectives import flag as flag_of
from nas.search.params import ParamRecorder, arch_of_params

if TYPE_CHECKING:
    from nas.search.problem import SearchProblem


@dataclass(frozen=True)
class Cheapest:
    metric: str
    value: float
    arch: Any
    method: str


@dataclass
class _Descent:
    """One start of the coordinate descent: where it is, its value, whether its last sweep moved."""

    params: dict[str, Any]
    value: float
    improved: bool = True


def _metric(problem: SearchProblem, archs: list[Any], metric: str) -> np.ndarray:
    return problem.costs(archs)[metric]


def cheapest(problem: SearchProblem, metric: str, starts: int = 4, sweeps: int = 3, seed: int = 0) -> Cheapest:
    """The smallest predicted ``metric`` over the space (exact when it can be enumerated)."""
    space = problem.space
    try:
        archs = list(space.enumerate())
    except TypeError:
        archs = None
    if archs is not None:
        values = np.concatenate([_metric(problem, archs[i:i + 4096], metric) for i in range(0, len(archs), 4096)])
        i = int(np.argmin(values))
        return Cheapest(metric, float(values[i]), archs[i], f"exact over all {len(archs):,} archs")
    rng = random.Random(seed)
    probe = ParamRecorder()
    space.suggest(probe)
    choices = probe.choices
    smallest = space.smallest()
    starts_params = []
    for _k in range(starts):
        rec = ParamRecorder(rng=rng)
        space.suggest(rec)
        starts_params.append(rec.params)
    # the starts descend in lock-step (each start's path is its own, as if run one after
    # another), so each step predicts the candidates of every start with one call
    first = _metric(problem, [smallest] + [arch_of_params(space, p) for p in starts_params], metric)
    best_value, best_arch, tried = float(first[0]), smallest, 1
    points = [_Descent(dict(p), float(v)) for p, v in zip(starts_params, first[1:])]
    active = list(points)
    for _ in range(sweeps):
        for point in active:
            point.improved = False
        for name, options in choices.items():
            candidates = [[{**pt.params, name: o} for o in options] for pt in active]
            flat = [c for cs in candidates for c in cs]
            values = _metric(problem, [arch_of_params(space, c) for c in flat], metric)
            tried += len(flat)
            for k, (pt, cs) in enumerate(zip(active, candidates)):
                v = values[k * len(options): (k + 1) * len(options)]
                j = int(np.argmin(v))
                if v[j] < pt.value - 1e-12:
                    pt.params, pt.value, pt.improved = cs[j], float(v[j]), True
        active = [pt for pt in active if pt.improved]  # a sweep that changed nothing ends that start
        if not active:
            break
    for pt in points:
        if pt.value < best_value:
            best_value, best_arch = pt.value, arch_of_params(space, pt.params)
    method = (f"quick search: the smallest arch and coordinate descent from {starts} random archs "
              f"({tried} archs predicted); not exhaustive")
    return Cheapest(metric, best_value, best_arch, method)


def check_budget(problem: SearchProblem) -> dict[str, Cheapest]:
    """Raise a one-line error if some budget cannot be met by any arch; else the cheapest per cost."""
    budget = problem.spec.budget
    limits: dict[str, tuple[float, float, str]] = {}
    for d in problem.devices:
        for metric, value in budget.latency_limits().items():
            limits[f"{metric}@{d.name}"] = (value, budget.allowed(value), flag_of(LATENCY_BUDGETS[metric]))
        if budget.max_energy_mj is not None:
            limits[f"energy_mj@{d.name}"] = (budget.max_energy_mj, budget.allowed(budget.max_energy_mj), "--max-energy-mj")
    if budget.max_e2e_ms is not None and problem.split is not None:
        limits["e2e_latency_ms"] = (budget.max_e2e_ms, budget.allowed(budget.max_e2e_ms), "--max-e2e-ms")
    if budget.max_params_m is not None:
        limits["params_m"] = (budget.max_params_m, budget.max_params_m, "--max-params-m")
    if budget.max_mflops is not None:
        limits["mflops"] = (budget.max_mflops, budget.max_mflops, "--max-mflops")
    if budget.max_memory_mb is not None:
        limits["memory_mb"] = (budget.max_memory_mb, budget.max_memory_mb, "--max-memory-mb")
    found: dict[str, Cheapest] = {}
    for metric, (given, allowed, flag) in limits.items():
        if metric.startswith("energy") and not problem._energy[metric.split("@", 1)[1]]:
            raise EdgenasError(f"{flag}: device {metric.split('@', 1)[1]!r} has no energy predictor (energy not measured)")
        best = cheapest(problem, metric)
        found[metric] = best
        if best.value > allowed:
            unit = metric.split("@")[0].split("_")[-1]
            if budget.safety_margin < 0:
                margin = f" (searched up to {allowed:.4g}, {-budget.safety_margin:.0%} over it, for --verify)"
            else:
                margin = (f" (within {allowed:.4g} after the {budget.safety_margin:.0%} safety margin)"
                          if allowed != given else "")
            raise EdgenasError(
                f"{flag} {given:g}{margin} is infeasible: the cheapest arch of {problem.space.name} reaches "
                f"{best.value:.4g} {unit} predicted {metric.replace('@', ' on ')} ({best.method}); "
                f"raise {flag} to at least {best.value * (given / allowed):.4g}"
            )
    return found
