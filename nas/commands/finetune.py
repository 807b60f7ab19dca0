"""``edgenas finetune STUDY --device NAME [--pick best|knee|trial:N] [--epochs N]``.

Picks an arch from the device's feasible Pareto front, extracts it from the cloud model,
fine-tunes it with distillation from the cloud model, measures it on the device for real
(TVM, locally or over RPC, as the device was profiled) next to the predicted cost,
exports it and registers it (:func:`nas.ship.ship`). Interruptible: the fine-tune resumes
where it stopped, and a pick that is already registered is reported instead of being redone.
"""

from __future__ import annotations

import argparse

from nas.commands._args import add_quiet, add_torch_device, add_workspace, positive_int

SAVES_PROGRESS = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from nas.ship import DEFAULT_FORMATS

    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune, measure, export and register the pick of a study for a device",
        description="Fine-tune the picked sub-network with distillation from the cloud model, "
        "measure it on the device for real, export it (safetensors, ONNX, torch.export, TVM) "
        "and register it.",
    )
    parser.add_argument("study", help="study name (as printed by edgenas search)")
    parser.add_argument("--device", required=True, metavar="NAME", help="a device of the study (profiled or imported)")
    parser.add_argument("--pick", default="best", help="best (most accurate feasible), knee, or trial:N")
    parser.add_argument("--checkpoint", default=None, metavar="DIR",
                        help="the supernet checkpoint the study searched (default: the one the study recorded)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: 3)")
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=None,
                        help="fine-tuning batch size (default: 64)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: 0.02)")
    parser.add_argument("--name", default=None, help="registry name (default: STUDY-DEVICE)")
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                        help=f"comma-separated exports (default: {','.join(DEFAULT_FORMATS)})")
    parser.add_argument("--rpc", default=None, metavar="HOST:PORT", help="override the device's RPC server address")
    parser.add_argument("--rpc-tracker", default=None, metavar="HOST:PORT", help="override the device's tracker address")
    parser.add_argument("--rpc-key", default=None, metavar="KEY", help="override the device's key at the tracker")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="study storage (default: the workspace's SQLite file)")
    add_torch_device(parser, "the fine-tuning")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.ship import ShipOptions, ship
    from nas.workspace import Workspace

    workspace = Workspace.resolve(args.workspace)
    reach = None
    if args.rpc or args.rpc_tracker or args.rpc_key:
        from latency_predictors.profilers import Reach

        reach = Reach.from_json(workspace.load_profile(args.device).reached).override(
            args.rpc, args.rpc_tracker, args.rpc_key)
    options = ShipOptions(
        pick=args.pick, checkpoint=args.checkpoint, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        name=args.name, formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
        storage=args.storage, reach=reach, torch_device=args.torch_device, progress=not args.quiet,
    )
    shipped = ship(workspace, args.study, args.device, options)
    entry = shipped.entry
    m = entry.metrics
    if shipped.already_registered:
        print(f"already registered as {entry.ref} (accuracy {m.get('accuracy'):.2f} %, "
              f"measured {m.get('measured_latency_ms'):.3f} ms); nothing to do")
    else:
        print(f"registered {entry.ref}: accuracy {m['accuracy']:.2f} %, measured {m['measured_latency_ms']:.3f} ms "
              f"(predicted {m['predicted_latency_ms']:.3f} ms)")
    return 0
