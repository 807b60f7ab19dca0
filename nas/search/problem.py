"""A search problem: space, accuracy source, devices, budget and objectives, and how one
arch is scored. :class:`SearchSpec` is its JSON form: it is stored with the study (so a
study is never reused for another space, checkpoint, device or budget) and shipped to
Ray workers, which rebuild the problem from it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import EdgenasError
from nas.search.costs import DeviceCost, check_budget_units, load_device
from nas.search.objectives import (
    DEFAULT_OBJECTIVES,
    Budget,
    Outcome,
    constraint_values,
    direction,
    objective_names,
)
from nas.workspace import Workspace


@dataclass(frozen=True)
class SearchSpec:
    """Everything that defines what a search optimises (JSON-serialisable)."""

    space: str
    space_options: dict[str, Any]
    devices: tuple[str, ...]
    budget: Budget
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    checkpoint: str | None = None
    nb201_dataset: str = "cifar100"
    workspace: str = "edgenas-workspace"
    cache_url: str | None = None
    eval_batch_size: int = 256
    eval_device: str = "auto"
    split: dict[str, Any] | None = None
    """A joint search with a cloud: ``{"cloud": NAME, "link": "20mbit,40ms", "precision": "fp32"}``
    (the edge is the one ``--device``); adds ``e2e_latency_ms`` (see :mod:`nas.split.objective`)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["devices"] = list(self.devices)
        data["objectives"] = list(self.objectives)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSpec:
        data = dict(data)
        data["budget"] = Budget(**data["budget"])
        data.setdefault("split", None)
        data["devices"] = tuple(data["devices"])
        data["objectives"] = tuple(data["objectives"])
        return cls(**data)


@dataclass
class SearchProblem:
    """Scores archs: accuracy from its source, cost from each device, constraints from the budget."""

    spec: SearchSpec
    space: Any
    accuracy: Any
    devices: list[DeviceCost]
    names: list[str] = field(default_factory=list)
    split: Any = None
    """The joint search's :class:`~nas.split.objective.SplitObjective` (``None``: no cloud)."""

    def __post_init__(self) -> None:
        has_energy = {d.name: d.predict_energy_mj([self.space.smallest()]) is not None for d in self.devices}
        primary = {d.name: d.metrics[0] for d in self.devices}
        self.names = objective_names(self.spec.objectives, [d.name for d in self.devices], has_energy, primary)
        self._energy = has_energy
        self._arch_memo: dict[tuple, tuple[Any, dict[str, Any], dict[str, Any]]] = {}

    @property
    def directions(self) -> list[str]:
        return [direction(n) for n in self.names]

    def identity(self) -> dict[str, Any]:
        """What must match for a stored study to be continued (see :mod:`nas.search.study`)."""
        identity = {
            "space": self.space.describe(),
            "accuracy": self.accuracy.describe(),
            "devices": {d.name: d.describe() for d in self.devices},
            "budget": self.spec.budget.to_json(),
            "objectives": self.names,
        }
        if self.split is not None:
            identity["split"] = self.split.describe()
        return identity

    def costs(self, archs: Sequence[Any]) -> dict[str, np.ndarray]:
        """Predicted latency (every metric: ``latency_ms``, or ``decode_ms`` and ``prefill_ms``)
        and energy per device, FLOPs (M), params (M) and, for spaces that count it, inference
        memory (MB, 10^6 bytes: weights and KV cache) for ``archs`` (one predictor call per
        device for the whole batch)."""
        out: dict[str, np.ndarray] = {}
        archs = list(archs)
        for d in self.devices:
            for metric, values in d.predict_metrics(archs).items():
                out[f"{metric}@{d.name}"] = np.asarray(values, dtype=float)
            if self._energy[d.name]:
                out[f"energy_mj@{d.name}"] = np.asarray(d.predict_energy_mj(archs), dtype=float)
        out["mflops"] = np.array([self.space.flops(a) / 1e6 for a in archs], dtype=float)
        out["params_m"] = np.array([self.space.params(a) / 1e6 for a in archs], dtype=float)
        if hasattr(self.space, "memory_bytes"):
            out["memory_mb"] = np.array([self.space.memory_bytes(a) / 1e6 for a in archs], dtype=float)
        if self.split is not None:
            from nas.split.objective import E2E, POSITION

            out[E2E], out[POSITION] = self.split.best(archs)
        return out

    def measure(self, arch: Any) -> Outcome:
        """Accuracy, predicted costs and constraint values of one arch."""
        return self.measure_many([arch])[0]

    def measure_many(self, archs: Sequence[Any]) -> list[Outcome]:
        """:meth:`measure` for a batch: accuracies read together (one cache look-up for a
        warm cache), costs predicted with one call per device."""
        archs = list(archs)
        if not archs:
            return []
        scored = evaluate_many(self.accuracy, archs)
        costs = self.costs(archs)
        devices = [d.name for d in self.devices]
        out = []
        for i, (arch, (acc, extra)) in enumerate(zip(archs, scored)):
            metrics = {k: float(v[i]) for k, v in costs.items()}
            metrics["accuracy"] = float(acc)
            values = tuple(metrics[n] for n in self.names)
            constraints = constraint_values(self.spec.budget, metrics, devices)
            attrs = {"arch": self.space.arch_to_json(arch), "metrics": metrics, **extra}
            out.append(Outcome(values, constraints, attrs))
        return out

    def arch_of(self, params: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The arch a parameter set stands for, with every parameter it uses and their
        Optuna distributions (what a trial that suggested it would store)."""
        from nas.search.params import ParamRecorder

        key = tuple(sorted(params.items()))
        hit = self._arch_memo.get(key)
        if hit is None:  # a batched search meets the same parameter sets again (a resumed or a new device's study)
            recorder = ParamRecorder(params)
            arch = self.space.suggest(recorder)
            used = {k: recorder.params[k] for k in recorder.choices}
            if len(self._arch_memo) >= 100_000:
                self._arch_memo.clear()
            hit = self._arch_memo[key] = (arch, used, recorder.distributions())
        arch, used, dists = hit
        return arch, dict(used), dict(dists)

    def objective(self, trial: Any) -> tuple[float, ...]:
        """The Optuna objective: suggest an arch, score it, record constraints and extras."""
        arch = self.space.suggest(trial)
        outcome = self.measure(arch)
        record(trial, outcome)
        return outcome.values


def evaluate_many(source: Any, archs: Sequence[Any]) -> list[tuple[float, dict[str, Any]]]:
    """``source.evaluate`` for each arch, through ``source.evaluate_many`` where it has one."""
    many = getattr(source, "evaluate_many", None)
    if many is not None:
        return list(many(archs))
    return [source.evaluate(a) for a in archs]


def record(trial: Any, outcome: Outcome) -> None:
    """Write an outcome's extras and constraint values onto an Optuna trial."""
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    for key, value in outcome.constraints.items():
        trial.set_constraint(key, value)


def build_space(spec: SearchSpec) -> Any:
    """The space a search spec names: with a checkpoint, the space it was trained on (its
    options, unless the spec gives them); a checkpoint of another space is refused."""
    from nas.spaces import build_space as build

    options = spec.space_options
    if spec.checkpoint:
        from nas.training import read_checkpoint

        trained = read_checkpoint(spec.checkpoint).meta.get("space_config") or {}
        if trained.get("name") != spec.space:
            raise EdgenasError(
                f"checkpoint {spec.checkpoint} holds a supernet of space {trained.get('name')!r}, not {spec.space!r}; "
                f"use --space {trained.get('name')} or another checkpoint"
            )
        options = options or dict(trained.get("options") or {})
    return build(spec.space, options)


def build_accuracy(spec: SearchSpec, space: Any) -> Any:
    """The accuracy source: the nb201 table, or the checkpoint's supernet with the cache."""
    if spec.space == "nb201":
        if spec.checkpoint:
            raise EdgenasError("--checkpoint is for spaces with a supernet; nb201 reads its accuracy table")
        from nas.search.accuracy import TabularAccuracy

        source = TabularAccuracy(spec.nb201_dataset)
        try:
            source._values()
        except ValueError as exc:
            raise EdgenasError(f"--nb201-dataset: {exc}") from None
        return source
    if not spec.checkpoint:
        raise EdgenasError(f"--space {spec.space} needs --checkpoint DIR (a supernet trained with `edgenas train`)")
    from nas.search.accuracy import SupernetAccuracy
    from nas.training import read_checkpoint

    ckpt = read_checkpoint(spec.checkpoint)
    trained_space = ckpt.meta.get("space")
    if trained_space != space.describe():
        raise EdgenasError(
            f"checkpoint {spec.checkpoint} was trained on space {trained_space}, not on {space.describe()}; "
            "pass the --space and --space-options it was trained with, or another --checkpoint"
        )
    cache_url = spec.cache_url or Workspace(Path(spec.workspace)).accuracy_cache_url
    return SupernetAccuracy(Path(spec.checkpoint), ckpt.meta["sha256"], cache_url,
                            spec.eval_batch_size, spec.eval_device)


def build_problem(spec: SearchSpec) -> SearchProblem:
    """Rebuild the problem a spec describes (space, accuracy, fitted device predictors)."""
    if not spec.devices:
        raise EdgenasError("--device NAME is required (a profiled or imported device)")
    space = build_space(spec)
    accuracy = build_accuracy(spec, space)
    devices = [load_device(name, space, Workspace(Path(spec.workspace))) for name in spec.devices]
    check_budget_units(spec.budget, space, devices)
    return SearchProblem(spec, space, accuracy, devices, split=build_split(spec, space))


def build_split(spec: SearchSpec, space: Any) -> Any:
    """The joint search's objective when the spec names a cloud (``None`` otherwise)."""
    wants = "e2e" in spec.objectives or spec.budget.max_e2e_ms is not None
    if spec.split is None:
        if wants:
            raise EdgenasError("e2e latency (--objectives e2e, --max-e2e-ms) needs --cloud NAME and --link RATE,RTT")
        return None
    if len(spec.devices) != 1:
        raise EdgenasError(f"--cloud needs exactly one --device (the edge), got {len(spec.devices)}")
    from nas.split.objective import SplitObjective

    return SplitObjective.load(Workspace(Path(spec.workspace)), space, spec.devices[0], spec.split["cloud"],
                               spec.split["link"], spec.split.get("precision", "fp32"))


@functools.lru_cache(maxsize=4)
def cached_problem(spec_json: str) -> SearchProblem:
    """One problem per process and spec (Ray workers score many trials each)."""
    return build_problem(SearchSpec.from_json(json.loads(spec_json)))
