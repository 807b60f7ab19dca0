"""The local engine: ``study.optimize`` in this process, against any storage.

Run the same command in several processes or on several hosts with one ``--storage``
and each is a worker of the same study. The study stops at ``target`` complete trials
(``MaxTrialsCallback``: a worker that finds the target reached stops; concurrent
workers may finish the trials they had started, so a study can hold a few more).
"""

from __future__ import annotations

import uuid
from typing import Any

from nas.search.problem import SearchProblem, record
from nas.search.progress import Progress
from nas.search.study import count_complete, mark_worker, recover_dead_trials, worker_identity

BUFFER_ATTR = "edgenas_buffered_by"


def run_local(study: Any, problem: SearchProblem, target: int, progress: Progress) -> int:
    """Run until the study holds ``target`` complete trials; return how many this call added."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    recover_dead_trials(study)
    before = count_complete(study)
    if before >= target:
        return 0
    _optimize(study, problem, progress, callbacks=[MaxTrialsCallback(target, states=(TrialState.COMPLETE,))])
    progress.print()
    return count_complete(study) - before


def _optimize(study: Any, problem: SearchProblem, progress: Progress, n_trials: int | None = None,
              callbacks: list[Any] | None = None) -> None:
    """``study.optimize`` one Optuna trial at a time, each marked with this worker."""
    from optuna.trial import TrialState

    worker = worker_identity()

    def objective(trial: Any) -> tuple[float, ...]:
        mark_worker(study, trial, worker)
        return problem.objective(trial)

    def report(_study: Any, trial: Any) -> None:
        if trial.state == TrialState.COMPLETE:
            progress.add(trial.values, list(trial.constraints.values()))

    study.optimize(objective, n_trials=n_trials, callbacks=[*(callbacks or []), report])


def _run_waiting(study: Any, problem: SearchProblem, progress: Progress) -> None:
    """Run the queued trials (a dead worker's trial, re-queued by ``recover_dead_trials``,
    or ones a user enqueued) one by one through the stored study, as the per-trial engine
    would: the buffered loop samples in memory and would never pick them up."""
    from optuna.trial import TrialState

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if waiting:
        _optimize(study, problem, progress, n_trials=len(waiting))


def run_buffered(study: Any, problem: SearchProblem, target: int, progress: Progress,
                 sampler: Any, sync_every: int = 25) -> int:
    """Fast path for cheap trials (tabular accuracy, warm cache): the sampler works on an
    in-memory copy of the study and each finished trial is written to the stored study in
    one transaction (``study.add_trial``), instead of a dozen writes per trial.

    Nothing finished is lost (each is committed when it completes) and nothing finished
    is repeated (a resumed run loads them); a killed run's in-flight trial is simply
    sampled anew rather than retried. Trials of other workers are merged every
    ``sync_every`` trials, but their running trials are not visible.
    """
    import optuna
    from optuna.trial import TrialState

    recover_dead_trials(study)
    _run_waiting(study, problem, progress)
    before = count_complete(study)
    if before >= target:
        return 0
    work = optuna.create_study(directions=problem.directions, sampler=sampler)
    token = uuid.uuid4().hex
    seen: set[int] = set()

    def pull() -> int:
        """Copy complete trials of other workers (and earlier runs) in; return the study's count."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        new = [t for t in trials if t.number not in seen and t.system_attrs.get(BUFFER_ATTR) != token]
        seen.update(t.number for t in trials)
        work.add_trials(new)
        return len(trials)

    added, total = 0, pull()
    while total < target:
        trial = work.ask()
        outcome = problem.measure(problem.space.suggest(trial))
        system = {f"constraints:{k}": v for k, v in outcome.constraints.items()}
        study.add_trial(optuna.trial.create_trial(
            params=trial.params, distributions=trial.distributions, values=list(outcome.values),
            user_attrs=outcome.attrs, system_attrs={**system, BUFFER_ATTR: token},
        ))
        record(trial, outcome)
        work.tell(trial, list(outcome.values))
        progress.add(outcome.values, list(outcome.constraints.values()))
        added += 1
        total = pull() if added % sync_every == 0 else total + 1
    progress.print()
    return added
