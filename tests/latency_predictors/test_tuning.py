"""Schedules: untuned by default, MetaSchedule with a trial budget and a reused database."""

from __future__ import annotations

import pytest

from latency_predictors.tuning import Schedule


def test_from_trials(tmp_path):
    assert Schedule.from_trials(0, tmp_path) == Schedule() and Schedule().label == "untuned"
    tuned = Schedule.from_trials(64, tmp_path / "db")
    assert tuned.kind == "metaschedule" and tuned.label == "metaschedule-64"
    assert tuned.to_json() == {"kind": "metaschedule", "trials": 64, "database": str(tmp_path / "db")}


@pytest.mark.parametrize("kwargs", [{"kind": "autotvm"}, {"kind": "metaschedule", "trials": 0, "database": "x"},
                                    {"kind": "metaschedule", "trials": 8}])  # fmt: skip
def test_rejects_incomplete_schedules(kwargs):
    with pytest.raises(ValueError):
        Schedule(**kwargs)


def test_negative_trials():
    with pytest.raises(ValueError, match="--tune-trials"):
        Schedule.from_trials(-1, "db")
