"""Marking trials with their worker, and recovering the trials of workers that died."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from nas.search.storage import GRACE_S
from nas.search.study import WORKER_ATTR, ask_marked, recover_dead_trials, worker_identity


@pytest.fixture
def study(tmp_path: Path) -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'studies.db'}")


class _Spy(optuna.samplers.RandomSampler):
    """Records what the stored trial held when the sampler first saw it."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[Any] = []

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict:
        stored = study._storage.get_trial(trial._trial_id)
        self.seen.append(stored.system_attrs.get(WORKER_ATTR))
        return {}


def test_a_trial_is_marked_before_the_sampler_runs(tmp_path: Path) -> None:
    spy = _Spy()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db'}", sampler=spy)
    worker = worker_identity()
    trial = ask_marked(study, worker)
    trial.suggest_int("x", 0, 3)
    assert spy.seen == [{**worker, "trial": trial.number}]
    assert trial.number == 0 and study.trials[0].state.name == "RUNNING"


def test_a_queued_trial_is_taken_and_marked(study: Any) -> None:
    study.enqueue_trial({"x": 2})
    trial = ask_marked(study, worker_identity())
    assert trial.suggest_int("x", 0, 3) == 2
    assert study.trials[0].system_attrs[WORKER_ATTR]["trial"] == 0
    assert not [t for t in study.trials if t.state.name == "WAITING"]


def test_an_unmarked_running_trial_is_recovered_only_after_the_grace_period(study: Any) -> None:
    """A worker killed between creating a trial and marking it leaves an unmarked running
    trial; it is failed and queued again once older than the grace period, not before (its
    worker may be about to mark it)."""
    trial = study.ask()
    trial.suggest_int("x", 0, 3)
    started = study.trials[0].datetime_start.timestamp()
    assert recover_dead_trials(study, now=started + 1) == []
    assert study.trials[0].state.name == "RUNNING"
    assert recover_dead_trials(study, now=started + GRACE_S + 1) == [0]
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "WAITING"]
    assert study.trials[1].params == study.trials[0].params


def test_a_live_workers_trial_is_left_alone(study: Any) -> None:
    ask_marked(study, worker_identity()).suggest_int("x", 0, 3)
    assert recover_dead_trials(study, now=time.time() + 10 * GRACE_S) == []
    assert study.trials[0].state.name == "RUNNING"
