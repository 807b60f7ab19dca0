"""Optuna samplers by name, always constructed explicitly with a seed.

Optuna 5 made multi-objective TPE the default sampler; a search here never relies on
Optuna's defaults, and every sampler gets the seed, so a search is reproducible.

``--sampler auto`` (the default) picks by what the search is for (:func:`choose_sampler`):

* one device with a budget: ``screened``. The answer is one arch, the most accurate that
  fits; spending trials only on archs predicted to fit, ranked by an accuracy predictor,
  finds it in far fewer trials (NAS-Bench-201: 0.24 points of regret in 300 trials with
  exact latencies, against 2.49 for NSGA-II; docs/benchmarks.md);
* several devices, or no budget: ``nsga2``. The answer is a wide Pareto front (accuracy
  against each device's cost), which NSGA-II's non-dominated sorting and crowding keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.search.storage import require_optuna

SAMPLERS = ("auto", "nsga2", "screened", "nsga3", "tpe", "gp", "random")
DEFAULT_SAMPLER = "auto"


def choose_sampler(name: str, problem: Any) -> str:
    """``name``, or for ``auto``: ``screened`` for one device under a budget, else ``nsga2``."""
    if name != "auto":
        return name
    budget = problem.spec.budget
    return "screened" if budget.limited and len(problem.devices) == 1 else "nsga2"


def make_sampler(name: str, seed: int | None, population_size: int = 50, problem: Any = None,
                 prior: Sequence[tuple[dict[str, Any], float]] = ()) -> Any:
    """A fresh sampler: ``auto`` (:func:`choose_sampler`), ``nsga2``, ``screened`` (cost-screened, accuracy-predictor
    ranked; needs ``problem``, see :mod:`nas.search.screened`), ``nsga3``, ``tpe`` (multivariate, constant liar
    for parallel workers), ``gp`` (needs torch, slow past a few hundred trials), ``random``.

    ``prior``: (parameters, accuracy) of archs an earlier search of the same accuracy source
    evaluated; the screened sampler learns from them and never proposes them again (the
    second search of ``--verify``); the other samplers ignore it.

    Constraints are never passed as ``constraints_func`` (deprecated in Optuna 5): samplers
    read the values the objective sets with ``trial.set_constraint``.
    """
    optuna = require_optuna()
    s = optuna.samplers
    if name == "auto":
        if problem is None:
            raise ValueError("the auto sampler choice needs the search problem")
        name = choose_sampler(name, problem)
    if name == "nsga2":
        return s.NSGAIISampler(population_size=population_size, seed=seed)
    if name == "screened":
        if problem is None:
            raise ValueError("the screened sampler needs the search problem")
        from nas.search.screened import ScreenedSampler

        return ScreenedSampler(problem, seed=seed, prior=prior)
    if name == "nsga3":
        return s.NSGAIIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        return s.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=20)
    if name == "gp":
        return s.GPSampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")
