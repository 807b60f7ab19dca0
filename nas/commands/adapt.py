"""``edgenas adapt CONFIG.yaml``: edge-cloud collaborative adaptation (Nebula) and baselines.

Without ``checkpoint`` in the config it simulates many devices over rounds for every
configured method and writes ``out_dir/results.json`` (accuracy per method per round,
bytes each way, device memory and time per batch, rejections); rerunning the same command
resumes. With ``checkpoint`` and ``device_dirs`` it runs one real adaptation round.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "adapt",
        help="edge-cloud collaborative adaptation: simulate devices or run one real round",
        description="Simulate Nebula-style adaptation against no adaptation, local-only, FedAvg and "
        "HeteroFL on the same devices, data and budgets; or adapt a cloud checkpoint on device directories.",
    )
    parser.add_argument("config", help="YAML config (see experiments/configs/adapt_mnist1d.yaml)")
    parser.add_argument("--out-dir", help="override out_dir from the config")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-device log lines")
    return parser


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'method':<14}{'acc r1 (%)':>11}{'acc final (%)':>14}{'KB/device-round':>16}{'rounds->target':>15}"]
    for name, s in summary.items():
        reach = "-" if s["rounds_to_target"] is None else str(s["rounds_to_target"])
        lines.append(f"{name:<14}{s['accuracy_round1']:>11.2f}{s['accuracy_final']:>14.2f}"
                     f"{s['bytes_per_device_round'] / 1e3:>16.1f}{reach:>15}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nas.adapt.config import AdaptConfig
    from nas.config import load_config

    config = load_config(AdaptConfig, args.config)
    if args.out_dir:
        config = dataclasses.replace(config, out_dir=args.out_dir)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="edgenas adapt: %(message)s", stream=sys.stderr)
    if config.checkpoint:
        from nas.adapt.real import adapt_round

        record = adapt_round(config)
        print(f"adapted {len(record['devices'])} devices ({len(record['rejected'])} rejected, "
              f"{len(record['budget_errors'])} over budget); wrote {record['output']}")
        return 0
    from nas.adapt.simulator import simulate

    results = simulate(config, progress=not args.quiet)
    print(format_summary(results["summary"]))
    print(f"results: {config.out_dir}/results.json")
    return 0
