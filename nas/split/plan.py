"""Where to split a network between an edge device and the cloud, from predictions alone.

For every cut of an arch (:meth:`search_spaces.SearchSpace.cuts`: the input, every block
boundary where the live tensors are known, the output) the end-to-end latency of one
request is

    edge compute of the blocks before the cut
    + the link: one round trip, the activation up and the result (logits, fp32) down
    + cloud compute of the blocks after it,

with the edge-only cut (nothing sent, no round trip) and the cloud-only cut (the input
sent) among them: the decision Neurosurgeon (ASPLOS'17) makes per layer, here made per
block with each device's block-level predictor. Each part is priced as a network of its
own on its device (:meth:`~latency_predictors.device_profile.CostModel.split_latency_ms`;
by default, ``correction="proportional"``, the block-sum predictor's whole-network
correction, fitted on whole networks, is shared out between the two parts in proportion
to their block sums, so it is never extrapolated to networks smaller than it was fitted on).

Example::

    plan = plan_split(space, arch, ws.cost_model("pi", space), ws.cost_model("server", space),
                      parse_link("20mbit,40ms"))
    plan.best.label, plan.best.total_ms
    plan.relink(parse_link("2mbit,40ms")).best.label   # where the best split moves
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nas.errors import EdgenasError
from nas.split.link import PRECISIONS, Link, transfer_bytes

RESULT_BYTES_PER_VALUE = 4
"""The cloud sends its result back as fp32 values (class or next-token logits)."""


@dataclass(frozen=True)
class SplitPoint:
    """One cut of a plan, priced: ``position`` is its place in ``space.cuts(arch)`` (0 is
    cloud only, the last is edge only), ``index`` the number of blocks run on the edge."""

    position: int
    index: int
    label: str
    elements: int
    bytes: dict[str, int]
    edge_ms: float
    cloud_ms: float
    up_bytes: int
    down_bytes: int
    link_ms: float
    kind: str
    radio_mj: float | None = None

    @property
    def total_ms(self) -> float:
        return self.edge_ms + self.link_ms + self.cloud_ms

    @property
    def priced(self) -> bool:
        return math.isfinite(self.total_ms)

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "index": self.index, "label": self.label, "kind": self.kind,
                "elements": self.elements, "bytes": dict(self.bytes), "edge_ms": _num(self.edge_ms),
                "link_ms": _num(self.link_ms), "cloud_ms": _num(self.cloud_ms), "total_ms": _num(self.total_ms),
                "up_bytes": self.up_bytes, "down_bytes": self.down_bytes, "radio_mj": self.radio_mj}


@dataclass(frozen=True)
class SplitPlan:
    """Every cut of one arch priced for one edge, cloud and link; ``best`` is the fastest."""

    space: dict[str, Any]
    arch: dict[str, Any]
    edge: str
    cloud: str
    link: Link
    precision: str
    correction: str
    points: tuple[SplitPoint, ...]
    result_elements: int
    notes: tuple[str, ...] = field(default=())

    @property
    def best(self) -> SplitPoint:
        priced = [p for p in self.points if p.priced]
        return min(priced, key=lambda p: (p.total_ms, -p.index))

    @property
    def edge_only(self) -> SplitPoint:
        return self.points[-1]

    @property
    def cloud_only(self) -> SplitPoint:
        return self.points[0]

    def point(self, position: int) -> SplitPoint:
        """The cut at ``position`` (a one-line error naming the valid range otherwise)."""
        if not 0 <= position < len(self.points):
            raise EdgenasError(f"split point {position} does not exist: this arch has points 0 (cloud only) to "
                               f"{len(self.points) - 1} (edge only); `edgenas split` without --at lists them")
        return self.points[position]

    def relink(self, link: Link, precision: str | None = None) -> SplitPlan:
        """The same compute over another link (or precision): only the transfers change."""
        precision = precision or self.precision
        points = tuple(_priced(p.position, p.index, p.label, p.elements, p.bytes, p.edge_ms, p.cloud_ms, link,
                               precision, self.result_elements, len(self.points)) for p in self.points)
        return replace(self, link=link, precision=precision, points=points)

    def bandwidth_sweep(self, rates_bps: Sequence[float]) -> list[dict[str, Any]]:
        """Where the best split lies at each rate (the same round-trip time)."""
        rows = []
        for rate in rates_bps:
            plan = self.relink(self.link.with_rate(rate))
            best = plan.best
            rows.append({"rate_mbps": rate / 1e6, "best_position": best.position, "best_label": best.label,
                         "best_kind": best.kind, "best_ms": best.total_ms,
                         "edge_only_ms": plan.edge_only.total_ms, "cloud_only_ms": _num(plan.cloud_only.total_ms)})
        return rows

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "kind": "edgenas-split-plan",
            "space": self.space,
            "arch": self.arch,
            "edge": self.edge,
            "cloud": self.cloud,
            "link": self.link.to_json(),
            "precision": self.precision,
            "correction": self.correction,
            "result_elements": self.result_elements,
            "costs_are": "predicted by each device's block-level profile; the link is modelled (rtt + bytes / rate)",
            "best": best.to_json(),
            "speedup_vs_edge_only": _ratio(self.edge_only.total_ms, best.total_ms),
            "speedup_vs_cloud_only": _ratio(self.cloud_only.total_ms, best.total_ms),
            "points": [p.to_json() for p in self.points],
            "bandwidth_sweep": self.bandwidth_sweep(SWEEP_RATES_BPS),
            "notes": list(self.notes),
        }


SWEEP_RATES_BPS = tuple(float(r) for r in np.geomspace(0.25e6, 1e9, 25))
"""Rates of the bandwidth sweep stored with a plan (0.25 Mbit/s to 1 Gbit/s)."""


def plan_split(space: Any, arch: Any, edge: Any, cloud: Any, link: Link, *, precision: str = "fp32",
               correction: str = "proportional") -> SplitPlan:
    """Price every cut of ``arch`` for ``edge`` and ``cloud`` (fitted
    :class:`~latency_predictors.device_profile.CostModel`\\ s of the same space) over ``link``.

    ``precision`` (``fp32``, ``fp16``, ``int8``) is how activations cross the link (the
    table lists the bytes at all three); ``correction`` how the whole-network correction
    applies to a part (see ``CostModel.split_latency_ms``).
    """
    return plan_splits(space, [arch], edge, cloud, link, precision=precision, correction=correction)[0]


def plan_splits(space: Any, archs: Sequence[Any], edge: Any, cloud: Any, link: Link, *, precision: str = "fp32",
                correction: str = "proportional") -> list[SplitPlan]:
    """:func:`plan_split` for many archs (each device's predictor called once for all of them)."""
    if precision not in PRECISIONS:
        raise EdgenasError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    all_cuts = [space.cuts(a) for a in archs]
    ks = [[c.index for c in cuts] for cuts in all_cuts]
    edge_parts = _split_ms(edge, archs, ks, correction)
    cloud_parts = _split_ms(cloud, archs, ks, correction)
    notes = tuple(f"{role} device {model.profile.name!r} has a {model.profile.predictor} predictor, which prices whole "
                  "networks only: splits inside the network are not priced"
                  for model, role in ((edge, "edge"), (cloud, "cloud")) if model.profile.predictor != "block_sum")
    plans = []
    for arch, cuts, (edge_before, _), (_, cloud_after) in zip(archs, all_cuts, edge_parts, cloud_parts):
        result = int(space.blocks(arch)[-1].out_channels)
        points = []
        for pos, cut in enumerate(cuts):
            elements = cut.elements
            sizes = {p: transfer_bytes(elements, p, cut.integer) for p in PRECISIONS}
            points.append(_priced(pos, cut.index, cut.label, elements, sizes, float(edge_before[pos]),
                                  float(cloud_after[pos]), link, precision, result, len(cuts)))
        plan = SplitPlan(space.describe(), space.arch_to_json(arch), edge.profile.name, cloud.profile.name, link,
                         precision, correction, tuple(points), result, notes)
        if not any(p.priced for p in plan.points):
            raise EdgenasError("no split point could be priced; profile both devices with `edgenas profile`")
        plans.append(plan)
    return plans


def best_split(space: Any, arch: Any, edge: Any, cloud: Any, link: Link, precision: str = "fp32") -> SplitPoint:
    """The fastest cut of ``arch`` (what the joint search optimises per arch)."""
    return plan_split(space, arch, edge, cloud, link, precision=precision).best


def _split_ms(model: Any, archs: Sequence[Any], ks: list[list[int]], correction: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from latency_predictors.errors import InputError

    try:
        return model.split_latency_many(archs, ks, correction=correction)
    except InputError as exc:
        raise EdgenasError(f"device {model.profile.name!r}: {exc}") from None


def _priced(position: int, index: int, label: str, elements: int, sizes: dict[str, int], edge_ms: float,
            cloud_ms: float, link: Link, precision: str, result: int, count: int) -> SplitPoint:
    edge_only = position == count - 1
    up = 0 if edge_only else sizes[precision]
    down = 0 if edge_only else result * RESULT_BYTES_PER_VALUE
    link_ms = 0.0 if edge_only else link.request_ms(up, down)
    radio = None if edge_only else link.radio_mj(up, down)
    if edge_only and link.energy_nj_per_bit is not None:
        radio = 0.0
    kind = "edge only" if edge_only else "cloud only" if position == 0 else "split"
    return SplitPoint(position, index, label, elements, dict(sizes), edge_ms, cloud_ms, up, down, link_ms, kind, radio)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if math.isfinite(a) and math.isfinite(b) and b > 0 else None


def format_plan(plan: SplitPlan) -> str:
    """The plan as a text table, one row per cut, and the best split under it."""
    head = (f"{'pos':>3}  {'cut':<28} {'values':>8} {'fp32 B':>9} {'fp16 B':>9} {'int8 B':>9} "
            f"{'edge ms':>9} {'link ms':>9} {'cloud ms':>9} {'total ms':>9}")
    lines = [f"split of {plan.space.get('name')} arch on edge {plan.edge!r} + cloud {plan.cloud!r} over "
             f"{plan.link.label()} (activations sent as {plan.precision}; predicted)", head]
    best = plan.best
    for p in plan.points:
        mark = "  <- best" if p is best else ""
        lines.append(f"{p.position:>3}  {p.label[:28]:<28} {p.elements:>8} {p.bytes['fp32']:>9} {p.bytes['fp16']:>9} "
                     f"{p.bytes['int8']:>9} {_fmt(p.edge_ms)} {_fmt(p.link_ms)} {_fmt(p.cloud_ms)} "
                     f"{_fmt(p.total_ms)}{mark}")
    edge_x = _ratio(plan.edge_only.total_ms, best.total_ms)
    cloud_x = _ratio(plan.cloud_only.total_ms, best.total_ms)
    lines.append(f"best: point {best.position} ({best.kind}, {best.label}) {best.total_ms:.2f} ms"
                 + (f"; {edge_x:.2f}x edge only" if edge_x else "") + (f", {cloud_x:.2f}x cloud only" if cloud_x else ""))
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:>9.2f}" if math.isfinite(value) else f"{'-':>9}"


__all__ = ["RESULT_BYTES_PER_VALUE", "SWEEP_RATES_BPS", "SplitPlan", "SplitPoint", "best_split", "format_plan",
           "plan_split", "plan_splits"]
