"""``edgenas eval CHECKPOINT --arch JSON|min|max|random:N``: accuracy of sub-networks.

Each arch is activated in place in the supernet, its BN statistics are recalibrated on
the calibration split, and its top-1 accuracy is measured on the validation split.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

from nas.errors import EdgenasError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="accuracy of sub-networks of a trained supernet",
        description="Recalibrate BN on the calibration split, then measure accuracy on the "
        "validation split, for each sub-network given with --arch.",
    )
    parser.add_argument("checkpoint", help="training output directory (or its checkpoint.json)")
    parser.add_argument("--arch", action="append", metavar="SPEC",
                        help="min, max, random:N, an arch as JSON, or a JSON file; repeatable (default: min and max)")
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="split to measure accuracy on (default: validation)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random:N (default: 0)")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def parse_archs(space: Any, specs: list[str], seed: int) -> list[Any]:
    """Archs from ``min``, ``max``, ``random:N``, inline JSON or a JSON file."""
    archs: list[Any] = []
    rng = random.Random(seed)
    for spec in specs:
        try:
            if spec == "min":
                archs.append(space.smallest())
            elif spec == "max":
                archs.append(space.largest())
            elif spec.startswith("random:"):
                count = int(spec.split(":", 1)[1])
                if count < 1:
                    raise ValueError("N must be at least 1")
                archs += [space.sample(rng) for _ in range(count)]
            else:
                text = Path(spec).read_text() if not spec.lstrip().startswith("{") and Path(spec).is_file() else spec
                archs.append(space.arch_from_json(text))
        except ValueError as exc:
            raise EdgenasError(f"--arch {spec[:60]}: {exc} (use min, max, random:N or an arch as JSON)") from None
    return archs


def evaluate(trained: Any, archs: list[Any], split: str, batch_size: int) -> list[dict[str, Any]]:
    """One row per arch: arch, MFLOPs, params, accuracy and loss after BN recalibration."""
    from tqdm import tqdm

    from nas.data import EvalBatches, Normalizer
    from nas.evaluation import evaluate_arch

    splits, space = trained.splits, trained.space
    images = splits.validation if split == "validation" else splits.test
    if images is None:
        raise EdgenasError(f"--split test: data set {splits.name} has no separate test split; use validation")
    channels_last = trained.device.type == "cuda"
    norm = Normalizer(splits.mean, splits.std, trained.device, channels_last)
    workers = trained.config.data.workers
    calibration = EvalBatches(splits.calibration, norm, batch_size, splits.image_size, workers)
    measure = EvalBatches(images, norm, batch_size, splits.image_size, workers)
    amp = torch.bfloat16 if trained.device.type == "cuda" else None
    if channels_last:
        trained.supernet.to(memory_format=torch.channels_last)
    rows = []
    for arch in tqdm(archs, desc="evaluating", unit="arch", leave=False, disable=len(archs) < 2):
        result = evaluate_arch(trained.supernet, arch, calibration, measure, amp)
        rows.append({
            "arch": space.arch_to_json(arch),
            "name": str(arch),
            "mflops": round(space.flops(arch) / 1e6, 3),
            "params_m": round(space.params(arch) / 1e6, 4),
            "accuracy": round(result.accuracy, 2),
            "loss": round(result.loss, 4),
            "samples": result.samples,
            "split": split,
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: arch, MFLOPs, params (M), accuracy (%)."""
    header = ("arch", "MFLOPs", "params (M)", "top-1 (%)")
    body = [(r["name"], f"{r['mflops']:.2f}", f"{r['params_m']:.3f}", f"{r['accuracy']:.2f}") for r in rows]
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(4)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nas.training.restore import load_trained

    if args.batch_size < 1:
        raise EdgenasError(f"--batch-size must be at least 1, got {args.batch_size}")
    trained = load_trained(args.checkpoint, args.device)
    archs = parse_archs(trained.space, args.arch or ["min", "max"], args.seed)
    rows = evaluate(trained, archs, args.split, args.batch_size)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        meta = trained.checkpoint.meta
        print(f"supernet {trained.checkpoint.path.parent} (step {meta['step']}/{meta.get('total_steps')}, "
              f"{trained.splits.name}); accuracy on {rows[0]['samples']} {args.split} images, BN recalibrated on "
              f"{len(trained.splits.calibration)}", file=sys.stderr)
        print(format_table(rows))
    return 0
