"""Opening a study safely, and recovering trials of workers that died.

A study records what it searches (:meth:`SearchProblem.identity`) in its user
attributes when created; reopening it with anything else (another space, checkpoint,
device profile, budget or objectives) is refused before a single trial is written, so a
stored study is never mixed or damaged.

Every trial records the worker that runs it (host, pid, process start time). On start,
a running trial whose worker is a dead process on this host is failed at once and its
parameters queued again (as Optuna's heartbeat retry does), so ``kill -9`` loses
nothing and repeats nothing; workers on other hosts are recovered by the RDB heartbeat
after its grace period, and so is a running trial that no worker marked (its worker died
between creating and marking it).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from nas.errors import EdgenasError
from nas.search.storage import GRACE_S, MAX_RETRY, StorageSpec, require_optuna
from nas.workspace import Workspace

IDENTITY_ATTR = "edgenas"
WORKER_ATTR = "edgenas_worker"
IDENTITY_WAIT_S = 10.0
"""How long a worker waits for a just-created study's identity before calling it foreign."""


def default_study_name(identity: dict[str, Any]) -> str:
    """``SPACE-DEVICES-HASH``: the same command maps to the same study (and resumes it)."""
    import hashlib

    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    devices = "+".join(identity["devices"])
    return f"{identity['space']['name']}-{devices}-{digest}".replace(":", "_")


def open_study(storage: Any, spec: StorageSpec, name: str, identity: dict[str, Any],
               directions: list[str], sampler: Any) -> Any:
    """Create the study or load it after checking it is the same search."""
    optuna = require_optuna()
    # by name, not get_all_study_summaries: that reads every trial of every study stored
    if name in optuna.get_all_study_names(storage):
        stored = storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get(IDENTITY_ATTR)
        if stored is None:
            stored = _wait_for_identity(optuna, storage, name)
        if stored is None:
            raise EdgenasError(f"study {name!r} in {spec.display} was not made by edgenas search; pick another --study")
        mismatch = _first_difference(stored, json.loads(json.dumps(identity)))
        if mismatch:
            raise EdgenasError(
                f"study {name!r} in {spec.display} is a different search ({mismatch}); run it with its "
                "own settings or pick another --study name"
            )
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                    sampler=sampler, load_if_exists=True)
    except Exception as exc:  # a storage error here is the user's database, not a bug
        raise EdgenasError(f"cannot create study {name!r} in {spec.display}: {str(exc).splitlines()[0]}") from None
    if IDENTITY_ATTR not in study.user_attrs:
        study.set_user_attr(IDENTITY_ATTR, identity)
    return study


def _wait_for_identity(optuna: Any, storage: Any, name: str, seconds: float = IDENTITY_WAIT_S) -> Any:
    """The identity of a study another worker has just created: it writes the identity right
    after creating the study (two commits), so a worker that looks in between waits for it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        study = optuna.load_study(study_name=name, storage=storage)
        stored = study.user_attrs.get(IDENTITY_ATTR)
        if stored is not None or study.trials:
            return stored
    return None


def _first_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    for key in ("space", "accuracy", "objectives", "budget", "devices"):
        if stored.get(key) != wanted.get(key):
            return f"its {key} is {_short(stored.get(key))}, this command's {_short(wanted.get(key))}"
    return ""


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def worker_identity() -> dict[str, Any]:
    """This process: host, pid and its start time (a recycled pid is a different worker)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(worker: dict[str, Any]) -> bool:
    if worker.get("host") != socket.gethostname():
        return True  # not ours to judge: the heartbeat handles other hosts
    start = _start_time(int(worker.get("pid", -1)))
    return start is not None and start == worker.get("start")


def recover_dead_trials(study: Any, now: float | None = None) -> list[int]:
    """Fail running trials whose worker process on this host is dead, and queue them again.

    A trial is marked by its worker within milliseconds of being created
    (:func:`ask_marked`); one still unmarked after the heartbeat's grace period belongs to
    a worker killed in that gap (or to an Optuna ``ask`` that never marks), and is
    recovered the same way."""
    require_optuna()
    from optuna.trial import TrialState

    now = time.time() if now is None else now
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER_ATTR)
        # A retried trial carries its dead worker's record until a new worker marks it.
        if worker is None or worker.get("trial") != trial.number:
            if not _orphaned(trial, now):
                continue
        elif _alive(worker):
            continue
        if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            if _retry(study, trial):
                recovered.append(trial.number)
    return recovered


def _retry(study: Any, trial: Any) -> bool:
    """Queue ``trial``'s parameters again (as Optuna's heartbeat retry does), keeping its
    retry history and dropping what belonged to the dead run (constraints, worker)."""
    import optuna

    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if len(history) > MAX_RETRY:
        return False
    keep = {k: v for k, v in trial.system_attrs.items()
            if not k.startswith("constraints:") and k != WORKER_ATTR}
    keep.update(failed_trial=trial.system_attrs.get("failed_trial", trial.number), retry_history=history)
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, system_attrs=keep))
    return True


def _orphaned(trial: Any, now: float) -> bool:
    start = trial.datetime_start
    return start is not None and now - start.timestamp() > GRACE_S


def ask_marked(study: Any, worker: dict[str, Any]) -> Any:
    """``study.ask()`` that marks the trial with ``worker`` *before* the sampler runs.

    ``ask`` creates the running trial and then samples (seconds for a model-based sampler);
    a worker killed in between would leave an unmarked running trial behind. Here the
    trial is created (or a queued one taken), marked, and only then sampled."""
    import optuna

    study._thread_local.cached_all_trials = None
    trial_id = study._pop_waiting_trial_id()
    if trial_id is None:
        trial_id = study._storage.create_new_trial(study._study_id)
    number = study._storage.get_trial_number_from_id(trial_id)
    study._storage.set_trial_system_attr(trial_id, WORKER_ATTR, {**worker, "trial": number})
    return optuna.Trial(study, trial_id)


def mark_worker(study: Any, trial: Any, worker: dict[str, Any]) -> None:
    """Record which process runs ``trial`` (read by :func:`recover_dead_trials`)."""
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, {**worker, "trial": trial.number})


def count_complete(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def load_edgenas_study(name: str, storage: Any, display: str) -> Any:
    """The Optuna study ``name`` made by ``edgenas search`` (one-line errors otherwise)."""
    optuna = require_optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise EdgenasError(f"no study {name!r} in {display}; studies there: {', '.join(names) or 'none'}") from None
    if IDENTITY_ATTR not in study.user_attrs:
        raise EdgenasError(f"study {name!r} in {display} was not made by edgenas search")
    return study


def open_edgenas_study(workspace: Workspace, name: str, storage: str | None = None) -> tuple[Any, str]:
    """The ``edgenas search`` study ``name`` in the workspace's storage, or in ``storage``
    (a URL or journal, as ``--storage`` takes); also returns the storage as displayed."""
    from nas.search.storage import check_reachable, open_storage, parse_storage

    spec = parse_storage(storage, workspace.studies_url)
    if spec.is_sqlite and not storage and not (workspace.root / "studies.db").is_file():
        raise EdgenasError(f"no study database at {spec.display}; run `edgenas search` first or pass --storage")
    check_reachable(spec)
    return load_edgenas_study(name, open_storage(spec, heartbeat=False), spec.display), spec.display
