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

EDGE_ERRORS = 2.0
"""The second search of ``--verify`` looks this many re-estimated predictor errors over
where the measurements put the budget's edge (:func:`edge_margin`)."""


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
    verify: int = 0
    """Measure up to this many candidates on the device after the search (:mod:`nas.search.verify`)."""
    reach: Any = None
    """Where to reach the device for ``verify`` when it moved (a :class:`~latency_predictors.profilers.Reach`)."""

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise EdgenasError(f"--trials must be at least 1, got {self.trials}")
        if self.engine not in ("local", "ray"):
            raise EdgenasError(f"--engine {self.engine!r}: use local or ray")
        if self.buffered and self.engine != "local":
            raise EdgenasError("--buffered is a mode of --engine local")
        if self.verify < 0:
            raise EdgenasError(f"--verify must be 0 or more measurements, got {self.verify}")


def auto_margin(devices: list[Any], metrics: list[str] | None = None) -> float:
    """Headroom from the predictors' own validation error (largest over devices and over
    the budgeted latency ``metrics``; the primary metric's when none is named)."""
    errors = []
    for d in devices:
        named = [m for m in metrics or [] if m in getattr(d, "metrics", ()) and hasattr(d, "metric_error")]
        errors += [d.metric_error(m) for m in named] if named else [d.latency_error]
    if any(e is None for e in errors):
        return 0.10  # a predictor without validation figures: assume the few-shot 10 %
    return min(MAX_AUTO_MARGIN, MARGIN_PER_ERROR * max(errors, default=0.0))


def prepare(spec: SearchSpec, margin: float | str = "auto") -> SearchProblem:
    """Build the problem, resolving ``--safety-margin auto`` from the devices' predictors
    (``"verify"``: the negative margin of a verified search, see
    :func:`nas.search.verify.exploration_band`)."""
    problem = build_problem(spec)
    if margin == "auto":
        value = auto_margin(problem.devices, list(spec.budget.latency_limits()))
    elif margin == "verify":
        from nas.search.verify import exploration_band

        value = -exploration_band(problem.devices)
    else:
        value = float(margin)
    return with_margin(problem, value)


def with_margin(problem: SearchProblem, value: float) -> SearchProblem:
    """``problem`` with the safety margin ``value`` (validated), its predictors reused."""
    spec = replace(problem.spec, budget=replace(problem.spec.budget, safety_margin=round(value, 4)))
    Budget(**spec.budget.to_json())  # validates the margin
    return SearchProblem(spec, problem.space, problem.accuracy, problem.devices, split=problem.split)


def search(spec: SearchSpec, settings: SearchSettings = SearchSettings(), margin: float | str = "auto",
           quiet: bool = False, loops: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Search (or resume) the study ``spec`` and ``settings`` describe: the whole pipeline.

    Returns the result document (feasible front, recommended arch, cheapest reachable
    costs; what ``edgenas search --out`` writes) and the Optuna study. With
    ``settings.verify`` the candidates are then measured on the device
    (:mod:`nas.search.verify`; ``loops`` replaces the devices' measuring side, as the
    benchmarks do) and the result says what was measured and whether the recommended arch
    is verified (``result["verification"]["status"]``).

    Example::

        spec = SearchSpec("nb201", {}, ("table:pixel3",), Budget(max_latency_ms=4.0),
                          workspace="edgenas-workspace")
        result, study = search(spec, SearchSettings(trials=300))
        result["recommended"]["arch"]
    """
    if not settings.verify:
        return run_search(prepare(spec, margin), settings, quiet=quiet)
    from nas.search.verify import check_verifiable

    problem = prepare(spec, "verify" if margin == "auto" else margin)
    check_verifiable(problem)
    if loops is None:
        loops = device_loops(problem, settings.reach)
    study, trials, display, cheapest = _run(problem, settings, quiet)
    result = build_result(study, problem, display, cheapest, trials)
    k = settings.verify
    first = run_verification(problem, study, trials, result, loops, (k + 1) // 2 if k >= 2 else k, quiet)
    check = first["verification"]
    left = k - check["measurements"]
    if left <= 0 or check["status"] in ("unreachable", "interrupted"):
        return first, study
    # Second round: the first measurements calibrated the predictor where the decision is;
    # search again with it (a new study: the profile's counts and the margin changed), the
    # margin set by the bias measured at the edge less two re-estimated errors, its sampler
    # trained on the first search's accuracies, then spend the rest on the new candidates
    # and those measured already.
    if not quiet:
        import sys

        print(f"verify: searching again with the predictor refitted on {check['measurements']} measurement(s)",
              file=sys.stderr, flush=True)
    again = prepare(spec, 0.0 if margin == "auto" else margin)  # with the refitted predictor
    if margin == "auto":  # search where the measurements say the edge is
        again = with_margin(again, edge_margin(again, first))
    settings2 = replace(settings, study=f"{settings.study}-refit" if settings.study else None)
    # the first search's accuracies hold for the second (same accuracy source): its sampler
    # learns from them and spends its trials on archs not evaluated yet
    index = again.names.index("accuracy")
    prior = [(t.params, float(t.values[index])) for t in trials if t.values is not None]
    study2, trials2, display2, cheapest2 = _run(again, settings2, quiet, prior)
    result2 = build_result(study2, again, display2, cheapest2, trials2)
    # every arch the first search explored stays a candidate, re-ranked with the refitted predictor
    second = run_verification(again, study2, list(trials2) + list(trials), result2, loops, left, quiet,
                              earlier=(study, trials))
    return merge_verifications(first, second, k), study2


def edge_margin(problem: SearchProblem, first: dict[str, Any]) -> float:
    """The safety margin of the second search: where the measurements say the most accurate
    arch that could fit lies. The refitted predictor's bias at the budget's edge by the
    candidates measured (:func:`nas.search.verify.edge_bias`) less :data:`EDGE_ERRORS`
    predictor errors (re-estimated from how far the first round's predictions were off,
    :func:`nas.search.verify.posterior_error`; two, as the first search's band is two
    validation errors), as a margin: negative, so archs predicted somewhat over the budget
    are searched, the more so the less the predictor can be trusted there; between
    -:data:`nas.search.verify.MAX_EDGE_BAND` and +(the exploration band). The first round's
    trials stay candidates (and its accuracies train the second search's sampler, which
    never evaluates them again), so the second search spends its trials higher up."""
    import math

    import numpy as np

    from nas.search.verify import MAX_EDGE_BAND, edge_bias, exploration_band, posterior_error

    band = exploration_band(problem.devices)
    records = first.get("verified", [])
    if not records:
        return -band
    archs = [problem.space.arch_from_json(r["arch"]) for r in records]
    worst = None
    for d in problem.devices:
        key = f"latency_ms@{d.name}"
        pred = np.asarray(d.predict_latency_ms(archs), dtype=float)
        got = [r["measured"].get(key) for r in records]
        sigma = posterior_error(d.latency_error, [(r["predicted"].get(key), r["measured"].get(key)) for r in records])
        low = edge_bias(pred, got) - EDGE_ERRORS * sigma
        worst = low if worst is None else min(worst, low)
    return round(max(-MAX_EDGE_BAND, min(band, math.exp(worst) - 1.0)), 4)


def merge_verifications(first: dict[str, Any], second: dict[str, Any], k: int) -> dict[str, Any]:
    """The result of two verification rounds (``k`` measurements allowed in all): the
    second's recommendation (it saw every measurement), both rounds' measured candidates."""
    out = dict(second)
    check = dict(second["verification"])
    check["measurements"] = first["verification"]["measurements"] + check["measurements"]
    check["requested"] = k
    check["rounds"] = 2
    out["verification"] = check
    # the second round never measures an arch the first did (measured archs cost nothing)
    out["verified"] = list(first.get("verified", [])) + list(second.get("verified", []))
    return out



def device_loops(problem: SearchProblem, reach: Any = None) -> dict[str, Any]:
    """A :class:`~nas.search.verify.ProfiledDevice` per device (an imported one is refused here,
    before the search)."""
    from nas.search.verify import ProfiledDevice

    ws = Workspace(Path(problem.spec.workspace))
    return {d.name: ProfiledDevice(ws, d.name, problem.space, reach) for d in problem.devices}


def run_verification(problem: SearchProblem, study: Any, trials: list[Any], result: dict[str, Any],
                     loops: dict[str, Any], k: int, quiet: bool = False,
                     earlier: tuple[Any, list[Any]] | None = None) -> dict[str, Any]:
    """Measure the search's candidates (:func:`nas.search.verify.verify_search`), store the
    measurements with the study, and rewrite the result's recommendation accordingly.

    ``earlier`` (study, its trials): candidates of ``trials`` that came from an earlier
    study; a measurement of one is stored with that study. Every record and the
    recommendation name their study (``"study"``: trial numbers are that study's)."""
    import sys

    from nas.search.result import apply_verification
    from nas.search.verify import DeviceUnreachable, unverified, verify_search

    fallback = auto_margin(problem.devices)
    log = (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        for loop in loops.values():
            if hasattr(loop, "connect"):
                loop.connect()
    except DeviceUnreachable as exc:
        outcome = unverified(problem, trials, k, fallback, "unreachable", str(exc))
    else:
        outcome = verify_search(problem, trials, loops, k, fallback, log)
        for loop in loops.values():
            if hasattr(loop, "finish"):
                loop.finish()
    first_ids = {id(t) for t in earlier[1]} if earlier else set()
    for record, trial in zip(outcome.records, outcome.measured_trials, strict=True):
        owner = earlier[0] if earlier and id(trial) in first_ids else study
        record["study"] = owner.study_name
        owner.set_user_attr(f"edgenas_measured:{record['trial']}", record)
    out = apply_verification(result, outcome, problem)
    if out.get("recommended"):
        out["recommended"]["study"] = (earlier[0] if earlier and id(outcome.recommended) in first_ids
                                       else study).study_name
    return out


def run_search(problem: SearchProblem, settings: SearchSettings, quiet: bool = False) -> tuple[dict[str, Any], Any]:
    """Run (or resume) the search; return the result document and the study."""
    study, trials, display, cheapest = _run(problem, settings, quiet)
    return build_result(study, problem, display, cheapest, trials), study


def _run(problem: SearchProblem, settings: SearchSettings, quiet: bool,
         prior: list[tuple[dict[str, Any], float]] | None = None) -> tuple[Any, list[Any] | None, str, Any]:
    """The search itself: the study, its complete trials (when the engine holds them),
    the storage as displayed, and the cheapest reachable costs. ``prior``: archs an earlier
    search evaluated, with their accuracy (see :func:`nas.search.samplers.make_sampler`)."""
    workspace = Path(problem.spec.workspace)
    storage_spec = parse_storage(settings.storage, Workspace(workspace).studies_url)
    check_reachable(storage_spec)
    cheapest = check_budget(problem)
    identity = problem.identity()
    name = settings.study or default_study_name(identity)
    storage = open_storage(storage_spec, heartbeat=settings.engine == "local")
    sampler = make_sampler(settings.sampler, settings.seed, settings.population, problem, prior or ())
    study = open_study(storage, storage_spec, name, identity, problem.directions, sampler)
    if problem.spec.checkpoint and "edgenas_checkpoint" not in study.user_attrs:
        # where the cloud model lives, so `edgenas finetune STUDY` finds it (not part of the
        # identity: the checkpoint's sha256 is, and a moved checkpoint is still the same)
        study.set_user_attr("edgenas_checkpoint", str(Path(problem.spec.checkpoint).resolve()))
    progress = Progress.from_study(study, settings.trials, problem.names, problem.directions)
    progress.every_s = float("inf") if quiet else settings.progress_every_s
    progress.quiet = quiet
    trials = None
    if settings.engine == "ray":
        from nas.search.engine_ray import run_ray

        run_ray(study, storage, sampler, problem, settings.trials, progress, settings.ray)
    else:
        from nas.search.engine_local import run_buffered, run_local

        if settings.buffered:
            trials = run_buffered(study, problem, settings.trials, progress, sampler)
        else:
            run_local(study, problem, settings.trials, progress)
    if trials is None:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study, trials, storage_spec.display, cheapest
