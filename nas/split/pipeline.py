"""``edgenas split`` from start to result: load the devices and the arch, plan, optionally run;
and ``edgenas speculate`` (speculative decoding of a ``gpt`` checkpoint, :func:`speculate`).

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
          model: str | None = None, precision: str = "fp32", correction: str = "proportional", run: bool = False,
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


def cascade(workspace: Workspace, edge: str, cloud: str, link: Link, checkpoint: str | Path, *,
            arch: str | None = None, model: str | None = None, precision: str = "fp32", kind: str = "softmax",
            target_accuracy: float | str | None = None, max_latency_ms: float | None = None, limit: int | None = None,
            settings: RunSettings = RunSettings(warmup=3), log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the cascade of the edge's sub-network (``arch`` or the registered ``model``) and
    the checkpoint's largest network in the cloud on the checkpoint's validation images; the
    JSON document (``--out``), with the predicted latencies beside the measured ones."""
    from nas.evaluation import calibrated_subnet
    from nas.split.cascade import evaluate_cascade

    pair = load_pair(workspace, edge, cloud)
    trained = load_cpu_supernet(checkpoint, pair.space)
    edge_arch = resolve_arch(pair.space, arch, model, workspace)
    cloud_arch = pair.space.largest()
    calibration = eval_batches(trained, "calibration")
    if model is not None:
        edge_net, edge_weights = workspace.registry(create=False).load_model(model), f"registered model {model}"
    else:
        edge_net, edge_weights = calibrated_subnet(trained.supernet, edge_arch, calibration), "supernet (BN recalibrated)"
    cloud_net = calibrated_subnet(trained.supernet, cloud_arch, calibration)
    images, labels = zip(*eval_batches(trained, "validation"))
    x, y = torch.cat(images), torch.cat(labels)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    result = evaluate_cascade(pair.space, edge_arch, edge_net, cloud_arch, cloud_net, x, y, pair.edge.profile,
                              pair.cloud.profile, link, precision=precision, kind=kind,
                              target_accuracy=target_accuracy, max_latency_ms=max_latency_ms, settings=settings,
                              log=log)
    edge_plan = plan_split(pair.space, edge_arch, pair.edge, pair.cloud, link, precision=precision)
    cloud_plan = plan_split(pair.space, cloud_arch, pair.edge, pair.cloud, link, precision=precision)
    predicted = {"edge_only_ms": edge_plan.edge_only.total_ms, "cloud_only_ms": cloud_plan.cloud_only.total_ms}
    for row in result.sweep:
        row["predicted_mean_ms"] = predicted["edge_only_ms"] + row["offloaded"] * predicted["cloud_only_ms"]
    doc = result.to_json()
    doc.update({"space": pair.space.describe(), "edge": edge, "cloud": cloud, "checkpoint": str(checkpoint),
                "edge_arch": pair.space.arch_to_json(edge_arch), "cloud_arch": pair.space.arch_to_json(cloud_arch),
                "edge_weights": edge_weights, "predicted": predicted})
    return doc


def speculate(checkpoint: str | Path, links: Sequence[Link], *, draft: str = "min", verifier: str = "max",
              workspace: Workspace | None = None, edge: str | None = None, cloud: str | None = None,
              draft_length: int | None = None, compare: Sequence[int] = (), prompts: Sequence[str] = (), samples: int = 4,
              prompt_tokens: int = 32, tokens: int = 64, run: bool = False, settings: RunSettings = RunSettings(),
              threads: int = 1, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Speculative decoding of the ``gpt`` checkpoint: the sub-network ``draft`` on the edge,
    ``verifier`` (default the largest network) in the cloud, over each of ``links``.

    The acceptance rate is estimated on ``samples`` validation prompts of the checkpoint's
    text (:func:`~nas.split.speculative.estimate_acceptance`); the costs come from the
    ``edge`` and ``cloud`` profiles where they predict decoding, else from timing both
    models here; the planner picks the draft length per link (or takes ``draft_length``).
    With ``run``, the three ways of decoding run for real on ``prompts`` (default:
    ``samples`` other validation prompts of ``prompt_tokens`` bytes) and the document
    holds measured beside predicted, and whether the outputs equal the verifier's greedy
    output; ``compare`` draft lengths also run on every link (does the planner's beat them?).
    """
    from nas.data.text import encode
    from nas.split.draft_plan import plan_draft_length, speculative_costs
    from nas.split.speculative import check_draft, estimate_acceptance
    from nas.split.speculative_run import run_decoding
    from nas.tasks import TextTask, task_type

    say = log or (lambda _line: None)
    if not links:
        raise EdgenasError("give at least one --link")
    if samples < 1 or prompt_tokens < 1 or tokens < 2:
        raise EdgenasError("--prompts and --prompt-tokens must be at least 1 and -n at least 2")
    trained = load_cpu_supernet(checkpoint)
    space = trained.space
    if task_type(space.name) is not TextTask:
        raise EdgenasError(f"--checkpoint {checkpoint} holds a supernet of space {space.name}; speculative decoding "
                           "needs a language model (a checkpoint of space gpt)")
    draft_arch, verifier_arch = _gpt_arch(space, draft, "--draft"), _gpt_arch(space, verifier, "--verifier")
    check_draft(space, draft_arch, verifier_arch)
    cost_models = {}
    for role, name in (("edge", edge), ("cloud", cloud)):
        if name is not None:
            cost_models[role] = (workspace or Workspace.resolve()).cost_model(name, space)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        draft_model = trained.supernet.extract(draft_arch).eval()
        verifier_model = trained.supernet.extract(verifier_arch).eval()
        text = trained.splits.validation
        windows = _windows(text, 2 * samples, prompt_tokens)
        alpha = estimate_acceptance(draft_model, verifier_model, windows[::2], tokens=min(tokens, 48))
        say(f"acceptance rate alpha = {alpha['alpha']:.3f} ({alpha['how']})")
        longest = max(1, min(16, verifier_arch.context // 2))
        chosen_prompts = [encode(p).tolist() for p in prompts] or windows[1::2]
        mean_prompt = max(1, round(sum(len(p) for p in chosen_prompts) / len(chosen_prompts)))
        costs = speculative_costs(draft_model, verifier_model, links[0], prompt_tokens=mean_prompt,
                                  edge=cost_models.get("edge"), cloud=cost_models.get("cloud"), max_length=longest)
        plans = [plan_draft_length(costs.with_link(link), alpha["alpha"], max_length=longest,
                                   draft_length=draft_length) for link in links]
        doc: dict[str, Any] = {
            "space": space.describe(), "checkpoint": str(checkpoint), "draft": space.arch_to_json(draft_arch),
            "verifier": space.arch_to_json(verifier_arch), "draft_label": str(draft_arch),
            "verifier_label": str(verifier_arch), "edge": edge, "cloud": cloud, "alpha": alpha, "threads": threads,
            "plans": [p.to_json() for p in plans]}
        if run:
            measured = run_decoding(space, draft_model, verifier_model, chosen_prompts, tokens, links,
                                    [p.draft_length for p in plans], compare=compare, settings=settings,
                                    threads=threads, log=log)
            doc["run"] = measured
    finally:
        torch.set_num_threads(previous)
    return doc


def _gpt_arch(space: Any, spec: str, flag: str) -> Any:
    from nas.spaces import parse_arch_specs

    try:
        found = parse_arch_specs(space, [spec])
    except EdgenasError as exc:
        raise EdgenasError(str(exc).replace("--arch", flag, 1).replace("use min, max, random:N or an arch as JSON",
                                                                      "it is not a sub-network of the cloud "
                                                                      "model's space; use min, max or an arch "
                                                                      "of that space as JSON")) from None
    if len(found) != 1:
        raise EdgenasError(f"{flag} {spec}: names {len(found)} archs; give one")
    return found[0]


def _windows(text: torch.Tensor, count: int, length: int) -> list[list[int]]:
    """``count`` prompts of ``length`` bytes from ``text``, evenly spaced (deterministic)."""
    span = len(text) - length
    if span <= 0:
        raise EdgenasError(f"the validation text ({len(text)} bytes) is shorter than --prompt-tokens {length}")
    return [text[i * span // count: i * span // count + length].long().tolist() for i in range(count)]


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
    for key in ("e2e_ms", "e2e_cpu_ms", "e2e_corrected_ms"):
        measured = summary[key]["median"]
        out[key] = 100.0 * (predicted - measured) / measured
    return out


__all__ = ["NAMED_POINTS", "cascade", "eval_batches", "load_cpu_supernet", "network_for", "point_position", "speculate",
           "split"]
