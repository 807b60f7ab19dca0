"""Optuna samplers by name, always constructed explicitly with a seed.

Optuna 5 made multi-objective TPE the default sampler; a search here never relies on
defaults: NSGA-II is ours (cheap evaluations, many trials, constraints through
``trial.set_constraint``), and every sampler gets the seed, so a search is reproducible.
"""

from __future__ import annotations

from typing import Any

from nas.search.storage import require_optuna

SAMPLERS = ("nsga2", "screened", "nsga3", "tpe", "gp", "random")
DEFAULT_SAMPLER = "nsga2"


def make_sampler(name: str, seed: int | None, population_size: int = 50, problem: Any = None) -> Any:
    """A fresh sampler: ``nsga2`` (default), ``screened`` (cost-screened, accuracy-predictor
    ranked; needs ``problem``, see :mod:`nas.search.screened`), ``nsga3``, ``tpe`` (multivariate, constant liar
    for parallel workers), ``gp`` (needs torch, slow past a few hundred trials), ``random``.

    Constraints are never passed as ``constraints_func`` (deprecated in Optuna 5): samplers
    read the values the objective sets with ``trial.set_constraint``.
    """
    optuna = require_optuna()
    s = optuna.samplers
    if name == "nsga2":
        return s.NSGAIISampler(population_size=population_size, seed=seed)
    if name == "screened":
        if problem is None:
            raise ValueError("the screened sampler needs the search problem")
        from nas.search.screened import ScreenedSampler

        return ScreenedSampler(problem, seed=seed)
    if name == "nsga3":
        return s.NSGAIIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        return s.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=20)
    if name == "gp":
        return s.GPSampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")
