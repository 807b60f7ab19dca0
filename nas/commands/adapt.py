"""``edgenas adapt CONFIG.yaml``: edge-cloud collaborative adaptation (Nebula) and baselines.

A config without ``checkpoint`` simulates many devices over rounds for every configured
method and writes ``OUT_DIR/results.json`` (accuracy per method per round, bytes each way,
device memory and time per batch, rejections); rerunning the same command resumes. A
config with ``checkpoint`` and ``device_dirs`` runs one real adaptation round.
``OUT_DIR`` is ``--out-dir``, else the config's ``out_dir``, else ``WORKSPACE/adapt/CONFIG_NAME``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from nas.commands._args import add_out_dir, add_quiet, add_workspace

SAVES_PROGRESS = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "adapt",
        help="edge-cloud collaborative adaptation: simulate devices or run one real round",
        description="Simulate Nebula-style adaptation against no adaptation, local-only, FedAvg and "
        "HeteroFL on the same devices, data and budgets; or adapt a cloud checkpoint on device directories.",
    )
    parser.add_argument("config", help="YAML config (see experiments/configs/adapt_mnist1d.yaml)")
    add_out_dir(parser, "where results go (default: out_dir of the config, else WORKSPACE/adapt/CONFIG_NAME)")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'method':<14}{'acc r1 (%)':>11}{'acc final (%)':>14}{'KB/device-round':>16}{'rounds->target':>15}"]
    for name, s in summary.items():
        reach = "-" if s["rounds_to_target"] is None else str(s["rounds_to_target"])
        lines.append(f"{name:<14}{s['accuracy_round1']:>11.2f}{s['accuracy_final']:>14.2f}"
                     f"{s['bytes_per_device_round'] / 1e3:>16.1f}{reach:>15}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nas.adapt import RoundConfig, adapt_round, load_adapt_config, simulate
    from nas.workspace import Workspace

    config = load_adapt_config(args.config)
    out_dir = args.out_dir or config.out_dir or str(Workspace.resolve(args.workspace).adapt_dir(Path(args.config).stem))
    config = dataclasses.replace(config, out_dir=out_dir)
    if isinstance(config, RoundConfig):
        record = adapt_round(config)
        print(f"adapted {len(record['devices'])} devices ({len(record['rejected'])} rejected, "
              f"{len(record['budget_errors'])} over budget); wrote {record['output']}")
        return 0
    results = simulate(config, progress=not args.quiet)
    print(format_summary(results["summary"]))
    print(f"results: {config.out_dir}/results.json")
    return 0
