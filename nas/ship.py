"""Ship a pick of a study: fine-tune it, measure it on the device, export it, register it.

:func:`ship` is what ``edgenas finetune`` runs: it picks an arch from a device's feasible
Pareto front (the most accurate, the knee, or a trial by number), extracts it from the
cloud model, fine-tunes it with distillation from the cloud model, measures it on the
device for real (TVM, locally or over RPC, exactly as the device was profiled) next to the
predicted cost, exports it (safetensors, ONNX, torch.export, TVM) and registers it with
its lineage. Interruptible: the fine-tune resumes where it stopped, and a pick that is
already registered is returned instead of being redone.

Progress goes to the ``edgenas`` logger (the CLI prints it; ``--quiet`` hides it).

Example::

    from nas.ship import ShipOptions, ship
    from nas.workspace import Workspace

    shipped = ship(Workspace.resolve(), "mbv3-laptop-5ms", "laptop", ShipOptions(pick="knee"))
    shipped.entry.ref, shipped.entry.metrics["measured_latency_ms"]
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import Workspace

log = logging.getLogger("edgenas.ship")

DEFAULT_FORMATS = ("safetensors", "onnx", "torch_export", "tvm")


@dataclass(frozen=True)
class ShipOptions:
    """What to pick and how to fine-tune and export it (``None``: the fine-tune defaults)."""

    pick: str = "best"
    checkpoint: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    name: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    storage: str | None = None
    reach: Any = None  # latency_predictors.profilers.Reach: the device at another address
    torch_device: str = "auto"
    progress: bool = True


@dataclass
class Shipped:
    """The registry entry, and whether it was registered now or found registered before."""

    entry: Any
    already_registered: bool


def pick_point(view: Any, pick: str) -> tuple[Any, str]:
    """The trial ``pick`` names on a device view (``best``, ``knee``, ``trial:N``) and why."""
    if pick == "best":
        if view.best is None:
            raise EdgenasError(f"no feasible trial for {view.name}: run more trials or relax the budget")
        return view.best, "best: the most accurate feasible trial"
    if pick == "knee":
        if view.knee is None:
            raise EdgenasError(f"no feasible trial for {view.name}: run more trials or relax the budget")
        return view.knee, ("knee: the feasible front's point farthest above the line from its cheapest to "
                           "its most accurate point (both axes scaled over the front; its cheapest point when none is above that line)")
    if pick.startswith("trial:") and pick[6:].isdigit():
        number = int(pick[6:])
        for p in view.points:
            if p.number == number:
                return p, f"trial {number}, chosen by hand" + ("" if p.feasible else " (infeasible for the budget)")
        raise EdgenasError(f"trial {number} is not a finished trial of this study for {view.name}")
    raise EdgenasError(f"--pick {pick!r}: use best, knee or trial:N")


def ship(workspace: Workspace, study_name: str, device: str, options: ShipOptions = ShipOptions()) -> Shipped:
    """Pick, fine-tune, measure, export and register one arch of ``study_name`` for ``device``."""
    from nas.finetune import FinetuneConfig, finetune_subnet
    from nas.measure import measure_metrics
    from nas.report.collect import device_view
    from nas.search import open_edgenas_study

    study, display = open_edgenas_study(workspace, study_name, options.storage)
    identity = study.user_attrs["edgenas"]
    if device not in identity.get("devices", {}):
        raise EdgenasError(f"device {device!r} is not in study {study_name!r}; it has {', '.join(identity['devices'])}")
    source = identity.get("accuracy", {})
    if source.get("kind") != "supernet":
        raise EdgenasError(f"study {study_name!r} takes accuracy from a table ({source.get('kind')}): "
                           "there is no cloud model to extract and fine-tune")
    view = device_view(study, device, identity.get("budget", {}))
    point, why = pick_point(view, options.pick)
    checkpoint = options.checkpoint or study.user_attrs.get("edgenas_checkpoint")
    if not checkpoint:
        raise EdgenasError("the study does not record its checkpoint's path: pass --checkpoint DIR")
    overrides = {k: v for k, v in (("epochs", options.epochs), ("batch_size", options.batch_size),
                                   ("lr", options.lr)) if v is not None}
    try:
        config = replace(FinetuneConfig(), **overrides)
    except ValueError as exc:
        raise EdgenasError(f"fine-tune settings: {exc}") from None
    name = options.name or f"{study_name}-{device}"
    lineage = {"supernet_sha256": source.get("checkpoint_sha256"), "study": study_name, "storage": display,
               "trial": point.number, "pick": options.pick, "device": device, "finetune": asdict(config)}
    registry = workspace.registry()
    same = {k: v for k, v in lineage.items() if k != "storage"}
    for entry in registry.list(name):
        if {k: entry.lineage.get(k) for k in same} == same:
            return Shipped(entry, already_registered=True)

    profile = workspace.load_profile(device)  # before the fine-tune: an unmeasurable device fails now
    from nas.training import load_trained

    trained = load_trained(checkpoint, options.torch_device)
    if trained.checkpoint.meta.get("sha256") != source.get("checkpoint_sha256"):
        raise EdgenasError(f"checkpoint {checkpoint} is not the one study {study_name!r} searched (sha256 differs)")
    space = trained.space
    arch = space.arch_from_json(point.arch)
    text = trained.task.__class__.__name__ == "TextTask"
    score = f"validation loss {-point.accuracy:.3f}" if text else f"accuracy {point.accuracy:.2f} %"
    log.info("[1/4] picked trial %d for %s: %s; %s, predicted %.3f ms (%s)",
             point.number, device, why, score, point.latency_ms, view.metric)
    out_dir = workspace.finetune_dir(study_name, device, point.number)
    clock = time.perf_counter()
    result = finetune_subnet(trained, arch, config, out_dir, progress=options.progress)
    if text:
        log.info("[2/4] fine-tuned %d steps: validation loss %.3f -> %.3f (perplexity %.2f -> %.2f) on %d tokens (%s)",
                 result.steps, result.inherited.loss, result.finetuned.loss, result.inherited.perplexity,
                 result.finetuned.perplexity, result.finetuned.samples, _took(clock))
    else:
        log.info("[2/4] fine-tuned %d steps: accuracy %.2f %% -> %.2f %% on %d validation images (%s)",
                 result.steps, result.inherited.accuracy, result.finetuned.accuracy, result.finetuned.samples,
                 _took(clock))
    clock = time.perf_counter()
    every = measure_metrics(profile, space, arch, result.model, options.reach)
    took = _took(clock)
    measured = every[view.metric]
    energy = f"; energy {measured.energy_mj:.2f} mJ" if measured.energy_mj is not None else "; energy not measured"
    for metric, m in every.items():
        predicted = point.latencies.get(metric, point.latency_ms if metric == view.metric else None)
        versus = "" if predicted is None else f"; predicted {predicted:.3f} ms ({100 * (predicted - m.latency_ms) / m.latency_ms:+.1f} %)"
        log.info("[3/4] measured %s on %s: %.3f ms (IQR %.3f, %d repeats)%s%s (%s)", metric, device, m.latency_ms,
                 m.spread_ms, m.repeats, versus, energy if metric == view.metric else "", took)
    metrics = {
        "accuracy": -result.finetuned.loss if text else result.finetuned.accuracy,
        "accuracy_inherited": -result.inherited.loss if text else result.inherited.accuracy,
        "accuracy_searched": point.accuracy,
        "predicted_latency_ms": point.latency_ms,
        "measured_latency_ms": measured.latency_ms,
        "measured_latency_iqr_ms": measured.spread_ms,
        "predicted_energy_mj": point.energy_mj,
        "measured_energy_mj": measured.energy_mj,
        "mflops": space.flops(arch) / 1e6,
        "params_m": space.params(arch) / 1e6,
        "measured_how": measured.how,
    }
    if view.metric != "latency_ms":  # every metric, measured and predicted (gpt: decode_ms, prefill_ms)
        metrics["latency_metric"] = view.metric
        for metric, m in every.items():
            metrics[f"predicted_{metric}"] = point.latencies.get(metric)
            metrics[f"measured_{metric}"] = m.latency_ms
            metrics[f"measured_{metric.removesuffix('_ms')}_iqr_ms"] = m.spread_ms
    if text:
        metrics.update(loss=result.finetuned.loss, perplexity=result.finetuned.perplexity,
                       loss_inherited=result.inherited.loss, memory_mb=space.memory_bytes(arch) / 1e6)
    clock = time.perf_counter()
    entry = registry.register(name, result.model, space, arch, device=device, metrics=metrics,
                              lineage={**lineage, "checkpoint": str(checkpoint), "pick_reason": why},
                              formats=options.formats,
                              tvm_target=profile.target if "tvm" in options.formats else None)
    log.info("[4/4] registered %s with %s in %s (%s); `edgenas registry show %s`",
             entry.ref, ", ".join(sorted(entry.artifacts)), registry.root, _took(clock), entry.ref)
    return Shipped(entry, already_registered=False)


def _took(start: float) -> str:
    """The wall time since ``start`` (``time.perf_counter()``), for a step's log line."""
    return f"{time.perf_counter() - start:.0f} s"


__all__ = ["DEFAULT_FORMATS", "ShipOptions", "Shipped", "pick_point", "ship"]
