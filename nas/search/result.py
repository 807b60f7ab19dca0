"""The result of a search as JSON: the feasible Pareto front and the recommended arch.

The front is ``study.best_trials`` (Optuna 5 keeps only trials whose constraint values
are all <= 0 when the study is constrained); the recommended arch is the most accurate
feasible one. Costs are *predicted* (the search never ran the device); accuracy is
measured (supernet, BN recalibrated) or tabulated (nb201, 12-epoch).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nas.search.feasibility import Cheapest
from nas.search.problem import SearchProblem


def trial_record(trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "arch": attrs.get("arch"),
        "accuracy": attrs.get("metrics", {}).get("accuracy"),
        "predicted": {k: v for k, v in attrs.get("metrics", {}).items() if k != "accuracy"},
        "constraints": dict(trial.constraints),
        "feasible": feasible(trial),
        **{k: v for k, v in attrs.items() if k not in ("arch", "metrics")},
    }


def feasible(trial: Any) -> bool:
    """All constraint values <= 0 (Optuna 5 stores them with ``trial.set_constraint``)."""
    return all(c <= 0 for c in trial.constraints.values())


def build_result(study: Any, problem: SearchProblem, storage: str,
                 cheapest: dict[str, Cheapest]) -> dict[str, Any]:
    """The result document for ``--out`` (also printed in short by the command)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in complete if feasible(t)]
    front = sorted(study.best_trials, key=lambda t: -t.user_attrs["metrics"]["accuracy"])
    front = [t for t in front if feasible(t)]
    best = max(ok, key=lambda t: (t.user_attrs["metrics"]["accuracy"], -t.number), default=None)
    return {
        "study": study.study_name,
        "storage": storage,
        "space": problem.space.describe(),
        "accuracy_source": problem.accuracy.describe(),
        "devices": {d.name: d.describe() for d in problem.devices},
        "objectives": problem.names,
        "budget": problem.spec.budget.to_json(),
        "costs_are": "predicted by each device's profile (not measured during the search)",
        "trials": {"complete": len(complete), "feasible": len(ok)},
        "cheapest": {k: {"value": c.value, "arch": problem.space.arch_to_json(c.arch), "method": c.method}
                     for k, c in cheapest.items()},
        "recommended": None if best is None else trial_record(best),
        "pareto_front": [trial_record(t) for t in front],
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write atomically: a reader never sees half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path
