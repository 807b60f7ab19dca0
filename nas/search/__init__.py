"""Search device-specific sub-networks: Optuna studies, run locally or on Ray Tune.

Accuracy comes from the supernet (cached per checkpoint and arch) or a tabular
benchmark; cost from each device's profile; budgets are hard constraints set with
``trial.set_constraint``; ``study.best_trials`` is the feasible Pareto front.

Example::

    from nas.search import Budget, SearchSettings, SearchSpec, search

    spec = SearchSpec("nb201", {}, ("table:pixel3",), Budget(max_latency_ms=4.0), workspace="edgenas-workspace")
    result, study = search(spec, SearchSettings(trials=300))
    result["recommended"]["arch"]
"""

from nas.search.objectives import Budget, Outcome
from nas.search.problem import SearchProblem, SearchSpec, build_problem
from nas.search.result import feasible, write_json
from nas.search.runner import SearchSettings, prepare, run_search, search
from nas.search.study import load_edgenas_study, open_edgenas_study

__all__ = [
    "Budget",
    "Outcome",
    "SearchProblem",
    "SearchSettings",
    "SearchSpec",
    "build_problem",
    "feasible",
    "load_edgenas_study",
    "open_edgenas_study",
    "prepare",
    "run_search",
    "search",
    "write_json",
]
