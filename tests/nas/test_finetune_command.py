"""``edgenas finetune``'s choice of arch and its one-line errors."""

from __future__ import annotations

import pytest

from nas.cli import main
from nas.errors import EdgenasError
from nas.report.collect import DeviceView, TrialPoint
from nas.ship import pick_point


def _point(number: int, acc: float, lat: float, feasible: bool = True) -> TrialPoint:
    return TrialPoint(number, {}, acc, lat, None, None, None, feasible)


def test_pick_best_knee_and_trial():
    pts = [_point(0, 50, 1), _point(1, 70, 2), _point(2, 80, 3), _point(3, 81, 6), _point(4, 90, 20, False)]
    front = pts[:4]
    view = DeviceView("dev", pts, front, knee=pts[2], best=pts[3], max_latency_ms=10)
    assert pick_point(view, "best")[0] is pts[3]
    point, why = pick_point(view, "knee")
    assert point is pts[2] and "farthest above the line" in why
    point, why = pick_point(view, "trial:4")
    assert point is pts[4] and "infeasible" in why
    with pytest.raises(EdgenasError, match="trial 9 is not a finished trial"):
        pick_point(view, "trial:9")
    with pytest.raises(EdgenasError, match="use best, knee or trial:N"):
        pick_point(view, "fastest")


def test_no_feasible_trial_is_a_clear_error():
    view = DeviceView("dev", [_point(0, 50, 30, False)], [], knee=None, best=None, max_latency_ms=1)
    for pick in ("best", "knee"):
        with pytest.raises(EdgenasError, match="no feasible trial for dev"):
            pick_point(view, pick)


def test_unknown_study_is_one_line(tmp_path, capsys):
    (tmp_path / "studies.db").touch()
    assert main(["finetune", "nope", "--device", "x", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no study 'nope'" in err and len(err.splitlines()) == 1
