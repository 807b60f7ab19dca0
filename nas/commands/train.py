"""``edgenas train CONFIG.yaml``: train the cloud model (the supernet) from a YAML config.

Run it under ``torchrun --nproc_per_node N`` (and ``--nnodes``) for data-parallel
training; rerun the same command after a stop to resume from the last checkpoint.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nas.config import load_config
from nas.training.config import TrainConfig
from nas.workspace import add_workspace_argument, workspace_dir


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train the supernet (cloud model) from a YAML config",
        description="Train the supernet by the sandwich rule with in-place distillation "
        "(optionally progressive shrinking). Resumes automatically from a checkpoint in the "
        "output directory. Data-parallel: launch with torchrun.",
    )
    parser.add_argument("config", help="training config (YAML); see experiments/configs/")
    parser.add_argument("--output", metavar="DIR", help="output directory (default: output_dir of the "
                        "config, else WORKSPACE/runs/CONFIG_NAME)")
    parser.add_argument("--resume", action="store_true", help="require a checkpoint to resume from")
    parser.add_argument("--max-steps", type=int, metavar="N", help="stop after global step N (resume later)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_workspace_argument(parser)
    return parser


def output_dir(args: argparse.Namespace, cfg: TrainConfig) -> Path:
    if args.output:
        return Path(args.output)
    if cfg.output_dir:
        return Path(cfg.output_dir)
    return workspace_dir(args.workspace) / "runs" / Path(args.config).stem


def run(args: argparse.Namespace) -> int:
    from nas.training.loop import train

    cfg = load_config(TrainConfig, args.config)
    result = train(cfg, output_dir(args, cfg), resume=args.resume, max_steps=args.max_steps,
                   progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        loss = f", last loss {result.last_loss:.4f}" if result.last_loss is not None else ""
        print(f"trained {result.step}/{result.total_steps} steps{loss}; checkpoint in {result.output_dir}")
    return 0
