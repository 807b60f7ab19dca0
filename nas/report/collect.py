"""Gather what a report shows: a study's trials per device, the registered models of the
study, each device profile's validation, and what training and search cost."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.pareto import knee_index, pareto_front
from nas.search import feasible
from nas.workspace import Workspace

TRUST_WITHIN_10PCT = 0.90
"""A device whose predictor puts fewer held-out networks than this within ±10 % gets a
warning beside its front in the report."""


@dataclass
class TrialPoint:
    """One finished trial as seen on one device."""

    number: int
    arch: dict[str, Any]
    accuracy: float
    latency_ms: float
    energy_mj: float | None
    mflops: float | None
    params_m: float | None
    feasible: bool
    latencies: dict[str, float] = field(default_factory=dict)  # every latency metric (gpt: decode_ms, prefill_ms)


@dataclass
class DeviceView:
    """Everything the report shows for one device."""

    name: str
    points: list[TrialPoint]
    front: list[TrialPoint]  # feasible Pareto front (accuracy up, latency down), by latency
    knee: TrialPoint | None
    best: TrialPoint | None  # most accurate feasible
    max_latency_ms: float | None
    safety_margin: float = 0.0  # predictions must stay within budget / (1 + margin)
    profile: dict[str, Any] | None = None  # DeviceProfile.to_json(), when the device was profiled
    validation_pairs: list[tuple[float, float]] = field(default_factory=list)  # (measured, predicted) ms
    metric: str = "latency_ms"  # the latency the points' latency_ms holds (gpt: decode_ms)

    @property
    def metric_label(self) -> str:
        """How the latency axis is named: ``latency``, or ``decode latency`` for gpt."""
        return "latency" if self.metric == "latency_ms" else f"{self.metric.removesuffix('_ms')} latency"

    @property
    def trust_warning(self) -> str | None:
        """Why this device's predicted costs are not to be taken at face value, and what
        to do, or ``None`` when its predictor validated at ``TRUST_WITHIN_10PCT`` or better."""
        return trust_warning(self.name, self.profile)


def trust_warning(device: str, profile: dict[str, Any] | None) -> str | None:
    """The warning for a device profile (its ``to_json()``) whose predictor validated below
    ``TRUST_WITHIN_10PCT`` within ±10 %, with what to do; ``None`` otherwise."""
    if not profile:
        return None
    figures = (profile.get("validation") or {}).get(profile.get("predictor", ""), {})
    within = figures.get("within_10pct")
    if within is None or within >= TRUST_WITHIN_10PCT:
        return None
    how = ("cross-validated over its imported measurements" if (profile.get("reached") or {}).get("kind") == "import"
           else "on held-out networks measured end to end")
    text = (f"Only {100 * within:.0f} % of {figures.get('n', '?')} networks are predicted within ±10 % "
            f"({how}; trusted from {100 * TRUST_WITHIN_10PCT:.0f} %, MAPE {figures.get('mape_pct', float('nan')):.1f} %): "
            "predicted costs near the budget may be on the wrong side of it. ")
    if (profile.get("reached") or {}).get("kind") == "import":
        return text + (f"Measure the candidates that matter and import them: `edgenas devices suggest {device} "
                       "--budget ... -n K --out todo.csv`, or re-run the search with `--verify K`.")
    return text + (f"Measure the best candidates on the device: `edgenas search ... --device {device} --verify K`, "
                   f"or profile longer: `edgenas profile --device {device} ... --budget-minutes 20` (resumes, "
                   "adding measurements).")


def ranking_agreement(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether inherited (supernet) accuracy ranked the registered models as fine-tuning
    did: the pairs in the same order and the pairs swapped (``None`` with fewer than two
    models that have both accuracies)."""
    rows = [e for e in entries if (e.get("metrics") or {}).get("accuracy_inherited") is not None
            and (e.get("metrics") or {}).get("accuracy") is not None]
    if len(rows) < 2:
        return None
    agree, swapped = 0, []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            inherited = a["metrics"]["accuracy_inherited"] - b["metrics"]["accuracy_inherited"]
            tuned = a["metrics"]["accuracy"] - b["metrics"]["accuracy"]
            if inherited * tuned > 0 or inherited == tuned == 0:
                agree += 1
                continue
            hi, lo = (a, b) if inherited >= 0 else (b, a)  # hi: ranked higher by inherited accuracy
            swapped.append({"ranked_higher": hi["ref"], "finetuned_better": lo["ref"],
                            "inherited": (hi["metrics"]["accuracy_inherited"], lo["metrics"]["accuracy_inherited"]),
                            "finetuned": (hi["metrics"]["accuracy"], lo["metrics"]["accuracy"])})
    return {"pairs": agree + len(swapped), "agree": agree, "swapped": swapped}


@dataclass
class ReportData:
    study: str
    storage: str
    identity: dict[str, Any]
    trials_complete: int
    trials_feasible: int
    search_wall_s: float
    search_trial_s: float
    devices: list[DeviceView]
    registered: list[dict[str, Any]]
    training: dict[str, Any] | None
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))


def primary_metric(identity: dict[str, Any], device: str) -> str:
    """The latency metric a study ranks ``device`` by (``latency_ms``; ``decode_ms`` for gpt)."""
    described = (identity.get("devices") or {}).get(device) or {}
    return (described.get("metrics") or ["latency_ms"])[0]


def study_points(study: Any, device: str, metric: str = "latency_ms") -> list[TrialPoint]:
    """Finished trials of ``study`` with their accuracy and ``device``'s predicted cost
    (``metric`` is the latency they are ranked by)."""
    from optuna.trial import TrialState

    from nas.search.objectives import LATENCY_BUDGETS

    points = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        metrics = t.user_attrs.get("metrics", {})
        if f"{metric}@{device}" not in metrics:
            continue
        points.append(
            TrialPoint(
                number=t.number,
                arch=t.user_attrs.get("arch", {}),
                accuracy=float(metrics["accuracy"]),
                latency_ms=float(metrics[f"{metric}@{device}"]),
                energy_mj=metrics.get(f"energy_mj@{device}"),
                mflops=metrics.get("mflops"),
                params_m=metrics.get("params_m"),
                feasible=feasible(t),
                latencies={m: float(metrics[f"{m}@{device}"]) for m in LATENCY_BUDGETS if f"{m}@{device}" in metrics},
            )
        )
    return points


def device_view(study: Any, device: str, budget: dict[str, Any]) -> DeviceView:
    metric = primary_metric(study.user_attrs.get("edgenas") or {}, device)
    points = study_points(study, device, metric)
    feasible = [p for p in points if p.feasible]
    front_idx = pareto_front([(p.accuracy, p.latency_ms) for p in feasible])
    front = sorted((feasible[i] for i in front_idx), key=lambda p: p.latency_ms)
    knee = front[knee_index([(p.accuracy, p.latency_ms) for p in front])] if front else None
    best = max(feasible, key=lambda p: (p.accuracy, -p.number), default=None)
    return DeviceView(device, points, front, knee, best, budget.get(f"max_{metric}"),
                      float(budget.get("safety_margin") or 0.0), metric=metric)


def attach_profile(view: DeviceView, workspace: Workspace) -> None:
    """Add the device profile and its held-out validation pairs (refitted from measurements)."""
    from latency_predictors.cost_metrics import metric_named
    from latency_predictors.device_profile import fit_cost_model, measurements_for

    if view.name not in workspace.device_names():
        return  # a table device, or a profile that lives elsewhere
    profile = workspace.load_profile(view.name)
    view.profile = profile.to_json()
    if not (workspace.root / "measurements.db").is_file():
        return
    try:
        store = workspace.measurements()
        space = profile.build_space()
        holdout = measurements_for(profile, store, metric_named(space, view.metric).role("holdout"))
        if len(holdout) < 2:
            return
        model = fit_cost_model(profile, store, exclude_holdout=True, space=space)
        archs = [space.arch_from_json(m.item) for m in holdout]
        predicted = model.predict(archs)[view.metric]
        view.validation_pairs = [(m.median_ms, float(p)) for m, p in zip(holdout, predicted)]
    except Exception as exc:  # the report still renders; the section says why it is empty
        view.profile = {**(view.profile or {}), "validation_unavailable": str(exc).splitlines()[0]}


def collect(
    study: Any,
    storage_display: str,
    workspace: Workspace,
    devices: list[str] | None = None,
) -> ReportData:
    """Read ``study`` (an ``edgenas search`` study, see :func:`nas.search.study.open_edgenas_study`)
    and everything around it for :func:`nas.report.html.render`."""
    from optuna.trial import TrialState

    study_name = study.study_name
    identity = study.user_attrs["edgenas"]
    known = list(identity.get("devices", {}))
    chosen = devices or known
    unknown = [d for d in chosen if d not in known]
    if unknown:
        raise EdgenasError(f"device {unknown[0]!r} is not in study {study_name!r}; it has {', '.join(known)}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise EdgenasError(f"study {study_name!r} has no finished trial yet; run `edgenas search` first")
    starts = [t.datetime_start for t in complete if t.datetime_start]
    ends = [t.datetime_complete for t in complete if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    trial_s = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in complete
                  if t.datetime_start and t.datetime_complete)
    views = []
    for name in chosen:
        view = device_view(study, name, identity.get("budget", {}))
        attach_profile(view, workspace)
        views.append(view)
    return ReportData(
        study=study_name,
        storage=storage_display,
        identity=identity,
        trials_complete=len(complete),
        trials_feasible=sum(feasible(t) for t in complete),
        search_wall_s=wall,
        search_trial_s=trial_s,
        devices=views,
        registered=_registered(workspace, study_name),
        training=_training(identity, study.user_attrs.get("edgenas_checkpoint")),
    )


def _registered(workspace: Workspace, study_name: str) -> list[dict[str, Any]]:
    if not (workspace.registry_dir / "registry.db").is_file():
        return []
    registry = workspace.registry()
    return [registry.to_json(e) for e in registry.list() if e.lineage.get("study") == study_name]


def _training(identity: dict[str, Any], path: str | None) -> dict[str, Any] | None:
    """What training the supernet cost, from its checkpoint's metadata (None for tables)."""
    if identity.get("accuracy", {}).get("kind") != "supernet":
        return None
    if not path:
        return {"note": "the study does not record where its checkpoint is"}
    meta_path = Path(path)
    meta_path = meta_path / "checkpoint.json" if meta_path.is_dir() else meta_path
    if not meta_path.is_file():
        return {"checkpoint": str(path), "note": "checkpoint not found on this machine"}
    meta = json.loads(meta_path.read_text())
    return {
        "checkpoint": str(path),
        "steps": meta.get("step"),
        "train_seconds": meta.get("train_seconds"),
        "world_size": meta.get("world_size"),
        "sha256": meta.get("sha256"),
        "data": meta.get("data", {}).get("name"),
    }
