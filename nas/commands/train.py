"""``edgenas train CONFIG.yaml``: train the cloud model (the supernet) from a YAML config.

Run it under ``torchrun --nproc_per_node N`` (and ``--nnodes``) for data-parallel
training; rerun the same command after a stop to resume from the last checkpoint
(:func:`nas.training.train`).
"""

from __future__ import annotations

import argparse
import os

from nas.commands._args import add_out_dir, add_quiet, add_workspace, positive_int

SAVES_PROGRESS = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train the supernet (cloud model) from a YAML config",
        description="Train the supernet by the sandwich rule with in-place distillation "
        "(optionally progressive shrinking). Resumes automatically from a checkpoint in the "
        "output directory. Data-parallel: launch with torchrun.",
    )
    parser.add_argument("config", help="training config (YAML); see experiments/configs/")
    add_out_dir(parser, "output directory (default: output_dir of the config, else WORKSPACE/runs/CONFIG_NAME)",
                old=("--output",))
    parser.add_argument("--resume", action="store_true", help="require a checkpoint to resume from")
    parser.add_argument("--max-steps", type=positive_int("--max-steps"), metavar="N",
                        help="stop after global step N (resume later)")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.config import load_config
    from nas.training import TrainConfig, run_dir, train

    cfg = load_config(TrainConfig, args.config)
    result = train(cfg, run_dir(cfg, args.config, args.out_dir, args.workspace), resume=args.resume,
                   max_steps=args.max_steps, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":
        loss = f", last loss {result.last_loss:.4f}" if result.last_loss is not None else ""
        print(f"trained {result.step}/{result.total_steps} steps{loss}; checkpoint in {result.output_dir}")
    return 0
