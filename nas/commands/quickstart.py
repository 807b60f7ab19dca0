"""``edgenas quickstart``: the whole available flow on an offline data set, on a CPU, in minutes.

Steps (each a function, each reusing what an earlier run left in the workspace):
write the training config, build the digits data set, train a small ``mbv3`` supernet
(resumed or skipped when a checkpoint exists), evaluate a few sub-networks (smallest,
largest, three random) and print a table. Later issues add profiling and search.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from nas.workspace import add_workspace_argument, workspace_dir

QUICKSTART_CONFIG: dict[str, Any] = {
    "seed": 0,
    "log_every": 10,
    "space": {"name": "mbv3", "options": {"preset": "small"}},
    "data": {"name": "digits", "val_fraction": 0.2, "calibration_size": 500},
    "train": {
        "steps": 150,
        "batch_size": 32,
        "num_random": 2,
        "lr": 0.1,
        "warmup_steps": 10,
        "label_smoothing": 0.1,
        "device": "cpu",
        "threads": 1,  # small convolutions gain little from a second thread, and lose much on a busy machine
    },
    "checkpoint": {"every_steps": 25},
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quickstart",
        help="train and evaluate a small supernet on built-in data (CPU, minutes)",
        description="Build the offline digits data set, train a small mbv3 supernet, evaluate "
        "the smallest, the largest and 3 random sub-networks. Run it again to reuse the results.",
    )
    add_workspace_argument(parser)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: 150)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def prepare_data(config: Any) -> Any:
    """Step 2: the digits splits (real scans shipped with scikit-learn, resized to 32x32)."""
    from nas.training.build import space_and_data

    _, splits, _ = space_and_data(config)
    d = splits.describe()
    print(f"[2/4] data: {d['name']}, {d['train']} train / {d['validation']} validation / "
          f"{d['calibration']} calibration images at {d['image_size']}x{d['image_size']}, {d['num_classes']} classes")
    return splits


def write_config(directory: Path, steps: int | None) -> Path:
    """Step 1: ``train.yaml`` in the quickstart directory (kept if it exists: edit it to experiment)."""
    import yaml

    path = directory / "train.yaml"
    if not path.exists() or steps is not None:
        config = json.loads(json.dumps(QUICKSTART_CONFIG))
        config["output_dir"] = str(directory / "supernet")
        if steps is not None:
            config["train"]["steps"] = steps
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text("# written by `edgenas quickstart`; `edgenas train` reads it\n" + yaml.safe_dump(config, sort_keys=False))
    print(f"[1/4] config: {path}")
    return path


def train_supernet(config: Any, output: Path, progress: bool) -> Any:
    """Step 3: train the supernet, or resume it, or skip it when already trained."""
    from nas.training.loop import train

    start = time.perf_counter()
    result = train(config, output, progress=progress)
    took = time.perf_counter() - start
    loss = f", last loss {result.last_loss:.3f}" if result.last_loss is not None else ""
    print(f"[3/4] supernet: {result.step}/{result.total_steps} steps in {output} ({took:.0f} s{loss})")
    return result


def evaluate_subnets(output: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Step 4: smallest, largest and 3 random sub-networks, BN recalibrated.

    The table is saved in ``subnets.json`` with the checkpoint's sha256 and reused while
    the checkpoint is unchanged.
    """
    from nas.commands.eval import evaluate, parse_archs
    from nas.training.restore import load_trained

    cache = output.parent / "subnets.json"
    trained = load_trained(output, "cpu")
    digest = trained.checkpoint.meta["sha256"]
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("checkpoint_sha256") == digest:
                print(f"[4/4] sub-networks: evaluated before, reusing {cache}")
                return list(saved["rows"])
        except (json.JSONDecodeError, AttributeError, KeyError):
            pass  # unreadable: evaluate again and overwrite it
    archs = parse_archs(trained.space, ["min", "max", "random:3"], seed)
    rows = evaluate(trained, archs, "validation", 256)
    cache.write_text(json.dumps({"checkpoint_sha256": digest, "rows": rows}, indent=1))
    print(f"[4/4] sub-networks: accuracy on {rows[0]['samples']} validation images ({cache})")
    return rows


def run(args: argparse.Namespace) -> int:
    from nas.commands.eval import format_table
    from nas.config import load_config
    from nas.training.config import TrainConfig

    if args.steps is not None and args.steps < 1:
        from nas.errors import EdgenasError

        raise EdgenasError(f"--steps must be at least 1, got {args.steps}")
    directory = workspace_dir(args.workspace) / "quickstart"
    config_path = write_config(directory, args.steps)
    config = load_config(TrainConfig, config_path)
    prepare_data(config)
    output = Path(config.output_dir or directory / "supernet")
    train_supernet(config, output, not args.no_progress)
    rows = evaluate_subnets(output, config.seed)
    print()
    print(format_table(rows))
    return 0
