"""One search from start to result: check the budget, open the study, run an engine, summarise.

Shared by ``edgenas search`` and the benchmarks. Every check that can fail on bad input
(space, checkpoint, devices, budget, storage, study identity) runs before the first
trial is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.search.engine_ray import RayOptions
from nas.search.feasibility import check_budget
from nas.search.objectives import Budget
from nas.search.problem import SearchProblem, SearchSpec, build_problem
from nas.search.progress import Progress
from nas.search.result import build_result
from nas.search.samplers import DEFAULT_SAMPLER, make_sampler
from nas.search.storage import check_reachable, open_storage, parse_storage
from nas.search.study import default_study_name, open_study
from nas.workspace import Workspace

MARGIN_PER_ERROR = 1.0
"""``--safety-margin auto`` = this many times the predictor's validation MAPE (chosen on
the nb201 leave-one-device-out benchmarks, docs/benchmarks.md)."""
MAX_AUTO_MARGIN = 0.15
"""Cap of the automatic margin: a MAPE inflated by one outlier among ten cross-validated
rows would otherwise rule out most of the space."""


@dataclass(frozen=True)
class SearchSettings:
    """How to run (not what to optimise): trials, engine, storage, sampler, seed."""

    trials: int = 300
    engine: str = "local"
    storage: str | None = None
    study: str | None = None
    sampler: str = DEFAULT_SAMPLER
    seed: int | None = 0
    population: int = 50
    ray: RayOptions = RayOptions()
    progress_every_s: float = 2.0
    buffered: bool = False

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise EdgenasError(f"--trials must be at least 1, got {self.trials}")
        if self.engine not in ("local", "ray"):
            raise EdgenasError(f"--engine {self.engine!r}: use local or ray")
        if self.buffered and self.engine != "local":
            raise EdgenasError("--buffered is a mode of --engine local")


def auto_margin(devices: list[Any]) -> float:
    """Headroom from the predictors' own validation error (largest over devices)."""
    errors = [d.latency_error for d in devices]
    if any(e is None for e in errors):
        return 0.10  # a predictor without validation figures: assume the few-shot 10 %
    return min(MAX_AUTO_MARGIN, MARGIN_PER_ERROR * max(errors, default=0.0))


def prepare(spec: SearchSpec, margin: float | str = "auto") -> SearchProblem:
    """Build the problem, resolving ``--safety-margin auto`` from the devices' predictors."""
    problem = build_problem(spec)
    value = auto_margin(problem.devices) if margin == "auto" else float(margin)
    spec = replace(spec, budget=replace(spec.budget, safety_margin=round(value, 4)))
    Budget(**spec.budget.to_json())  # validates the margin
    return SearchProblem(spec, problem.space, problem.accuracy, problem.devices, split=problem.split)


def search(spec: SearchSpec, settings: SearchSettings = SearchSettings(), margin: float | str = "auto",
           quiet: bool = False) -> tuple[dict[str, Any], Any]:
    """Search (or resume) the study ``spec`` and ``settings`` describe: the whole pipeline.

    Returns the result document (feasible front, recommended arch, cheapest reachable
    costs; what ``edgenas search --out`` writes) and the Optuna study.

    Example::

        spec = SearchSpec("nb201", {}, ("table:pixel3",), Budget(max_latency_ms=4.0),
                          workspace="edgenas-workspace")
        result, study = search(spec, SearchSettings(trials=300))
        result["recommended"]["arch"]
    """
    return run_search(prepare(spec, margin), settings, quiet=quiet)


def run_search(problem: SearchProblem, settings: SearchSettings, quiet: bool = False) -> tuple[dict[str, Any], Any]:
    """Run (or resume) the search; return the result document and the study."""
    workspace = Path(problem.spec.workspace)
    storage_spec = parse_storage(settings.storage, Workspace(workspace).studies_url)
    check_reachable(storage_spec)
    cheapest = check_budget(problem)
    identity = problem.identity()
    name = settings.study or default_study_name(identity)
    storage = open_storage(storage_spec, heartbeat=settings.engine == "local")
    sampler = make_sampler(settings.sampler, settings.seed, settings.population, problem)
    study = open_study(storage, storage_spec, name, identity, problem.directions, sampler)
    if problem.spec.checkpoint and "edgenas_checkpoint" not in study.user_attrs:
        # where the cloud model lives, so `edgenas finetune STUDY` finds it (not part of the
        # identity: the checkpoint's sha256 is, and a moved checkpoint is still the same)
        study.set_user_attr("edgenas_checkpoint", str(Path(problem.spec.checkpoint).resolve()))
    progress = Progress.from_study(study, settings.trials, problem.names, problem.directions)
    progress.every_s = float("inf") if quiet else settings.progress_every_s
    if settings.engine == "ray":
        from nas.search.engine_ray import run_ray

        run_ray(study, storage, sampler, problem, settings.trials, progress, settings.ray)
    else:
        from nas.search.engine_local import run_buffered, run_local

        if settings.buffered:
            run_buffered(study, problem, settings.trials, progress, sampler)
        else:
            run_local(study, problem, settings.trials, progress)
    return build_result(study, problem, storage_spec.display, cheapest), study
