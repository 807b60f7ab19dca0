"""``edgenas eval CHECKPOINT --arch JSON|min|max|random:N``: accuracy of sub-networks.

Each arch is activated in place in the supernet. For an image space its BN statistics
are recalibrated on the calibration split and its top-1 accuracy is measured on the
validation split; for a language model (gpt) its loss and perplexity are measured on a
fixed number of validation tokens.
CHECKPOINT is a training output directory (or its ``checkpoint.json``), or the name of a
run in ``WORKSPACE/runs``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.commands._args import add_quiet, add_torch_device, add_workspace, positive_int

SAVES_PROGRESS = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="accuracy (or loss and perplexity) of sub-networks of a trained supernet",
        description="For each sub-network given with --arch: recalibrate BN on the calibration split, "
        "then measure top-1 accuracy on the validation split (image spaces), or measure the loss and "
        "perplexity on the validation tokens (language models).",
    )
    parser.add_argument("checkpoint", help="training output directory (or its checkpoint.json), or a run name "
                        "in WORKSPACE/runs")
    parser.add_argument("--arch", action="append", metavar="SPEC",
                        help="min, max, random:N, an arch as JSON, or a JSON file; repeatable (default: min and max)")
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="split to measure on (default: validation)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random:N (default: 0)")
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=256,
                        help="evaluation batch size, in images or token windows (default: 256)")
    add_torch_device(parser, "the evaluation", old=("--device",))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def checkpoint_path(name: str, workspace: str | None) -> Path:
    """A path as given, else a run of that name in the workspace."""
    from nas.workspace import Workspace

    path = Path(name)
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    run = Workspace.resolve(workspace).run_dir(name)
    return run if run.exists() else path


def run(args: argparse.Namespace) -> int:
    from nas.evaluation import evaluate_subnets, format_table
    from nas.spaces import parse_arch_specs
    from nas.training import load_trained

    trained = load_trained(checkpoint_path(args.checkpoint, args.workspace), args.torch_device)
    archs = parse_arch_specs(trained.space, args.arch or ["min", "max"], args.seed)
    rows = evaluate_subnets(trained, archs, args.split, args.batch_size, progress=not args.quiet)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        meta = trained.checkpoint.meta
        print(f"supernet {trained.checkpoint.path.parent} (step {meta['step']}/{meta.get('total_steps')}); "
              f"{trained.task.eval_summary(args.split, rows[0]['samples'])}", file=sys.stderr)
        print(format_table(rows))
    return 0
