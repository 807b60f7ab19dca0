"""The Ray Tune engine: trials run as Ray Tune trials on a Ray cluster.

Ray Tune's ``OptunaSearch`` asks the *same* Optuna study (same sampler, same storage)
for each trial's parameters; a Tune trial rebuilds the search problem in its worker
process (once per process), scores the arch and reports objectives plus constraint
values, which :class:`ConstrainedOptunaSearch` writes onto the Optuna trial with
``trial.set_constraint`` before telling the study. Resources per trial (CPUs,
fractional GPUs), retries of failed trials (``FailureConfig``) and a shared
``storage_path`` for Tune's own files are options.

Resuming needs nothing from Tune: the Optuna study is the record. A new run asks for
the trials still missing; running trials of a killed driver are failed and queued again
(:func:`nas.search.study.recover_dead_trials`), so none is lost or repeated.
"""

from __future__ import annotations

import json
import pickle
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.search.objectives import Outcome
from nas.search.problem import SearchProblem, cached_problem, record
from nas.search.progress import Progress
from nas.search.study import ask_marked, count_complete, recover_dead_trials, worker_identity

OUTCOME_KEY = "edgenas_outcome"


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run on Ray."""

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    retries: int = 2
    storage_path: str | None = None


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EdgenasError("--engine ray needs Ray Tune: pip install 'edgenas[search]'") from None
    return ray


def connect(address: str | None) -> bool:
    """``ray.init`` with a quick reachability check first (a wrong address fails in seconds);
    True when this started a local instance (the caller stops it).

    Without an address (or with ``auto``) Ray joins the cluster named by ``RAY_ADDRESS`` or
    recorded by the last ``ray start`` on this machine (``/tmp/ray/ray_current_cluster``),
    which stays behind when that cluster was stopped without ``ray stop``: Ray would then
    retry the dead address for minutes, so it is checked the same way."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    target = _found_address(address) if address in (None, "auto") else address
    if target and target not in ("auto", "local"):
        if target.startswith("ray://"):
            host_port = target[len("ray://"):]
        else:
            host_port = target
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise EdgenasError(f"--ray-address {target!r}: use auto, local or HOST:PORT (the head's GCS port)")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as exc:
            reason = exc.strerror or exc
            if target == address:
                raise EdgenasError(f"cannot reach the Ray cluster at {target} ({reason}); start it with "
                                   "`ray start --head` or fix --ray-address") from None
            raise EdgenasError(
                f"cannot reach the Ray cluster at {target} ({reason}), which Ray found in RAY_ADDRESS or "
                "as the last `ray start` on this machine (a cluster stopped without `ray stop` leaves "
                "its address behind); run `ray stop`, or pass --ray-address local or HOST:PORT"
            ) from None
    from nas.local_ray import init_ray

    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    try:
        # the address found, if any: init_ray keeps a loopback one on loopback (Ray would dial
        # the machine's network address); a local instance listens on 127.0.0.1 only
        return init_ray(target or address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:
        raise EdgenasError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}; fix --ray-address") from None


def _found_address(address: str | None) -> str | None:
    """The address Ray itself would join for ``address`` None or ``auto``; None when it would
    start a local instance (or, for ``auto``, finds nothing: Ray's own error follows)."""
    from ray._private import services

    try:
        return services.get_ray_address_from_environment(address, None)
    except ConnectionError:
        return None


def _trainable(config: dict[str, Any], spec_json: str) -> None:
    """One Tune trial: rebuild the problem (cached per worker), score the arch, report."""
    from optuna.trial import FixedTrial
    from ray import tune

    problem = cached_problem(spec_json)
    arch = problem.space.suggest(FixedTrial(config))
    outcome = problem.measure(arch)
    metrics = dict(zip(problem.names, outcome.values))
    payload = {"constraints": outcome.constraints, "attrs": outcome.attrs}
    tune.report({**metrics, OUTCOME_KEY: json.dumps(payload)})


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch

    class ConstrainedOptunaSearch(OptunaSearch):
        """``OptunaSearch`` that records constraints and extras on the Optuna trial, marks
        which driver runs it, and reports progress."""

        def __init__(self, *args: Any, progress: Progress | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._edgenas_worker = worker_identity()
            self._edgenas_progress = progress

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            if trial_id not in self._ot_trials:  # marked before sampling: a kill leaves nothing unmarked
                self._ot_trials[trial_id] = ask_marked(self._ot_study, self._edgenas_worker)
            return super().suggest(trial_id)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            done = trial_id in self._completed_trials
            if ot_trial is not None and result and not error and OUTCOME_KEY in result and not done:
                payload = json.loads(result[OUTCOME_KEY])
                record(ot_trial, Outcome((), payload["constraints"], payload["attrs"]))
            super().on_trial_complete(trial_id, result, error)
            if self._edgenas_progress is not None and result and not error and not done:
                values = [result[m] for m in self.metric]
                self._edgenas_progress.add(values, list(payload["constraints"].values()))

        def save(self, checkpoint_path: str) -> None:
            """Tune's searcher checkpoint holds nothing: the Optuna study is the record and
            a resumed search reopens it (the sampler, storage and space are not picklable)."""
            with open(checkpoint_path, "wb") as fh:
                pickle.dump({"study": self._ot_study.study_name}, fh)

        def restore(self, checkpoint_path: str) -> None:
            return None

    return ConstrainedOptunaSearch


def run_ray(study: Any, storage: Any, sampler: Any, problem: SearchProblem, target: int,
            progress: Progress, options: RayOptions) -> int:
    """Run Tune trials until the study holds ``target`` complete trials; return how many were added.

    A local Ray instance this call started is stopped when it returns (a cluster it joined is not)."""
    started = connect(options.address)
    try:
        return _run_tune(study, storage, sampler, problem, target, progress, options)
    finally:
        if started:
            from nas.local_ray import shutdown_ray

            shutdown_ray()


def _run_tune(study: Any, storage: Any, sampler: Any, problem: SearchProblem, target: int,
              progress: Progress, options: RayOptions) -> int:
    from ray import tune

    recover_dead_trials(study)
    before = count_complete(study)
    remaining = target - before
    if remaining <= 0:
        return 0
    space = problem.space

    def define_by_run(trial: Any) -> None:
        space.suggest(trial)

    searcher = _searcher_class()(
        space=define_by_run,
        metric=list(problem.names),
        mode=["max" if d == "maximize" else "min" for d in problem.directions],
        sampler=sampler,
        study_name=study.study_name,
        storage=storage,
        progress=progress,
    )
    if options.concurrency:
        from ray.tune.search import ConcurrencyLimiter

        searcher = ConcurrencyLimiter(searcher, max_concurrent=options.concurrency)
    spec_json = json.dumps(problem.spec.to_json(), sort_keys=True)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, spec_json=spec_json),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    storage_path = options.storage_path or str(Path(problem.spec.workspace).resolve() / "ray_results")
    tuner = tune.Tuner(
        trainable,
        # One actor scores many trials, so the problem is built once per worker process
        # (cached_problem); a fresh actor per trial re-imports and rebuilds it every time.
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{study.study_name}-{int(time.time())}",
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=options.retries),
            verbose=0,
        ),
    )
    tuner.fit()
    progress.print()
    return count_complete(study) - before
