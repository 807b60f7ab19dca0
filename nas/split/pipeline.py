"""``edgenas split`` from start to result: load the devices and the arch, plan, optionally run.

Example::

    doc = split(Workspace.resolve(), "pi", "server", parse_link("20mbit,40ms"), arch="max",
                run=True, at=["best", "edge", "cloud"])
    doc["best"]["total_ms"], doc["runs"][0]["measured"]["e2e_ms"]["median"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nas.errors import EdgenasError
from nas.split.link import Link
from nas.split.pair import load_pair, resolve_arch
from nas.split.plan import SplitPlan, plan_split
from nas.split.run import RunSettings, run_split
from nas.workspace import Workspace

NAMED_POINTS = ("best", "edge", "cloud")


def split(workspace: Workspace, edge: str, cloud: str, link: Link, *, arch: str | None = None,
          model: str | None = None, precision: str = "fp32", correction: str = "per_part", run: bool = False,
          at: Sequence[str] = (), checkpoint: str | Path | None = None, settings: RunSettings = RunSettings(),
          log: Callable[[str], None] | None = None) -> tuple[SplitPlan, dict[str, Any]]:
    """Plan the split of ``arch`` (or the registered ``model``) for ``edge``, ``cloud`` and
    ``link``; with ``run``, run the points ``at`` names (``best``, ``edge``, ``cloud`` or a
    position; default ``best``) for real. Returns the plan and the JSON document
    (``--out``): the plan, and each run beside its prediction."""
    pair = load_pair(workspace, edge, cloud)
    chosen = resolve_arch(pair.space, arch, model, workspace)
    plan = plan_split(pair.space, chosen, pair.edge, pair.cloud, link, precision=precision, correction=correction)
    positions = [point_position(plan, text) for text in (at or (["best"] if run else []))]
    doc = plan.to_json()
    if not run:
        if at:
            doc["selected"] = [plan.point(p).to_json() for p in positions]
        return plan, doc
    module, weights = network_for(workspace, pair.space, chosen, model, checkpoint)
    doc["weights"] = weights
    doc["runs"] = []
    for position in dict.fromkeys(positions):
        point = plan.point(position)
        if log:
            log(f"running point {position} ({point.kind}, {point.label}): predicted {point.total_ms:.2f} ms")
        result = run_split(pair.space, chosen, module, position, pair.edge.profile, pair.cloud.profile, link,
                           precision=precision, settings=settings, log=log)
        doc["runs"].append({"predicted": point.to_json(), **result.to_json(),
                            "error_pct": _error(point.total_ms, result.summary())})
    return plan, doc


def point_position(plan: SplitPlan, text: str) -> int:
    """``best``, ``edge`` (edge only), ``cloud`` (cloud only) or a position number."""
    if text == "best":
        return plan.best.position
    if text == "edge":
        return plan.edge_only.position
    if text == "cloud":
        return plan.cloud_only.position
    try:
        position = int(text)
    except ValueError:
        raise EdgenasError(f"--at {text!r}: use best, edge, cloud or a split point number "
                           f"(0 to {len(plan.points) - 1})") from None
    return plan.point(position).position


def network_for(workspace: Workspace, space: Any, arch: Any, model: str | None,
                checkpoint: str | Path | None) -> tuple[torch.nn.Module, str]:
    """The module to run and where its weights come from: the registered model, the
    checkpoint's supernet (BN recalibrated for ``arch``), or a fixed random initialisation
    (latency does not depend on the weights)."""
    if model is not None:
        return workspace.registry(create=False).load_model(model), f"registered model {model}"
    if checkpoint is not None:
        from nas.evaluation import calibrated_subnet

        trained = load_cpu_supernet(checkpoint, space)
        module = calibrated_subnet(trained.supernet, arch, eval_batches(trained, "calibration"))
        return module.eval(), f"supernet checkpoint {checkpoint} (BN recalibrated)"
    torch.manual_seed(0)
    return space.build_static(arch).eval(), "random (seed 0): latency does not depend on the weights"


def load_cpu_supernet(checkpoint: str | Path, space: Any | None = None) -> Any:
    """The trained supernet of ``checkpoint`` on the CPU (its space must be ``space`` when given)."""
    from nas.training.restore import load_trained

    trained = load_trained(checkpoint, device="cpu")
    if space is not None and trained.space.describe() != space.describe():
        raise EdgenasError(f"--checkpoint {checkpoint} holds a supernet of another space than the devices' "
                           "(profile the devices on its space, or use another checkpoint)")
    return trained


def eval_batches(trained: Any, split: str, batch_size: int = 256) -> Any:
    """Fixed-order normalised batches of ``split`` (``calibration`` or ``validation``) on the CPU."""
    from nas.data import EvalBatches, Normalizer

    splits = trained.splits
    norm = Normalizer(splits.mean, splits.std, torch.device("cpu"), False)
    return EvalBatches(getattr(splits, split), norm, batch_size, splits.image_size)


def _error(predicted: float, summary: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key in ("e2e_ms", "e2e_cpu_ms"):
        measured = summary[key]["median"]
        out[key] = 100.0 * (predicted - measured) / measured
    return out


__all__ = ["NAMED_POINTS", "eval_batches", "load_cpu_supernet", "network_for", "point_position", "split"]
