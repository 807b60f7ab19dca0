"""Batched trial writes (``nas.search.bulk``): what Optuna reads back equals what it wrote itself."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from nas.search.bulk import TrialWriter, finished_trial
from nas.search.objectives import Outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTS = {"a": CategoricalDistribution(["x", "y", "z"]), "n": IntDistribution(1, 9)}


def _outcome(i: int) -> Outcome:
    return Outcome((50.0 + i, 2.0 * i + 1), {"latency_ms@d": i - 3.0}, {"arch": {"i": i}, "metrics": {"accuracy": 50.0 + i}})


def _study(path: Path, name: str = "s") -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    return optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])


def _view(t: optuna.trial.FrozenTrial) -> tuple:
    return (t.state, t.values, t.params, t.user_attrs, t.constraints, t.distributions)


@pytest.mark.parametrize("storage", ["sqlite", "journal", "memory"])
def test_written_trials_read_back_as_optunas_own(tmp_path: Path, storage: str) -> None:
    if storage == "sqlite":
        mine, theirs = _study(tmp_path / "a.db"), _study(tmp_path / "b.db")
    elif storage == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        mine, theirs = (optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / f"{n}.log"))),
                                            directions=["maximize", "minimize"]) for n in "ab")
    else:
        mine, theirs = (optuna.create_study(directions=["maximize", "minimize"]) for _ in "ab")
    trials = [finished_trial({"a": "xyz"[i % 3], "n": i + 1}, DISTS, _outcome(i)) for i in range(7)]
    writer = TrialWriter(mine)
    assert writer.bulk == (storage == "sqlite")
    stored = writer.write(trials[:4]) + writer.write(trials[4:])
    assert [t.number for t in stored] == list(range(7))
    for t in trials:  # Optuna's own path, one trial at a time
        theirs.add_trial(t)
    fresh = optuna.load_study(study_name=mine.study_name, storage=mine._storage) if storage != "memory" else mine
    assert [_view(t) for t in fresh.trials] == [_view(t) for t in theirs.trials]
    assert [t.number for t in fresh.trials] == list(range(7))
    assert all(t.constraints == {"latency_ms@d": i - 3.0} for i, t in enumerate(fresh.trials))
    assert [_view(t) for t in stored] == [_view(t) for t in fresh.trials]


def test_others_are_found_and_numbers_never_collide(tmp_path: Path) -> None:
    """Two writers on one study (workers) interleave batches; each finds the other's trials."""
    url = tmp_path / "s.db"
    a = _study(url)
    b = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(f"sqlite:///{url}"))
    wa, wb = TrialWriter(a), TrialWriter(b)
    wa.write([finished_trial({"a": "x", "n": 1}, DISTS, _outcome(0))] * 3)
    wb.write([finished_trial({"a": "y", "n": 2}, DISTS, _outcome(1))] * 2)
    b.add_trial(finished_trial({"a": "z", "n": 3}, DISTS, _outcome(2)))  # a per-trial worker
    wa.write([finished_trial({"a": "x", "n": 4}, DISTS, _outcome(3))])
    seen = wa.others()
    assert sorted(t.params["n"] for t in seen) == [2, 2, 3] and wa.others() == []
    numbers = [t.number for t in optuna.load_study(study_name="s", storage=f"sqlite:///{url}").trials]
    assert sorted(numbers) == list(range(7))


def test_incompatible_distribution_is_refused_and_nothing_written(tmp_path: Path) -> None:
    study = _study(tmp_path / "s.db")
    TrialWriter(study).write([finished_trial({"a": "x", "n": 1}, DISTS, _outcome(0))])
    other = {"a": CategoricalDistribution(["p", "q"]), "n": DISTS["n"]}
    with pytest.raises(ValueError):
        TrialWriter(study).write([finished_trial({"a": "p", "n": 1}, other, _outcome(1))])
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}").trials) == 1
