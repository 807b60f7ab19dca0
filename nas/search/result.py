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

import numpy as np

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
                 cheapest: dict[str, Cheapest], trials: list[Any] | None = None) -> dict[str, Any]:
    """The result document for ``--out`` (also printed in short by the command).

    ``trials``: the study's complete trials when the caller holds them already (the
    buffered engine does), so they are not read back from the storage."""
    from optuna.trial import TrialState

    complete = trials if trials is not None else study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in complete if feasible(t)]
    front = sorted(pareto_trials(ok, problem.directions), key=lambda t: -t.user_attrs["metrics"]["accuracy"])
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


def apply_verification(result: dict[str, Any], outcome: Any, problem: SearchProblem) -> dict[str, Any]:
    """The result after :func:`nas.search.verify.verify_search`: ``verification`` (status,
    counts, message), ``verified`` (every measured candidate, predicted and measured), and
    ``recommended`` replaced by the most accurate arch measured to fit (``verified: true``)
    or, failing that, the safe predicted pick (``verified: false``)."""
    result = dict(result)
    rec = outcome.recommended
    result["verification"] = {
        "status": outcome.status, "requested": outcome.requested, "measurements": outcome.measurements,
        "recommended_verified": outcome.verified, "message": outcome.message,
        "how": "each measured on the device as profiled (same target, schedule, timing and reach); "
               "candidates chosen by expected accuracy gain x probability of fitting, the predictor "
               "refitted after each",
    }
    result["verified"] = outcome.records
    if rec is None:
        result["recommended"] = None
    else:
        record = trial_record(rec)
        record["verified"] = outcome.verified
        if outcome.verified:
            record["measured"] = {f"latency_ms@{k}": v for k, v in outcome.recommended_measured.items()}
        result["recommended"] = record
    result["costs_are"] = ("predicted by each device's profile; the recommended arch's latency is measured"
                           if outcome.verified else
                           "predicted by each device's profile (UNVERIFIED: " + (outcome.message or outcome.status) + ")")
    return result


def pareto_trials(trials: list[Any], directions: list[str]) -> list[Any]:
    """The trials no other of ``trials`` dominates (as ``study.best_trials`` on feasible ones)."""
    if not trials:
        return []
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    values = np.array([t.values for t in trials], dtype=float) * sign  # all minimised
    keep = []
    for i, v in enumerate(values):
        dominated = np.all(values <= v, axis=1) & np.any(values < v, axis=1)
        if not dominated.any():
            keep.append(trials[i])
    return keep


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
