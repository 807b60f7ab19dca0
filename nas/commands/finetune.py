"""``edgenas finetune STUDY --device NAME [--pick best|knee|trial:N] [--epochs N]``.

Picks an arch from the device's feasible Pareto front, extracts it from the cloud model,
fine-tunes it with distillation from the cloud model, measures it on the device for real
(TVM, locally or over RPC, as the device was profiled) next to the predicted cost,
exports it and registers it. Interruptible: the fine-tune resumes where it stopped, and
a pick that is already registered is reported instead of being redone.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import add_workspace_argument, workspace_dir


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune, measure, export and register the pick of a study for a device",
        description="Fine-tune the picked sub-network with distillation from the cloud model, "
        "measure it on the device for real, export it (safetensors, ONNX, torch.export, TVM) "
        "and register it.",
    )
    parser.add_argument("study", help="study name (as printed by edgenas search)")
    parser.add_argument("--device", required=True, help="a device of the study (profiled or imported)")
    parser.add_argument("--pick", default="best", help="best (most accurate feasible), knee, or trial:N")
    parser.add_argument("--checkpoint", default=None,
                        help="the supernet checkpoint the study searched (default: the one the study recorded)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--name", default=None, help="registry name (default: STUDY-DEVICE)")
    parser.add_argument("--formats", default="safetensors,onnx,torch_export,tvm",
                        help="comma-separated exports (default: safetensors,onnx,torch_export,tvm)")
    parser.add_argument("--rpc", default=None, help="override the device's RPC server HOST:PORT")
    parser.add_argument("--rpc-tracker", default=None, help="override the device's tracker HOST:PORT")
    parser.add_argument("--rpc-key", default=None)
    parser.add_argument("--storage", default=None, help="study storage (default: the workspace's SQLite file)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_workspace_argument(parser)
    return parser


def pick_point(view: Any, pick: str) -> tuple[Any, str]:
    """The trial ``pick`` names on a device view, and why it was chosen."""
    if pick == "best":
        if view.best is None:
            raise EdgenasError(f"no feasible trial for {view.name}: run more trials or relax the budget")
        return view.best, "best: the most accurate feasible trial"
    if pick == "knee":
        if view.knee is None:
            raise EdgenasError(f"no feasible trial for {view.name}: run more trials or relax the budget")
        return view.knee, ("knee: the feasible front's point farthest above the line from its cheapest to "
                           "its most accurate point (both axes scaled over the front)")
    if pick.startswith("trial:") and pick[6:].isdigit():
        number = int(pick[6:])
        for p in view.points:
            if p.number == number:
                return p, f"trial {number}, chosen by hand" + ("" if p.feasible else " (infeasible for the budget)")
        raise EdgenasError(f"trial {number} is not a finished trial of this study for {view.name}")
    raise EdgenasError(f"--pick {pick!r}: use best, knee or trial:N")


def run(args: argparse.Namespace) -> int:
    from nas.commands.devices import load_profile
    from nas.finetune import FinetuneConfig, finetune_subnet
    from nas.measure import measure_model
    from nas.registry import ModelRegistry
    from nas.report.collect import device_view, load_edgenas_study
    from nas.search.storage import check_reachable, open_storage, parse_storage

    workspace = workspace_dir(args.workspace)
    spec = parse_storage(args.storage, workspace)
    check_reachable(spec)
    study = load_edgenas_study(args.study, open_storage(spec, heartbeat=False), spec.display)
    identity = study.user_attrs["edgenas"]
    if args.device not in identity.get("devices", {}):
        raise EdgenasError(f"device {args.device!r} is not in study {args.study!r}; it has {', '.join(identity['devices'])}")
    source = identity.get("accuracy", {})
    if source.get("kind") != "supernet":
        raise EdgenasError(f"study {args.study!r} takes accuracy from a table ({source.get('kind')}): "
                           "there is no cloud model to extract and fine-tune")
    view = device_view(study, args.device, identity.get("budget", {}))
    point, why = pick_point(view, args.pick)
    checkpoint = args.checkpoint or study.user_attrs.get("edgenas_checkpoint")
    if not checkpoint:
        raise EdgenasError("the study does not record its checkpoint's path: pass --checkpoint DIR")

    config = FinetuneConfig()
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr)) if v is not None}
    try:
        config = replace(config, **overrides)
    except ValueError as exc:
        raise EdgenasError(f"fine-tune settings: {exc}") from None
    name = args.name or f"{args.study}-{args.device}"
    lineage = {"supernet_sha256": source.get("checkpoint_sha256"), "study": args.study, "storage": spec.display,
               "trial": point.number, "pick": args.pick, "device": args.device, "finetune": asdict(config)}
    registry = ModelRegistry(workspace / "registry")
    for entry in registry.list(name):
        if {k: entry.lineage.get(k) for k in lineage if k != "storage"} == {k: v for k, v in lineage.items() if k != "storage"}:
            print(f"already registered as {entry.ref} (accuracy {entry.metrics.get('accuracy'):.2f} %, "
                  f"measured {entry.metrics.get('measured_latency_ms'):.3f} ms); nothing to do")
            return 0

    from nas.training.restore import load_trained

    trained = load_trained(checkpoint, "auto")
    if trained.checkpoint.meta.get("sha256") != source.get("checkpoint_sha256"):
        raise EdgenasError(f"checkpoint {checkpoint} is not the one study {args.study!r} searched (sha256 differs)")
    space = trained.space
    arch = space.arch_from_json(point.arch)
    print(f"[1/4] picked trial {point.number} for {args.device}: {why}; accuracy {point.accuracy:.2f} %, "
          f"predicted {point.latency_ms:.3f} ms")
    out_dir = workspace / "finetune" / args.study / f"{args.device}-trial{point.number}"
    result = finetune_subnet(trained, arch, config, out_dir, progress=not args.quiet)
    print(f"[2/4] fine-tuned {result.steps} steps: accuracy {result.inherited.accuracy:.2f} % -> "
          f"{result.finetuned.accuracy:.2f} % on {result.finetuned.samples} validation images")
    profile = load_profile(workspace, args.device)
    measured = measure_model(profile, result.model, space.input_shape(arch),
                             rpc=args.rpc, tracker=args.rpc_tracker, key=args.rpc_key)
    error = 100 * (point.latency_ms - measured.latency_ms) / measured.latency_ms
    print(f"[3/4] measured on {args.device}: {measured.latency_ms:.3f} ms (IQR {measured.spread_ms:.3f}, "
          f"{measured.repeats} repeats); predicted {point.latency_ms:.3f} ms ({error:+.1f} %)"
          + (f"; energy {measured.energy_mj:.2f} mJ" if measured.energy_mj is not None else "; energy not measured"))
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    metrics = {
        "accuracy": result.finetuned.accuracy,
        "accuracy_inherited": result.inherited.accuracy,
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
    entry = registry.register(name, result.model, space, arch, device=args.device, metrics=metrics,
                              lineage={**lineage, "checkpoint": str(checkpoint), "pick_reason": why},
                              formats=formats, tvm_target=profile.target if "tvm" in formats else None)
    print(f"[4/4] registered {entry.ref} with {', '.join(sorted(entry.artifacts))} "
          f"in {registry.root}; `edgenas registry show {entry.ref}`")
    return 0

