"""The local engine: ``study.optimize`` in this process, against any storage.

Run the same command in several processes or on several hosts with one ``--storage``
and each is a worker of the same study. The study stops at ``target`` complete trials
(``MaxTrialsCallback``: a worker that finds the target reached stops; concurrent
workers may finish the trials they had started, so a study can hold a few more).
"""

from __future__ import annotations

import uuid
from typing import Any

from nas.search.bulk import TrialWriter, finished_trial
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
                 sampler: Any) -> list[Any]:
    """Fast path for cheap trials (tabular accuracy, warm cache): archs are proposed, scored
    and written a batch at a time, and the study's complete trials are returned.

    A batch is what the sampler proposes before results can change its next proposal
    (a generation of NSGA-II, one refit of the screened sampler): its accuracies are read
    together, its costs predicted with one call per device, and its trials written in one
    transaction (:class:`~nas.search.bulk.TrialWriter`). Samplers with a batch interface
    (``propose_batch``, the screened sampler) propose from the trials directly; any other
    Optuna sampler works on an in-memory copy of the study, one ``ask`` at a time.

    Nothing written is lost or repeated: a killed run loses only its unwritten batch, and
    the next run continues from the stored trials. Trials that other workers complete
    are merged after every batch (their running trials are not visible).
    """
    recover_dead_trials(study)
    _run_waiting(study, problem, progress)
    from optuna.trial import TrialState

    history = list(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if len(history) >= target:
        return history
    writer = TrialWriter(study)
    writer.remember(history)
    proposer = _NativeProposer(sampler) if hasattr(sampler, "propose_batch") else _OptunaProposer(
        sampler, problem, history)
    token = uuid.uuid4().hex
    while len(history) < target:
        n = max(1, min(proposer.size(len(history)), target - len(history)))
        params = proposer.propose(history, n)
        scored = [problem.arch_of(p) for p in params]
        outcomes = problem.measure_many([arch for arch, _, _ in scored])
        extra = proposer.system_attrs()
        trials = [finished_trial(used, dists, outcome, {**attrs, BUFFER_ATTR: token})
                  for (_, used, dists), outcome, attrs in zip(scored, outcomes, extra)]
        stored = writer.write(trials)
        proposer.tell(outcomes)
        history.extend(stored)
        for outcome in outcomes:
            progress.add(outcome.values, list(outcome.constraints.values()))
        others = writer.others()
        if others:
            proposer.merge(others)
            history = sorted(history + others, key=lambda t: t.number)
    progress.print()
    return history


class _NativeProposer:
    """A sampler with ``propose_batch`` (and ``batch_size``), e.g. the screened sampler."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self._n = 0

    def size(self, n_complete: int) -> int:
        return self.sampler.batch_size(n_complete) if hasattr(self.sampler, "batch_size") else 50

    def propose(self, history: list[Any], n: int) -> list[dict[str, Any]]:
        out = self.sampler.propose_batch(history, n)
        self._n = len(out)
        return out

    def system_attrs(self) -> list[dict[str, Any]]:
        return [{} for _ in range(self._n)]

    def tell(self, outcomes: list[Any]) -> None:
        pass

    def merge(self, trials: list[Any]) -> None:
        pass


class _OptunaProposer:
    """Any Optuna sampler, on an in-memory copy of the study: ``ask`` and ``suggest`` one
    trial after another (so its random draws come in the order of the per-trial engine),
    ``tell`` them once the batch is scored."""

    def __init__(self, sampler: Any, problem: SearchProblem, history: list[Any]) -> None:
        import optuna

        self.problem = problem
        self.work = optuna.create_study(directions=problem.directions, sampler=sampler)
        self.work.add_trials(history)
        self.population = getattr(sampler, "population_size", None)
        self.generation_key = getattr(sampler, "_get_generation_key", lambda: None)()
        self.pending: list[Any] = []

    def size(self, n_complete: int) -> int:
        """A generation of a genetic sampler (the rest of the current one on resume),
        else one trial (TPE and GP model every result)."""
        if not self.population:
            return 1
        if self.generation_key is None:
            return self.population
        from optuna.trial import TrialState

        gens = [t.system_attrs.get(self.generation_key) for t in
                self.work.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        gens = [g for g in gens if g is not None]
        if not gens:
            return self.population
        current = gens.count(max(gens))
        return self.population - current if current < self.population else self.population

    def propose(self, history: list[Any], n: int) -> list[dict[str, Any]]:
        self.pending = []
        for _ in range(n):
            trial = self.work.ask()
            self.problem.space.suggest(trial)
            self.pending.append(trial)
        return [dict(t.params) for t in self.pending]

    def system_attrs(self) -> list[dict[str, Any]]:
        """What the sampler noted on each trial (NSGA-II's generation), so a resumed
        search continues the same generations."""
        storage = self.work._storage
        return [{k: v for k, v in storage.get_trial(t._trial_id).system_attrs.items()
                 if not k.startswith("constraints")} for t in self.pending]

    def tell(self, outcomes: list[Any]) -> None:
        for trial, outcome in zip(self.pending, outcomes):
            record(trial, outcome)
            self.work.tell(trial, list(outcome.values))
        self.pending = []

    def merge(self, trials: list[Any]) -> None:
        self.work.add_trials(trials)
