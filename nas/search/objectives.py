"""Objectives and hard constraints of a search, and an arch's measured outcome.

Objectives are named ``accuracy`` (maximised), ``latency_ms@DEVICE`` and
``energy_mj@DEVICE`` per device, ``mflops``, ``params_m``, ``memory_mb`` and, in a joint search with a
cloud (``--cloud``), ``e2e_latency_ms`` (the arch split at its best cut; minimised). Budgets are
hard constraints, stored on each trial with ``trial.set_constraint`` as relative
excess ``predicted / allowed - 1`` (feasible when <= 0), where ``allowed`` is the
budget shrunk by the safety margin: the search sees predicted cost, the device will run
the true one, so a predictor with a few per cent of error needs that much headroom.

A device predicts one latency per metric of its space
(:mod:`latency_predictors.cost_metrics`): ``latency_ms`` for image spaces,
``decode_ms`` (one token after a KV cache of the context) and ``prefill_ms`` (the whole
context) for ``gpt``. Every metric is recorded per trial as ``METRIC@DEVICE``; the
``latency`` objective is the device's primary metric (``decode_ms`` for gpt), and each
metric has its own budget (``--max-latency-ms``, ``--max-decode-ms``, ``--max-prefill-ms``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from nas.errors import EdgenasError

KINDS = ("accuracy", "latency", "energy", "mflops", "params", "memory", "e2e")
LATENCY_BUDGETS = {"latency_ms": "max_latency_ms", "decode_ms": "max_decode_ms", "prefill_ms": "max_prefill_ms"}
"""Latency metric -> the :class:`Budget` field that limits it (flag ``--max-METRIC`` with dashes)."""
_OPTIONAL = ("max_e2e_ms", "max_decode_ms", "max_prefill_ms", "max_memory_mb")
DEFAULT_OBJECTIVES = ("accuracy", "latency")


@dataclass(frozen=True)
class Budget:
    """Hard limits: per device latency (ms) and energy (mJ), and the sub-network's size.

    ``safety_margin`` is a fraction: predicted cost must stay within
    ``budget / (1 + safety_margin)``. A negative margin (down to -0.5) widens the search to
    archs predicted up to that much *over* the budget: what a verified search explores
    (``--verify``: the device, not the predictor, decides what fits).
    """

    max_latency_ms: float | None = None
    max_energy_mj: float | None = None
    max_params_m: float | None = None
    max_mflops: float | None = None
    safety_margin: float = 0.0
    max_e2e_ms: float | None = None
    max_decode_ms: float | None = None
    max_prefill_ms: float | None = None
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_latency_ms", "max_energy_mj", "max_params_m", "max_mflops", *_OPTIONAL):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                flag = "--" + name.replace("_", "-")
                raise EdgenasError(f"{flag} must be a positive number, got {value}")
        if not -0.5 <= self.safety_margin < 1.0:
            raise EdgenasError(f"--safety-margin is a fraction in [-0.5, 1), got {self.safety_margin}")

    def allowed(self, value: float | None) -> float | None:
        return None if value is None else value / (1.0 + self.safety_margin)

    def latency_limits(self) -> dict[str, float]:
        """The latency budgets given, by metric (``{"decode_ms": 20.0}``)."""
        return {m: getattr(self, f) for m, f in LATENCY_BUDGETS.items() if getattr(self, f) is not None}

    @property
    def limited(self) -> bool:
        """Whether any budget is given."""
        return bool(self.latency_limits()) or any(
            v is not None for v in (self.max_energy_mj, self.max_params_m, self.max_mflops, self.max_memory_mb))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _OPTIONAL:  # the identity of studies that do not use them stays as it was
            if data[name] is None:
                del data[name]
        return data


def flag(field_name: str) -> str:
    """The command-line flag of a :class:`Budget` field (``max_decode_ms`` -> ``--max-decode-ms``)."""
    return "--" + field_name.replace("_", "-")


@dataclass(frozen=True)
class Outcome:
    """What one arch scored: objective values (in study order), constraint values, extras."""

    values: tuple[float, ...]
    constraints: dict[str, float]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return all(v <= 0.0 for v in self.constraints.values())


def objective_names(kinds: tuple[str, ...], devices: list[str], has_energy: dict[str, bool],
                    primary: dict[str, str] | None = None) -> list[str]:
    """Study objective names in order, one per device for latency (its ``primary`` metric,
    ``latency_ms`` unless told) and energy."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise EdgenasError(f"--objectives: unknown {unknown[0]!r}; use some of {', '.join(KINDS)}")
    if "accuracy" not in kinds:
        raise EdgenasError("--objectives must include accuracy")
    names: list[str] = []
    for kind in kinds:
        if kind == "latency":
            names += [f"{(primary or {}).get(d, 'latency_ms')}@{d}" for d in devices]
        elif kind == "energy":
            missing = [d for d in devices if not has_energy[d]]
            if missing:
                raise EdgenasError(f"--objectives energy: device {missing[0]!r} has no energy predictor (not measured)")
            names += [f"energy_mj@{d}" for d in devices]
        elif kind == "params":
            names.append("params_m")
        elif kind == "memory":
            names.append("memory_mb")
        elif kind == "e2e":
            names.append("e2e_latency_ms")
        else:
            names.append(kind)
    return names


def direction(name: str) -> str:
    return "maximize" if name == "accuracy" else "minimize"


def constraint_values(budget: Budget, metrics: dict[str, float], devices: list[str]) -> dict[str, float]:
    """Relative excess over each budget (<= 0 is feasible), by constraint name (of one arch
    from floats, or of a batch from arrays)."""
    out: dict[str, float] = {}
    for d in devices:
        for metric, limit in budget.latency_limits().items():
            out[f"{metric}@{d}"] = metrics[f"{metric}@{d}"] / budget.allowed(limit) - 1.0
        if budget.max_energy_mj is not None:
            out[f"energy_mj@{d}"] = metrics[f"energy_mj@{d}"] / budget.allowed(budget.max_energy_mj) - 1.0
    if budget.max_params_m is not None:
        out["params_m"] = metrics["params_m"] / budget.max_params_m - 1.0
    if budget.max_mflops is not None:
        out["mflops"] = metrics["mflops"] / budget.max_mflops - 1.0
    if budget.max_memory_mb is not None:
        out["memory_mb"] = metrics["memory_mb"] / budget.max_memory_mb - 1.0
    if budget.max_e2e_ms is not None and "e2e_latency_ms" in metrics:
        out["e2e_latency_ms"] = metrics["e2e_latency_ms"] / budget.allowed(budget.max_e2e_ms) - 1.0
    return out
