"""Search device-specific sub-networks: Optuna studies, run locally or on Ray Tune.

Accuracy comes from the supernet (cached per checkpoint and arch) or a tabular
benchmark; cost from each device's profile; budgets are hard constraints set with
``trial.set_constraint``; ``study.best_trials`` is the feasible Pareto front.

Example::

    spec = SearchSpec("nb201", {}, ("pixel3",), Budget(max_latency_ms=20.0))
    result = run_search(spec, SearchSettings(trials=300))
    result["recommended"]["arch"]
"""

from nas.search.objectives import Budget, Outcome
from nas.search.problem import SearchProblem, SearchSpec, build_problem
from nas.search.runner import SearchSettings, run_search

__all__ = [
    "Budget",
    "Outcome",
    "SearchProblem",
    "SearchSettings",
    "SearchSpec",
    "build_problem",
    "run_search",
]
