"""Which latencies a device profile predicts: one per phase of the space's networks.

A convolutional network runs one way, so its profile predicts one metric, ``latency_ms``.
A language model runs two ways that cost very differently: a **prefill** of ``context``
tokens, and a **decode** of one token after a KV cache of ``context`` tokens (what a user
of an on-device assistant waits for, token after token). Its space lists them in
``cost_phases`` and its profile predicts ``decode_ms`` and ``prefill_ms``, each from its
own blocks and its own whole networks, each validated on its own held-out networks.

The first metric is the **primary** one: what the search's ``latency`` objective, the
report's latency axis and a profile's ``validation`` figures mean.

How measurements of several metrics share one store: blocks keep the role ``block``
(a block's key names its phase); the whole networks of the space's *default* network
(the one ``space.blocks(arch)`` describes: all of a CNN's, a gpt's prefill) keep the
plain roles (``train``, ``holdout``, ``verify``...), and those of the other phases are
``PHASE:ROLE`` (``decode:holdout``). Profiles of spaces without phases are stored and
read exactly as before.

Example::

    for metric in latency_metrics(space):          # decode_ms, prefill_ms for gpt
        module = metric.build(space, arch)
        timer = profiler.prepare(module, metric.timing_input(space, arch))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from latency_predictors.errors import InputError
from search_spaces import BlockSpec, SearchSpace

DEFAULT_METRIC = "latency_ms"


@dataclass(frozen=True)
class LatencyMetric:
    """One latency a profile predicts: its ``name`` (``latency_ms``, ``decode_ms``...),
    the space's ``phase`` it times (``None``: the space has one), and whether its networks
    are the space's ``default`` ones (then their measurements keep the plain roles)."""

    name: str
    phase: str | None = None
    default: bool = True

    def role(self, role: str) -> str:
        """The measurement role of this metric's whole networks (``holdout``, ``decode:holdout``)."""
        return role if self.default else f"{self.phase}:{role}"

    def _kw(self) -> dict[str, Any]:
        return {} if self.phase is None else {"phase": self.phase}

    def blocks(self, space: SearchSpace, arch: Any) -> list[BlockSpec]:
        """The blocks of ``arch`` as this metric runs them."""
        return space.blocks(arch, **self._kw())  # type: ignore[call-arg]

    def build(self, space: SearchSpace, arch: Any) -> torch.nn.Module:
        """The whole network this metric times (``build_static`` in its phase)."""
        return space.build_static(arch, **self._kw())  # type: ignore[call-arg]

    def timing_input(self, space: SearchSpace, arch: Any) -> tuple[int, ...] | torch.Tensor:
        """What a profiler times :meth:`build`'s module on (see :func:`timing_input`)."""
        return timing_input(space.example_input(arch, **self._kw()))

    def owns(self, block: BlockSpec) -> bool:
        """Whether ``block`` is one of this metric's (its phase, or every block without phases)."""
        return self.phase is None or dict(block.extra).get("phase") == self.phase


def timing_input(example: torch.Tensor) -> tuple[int, ...] | torch.Tensor:
    """What a profiler is given for an example input of batch 1: a float input as its shape
    (profilers time it on standard-normal values, as they always have), anything else
    (int64 token ids) as the tensor itself, timed as it is."""
    if example.is_floating_point():
        return tuple(int(d) for d in example.shape[1:])
    return example


def block_timing_input(space: SearchSpace, block: BlockSpec) -> tuple[int, ...] | torch.Tensor:
    """:func:`timing_input` of ``space.build_block(block)``'s input."""
    return timing_input(space.example_input(block))


def latency_metrics(space: SearchSpace) -> tuple[LatencyMetric, ...]:
    """The metrics a profile of ``space`` predicts, the primary first."""
    phases = tuple(getattr(space, "cost_phases", ()) or ())
    if not phases:
        return (LatencyMetric(DEFAULT_METRIC),)
    arch = space.smallest()
    default = [b.key() for b in space.blocks(arch)]
    return tuple(
        LatencyMetric(f"{p}_ms", p, [b.key() for b in space.blocks(arch, phase=p)] == default)  # type: ignore[call-arg]
        for p in phases
    )


def metric_names(space: SearchSpace) -> tuple[str, ...]:
    return tuple(m.name for m in latency_metrics(space))


def default_metric(space: SearchSpace) -> LatencyMetric:
    """The metric whose networks are ``space.blocks(arch)`` (split inference prices these)."""
    metrics = latency_metrics(space)
    return next((m for m in metrics if m.default), metrics[0])


def metric_named(space: SearchSpace, name: str) -> LatencyMetric:
    """The metric ``name`` of ``space``; a one-line :class:`InputError` naming the ones it has."""
    metrics = latency_metrics(space)
    for m in metrics:
        if m.name == name:
            return m
    raise InputError(f"space {space.name!r} has no latency metric {name!r}; it has {', '.join(m.name for m in metrics)}")


__all__ = [
    "DEFAULT_METRIC",
    "LatencyMetric",
    "block_timing_input",
    "default_metric",
    "latency_metrics",
    "metric_named",
    "metric_names",
    "timing_input",
]
