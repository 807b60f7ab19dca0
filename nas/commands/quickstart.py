"""``edgenas quickstart``: the whole flow on embedded defaults, on a CPU, in minutes.

Steps (each a function, each reusing what an earlier run left in the workspace):
write the training config, build the digits data set, train a small ``mbv3`` supernet,
evaluate a few sub-networks, profile this machine's CPU through TVM, search with a
latency budget, fine-tune + measure + export + register the best and the knee of the
front, and write the report. Run it again and every step reuses its results.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from nas.workspace import add_workspace_argument, profile_path, workspace_dir

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
        help="the whole flow on built-in data and this CPU (minutes)",
        description="Build the offline digits data set, train a small mbv3 supernet, profile "
        "this CPU with TVM, search with a latency budget, fine-tune, measure, export and register "
        "the best and the knee, and write the report. Run it again to reuse the results.",
    )
    add_workspace_argument(parser)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: 150)")
    parser.add_argument("--trials", type=int, default=60, help="search trials (default: 60)")
    parser.add_argument("--finetune-epochs", type=int, default=2, help="fine-tuning epochs per pick (default: 2)")
    parser.add_argument("--profile-minutes", type=float, default=3.0,
                        help="time budget of the TVM profile of this CPU (default: 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def prepare_data(config: Any) -> Any:
    """Step 2: the digits splits (real scans shipped with scikit-learn, resized to 32x32)."""
    from nas.training.build import space_and_data

    _, splits, _ = space_and_data(config)
    d = splits.describe()
    print(f"[2/9] data: {d['name']}, {d['train']} train / {d['validation']} validation / "
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
    print(f"[1/9] config: {path}")
    return path


def train_supernet(config: Any, output: Path, progress: bool) -> Any:
    """Step 3: train the supernet, or resume it, or skip it when already trained."""
    from nas.training.loop import train

    start = time.perf_counter()
    result = train(config, output, progress=progress)
    took = time.perf_counter() - start
    loss = f", last loss {result.last_loss:.3f}" if result.last_loss is not None else ""
    print(f"[3/9] supernet: {result.step}/{result.total_steps} steps in {output} ({took:.0f} s{loss})")
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
                print(f"[4/9] sub-networks: evaluated before, reusing {cache}")
                return list(saved["rows"])
        except (json.JSONDecodeError, AttributeError, KeyError):
            pass  # unreadable: evaluate again and overwrite it
    archs = parse_archs(trained.space, ["min", "max", "random:3"], seed)
    rows = evaluate(trained, archs, "validation", 256)
    cache.write_text(json.dumps({"checkpoint_sha256": digest, "rows": rows}, indent=1))
    print(f"[4/9] sub-networks: accuracy on {rows[0]['samples']} validation images ({cache})")
    return rows


DEVICE = "this-cpu"
TARGET = {"kind": "llvm", "num-cores": 1}


def profile_cpu(workspace: Path, minutes: float, progress: bool) -> None:
    """Step 5: this CPU through TVM (blocks and whole networks, predictors fitted and validated)."""
    from nas.cli import main as cli

    path = profile_path(workspace, DEVICE)
    if path.is_file():
        print(f"[5/9] device: {DEVICE} profiled before, reusing {path}")
        return
    argv = ["profile", "--device", DEVICE, "--target", json.dumps(TARGET), "--space", "mbv3", "--preset", "small",
            "--budget-minutes", str(minutes), "--workspace", str(workspace)]
    _call(cli, argv + ([] if progress else ["--no-progress"]), "profiling this CPU")
    print(f"[5/9] device: {DEVICE} profiled through TVM ({path})")


def latency_budget(workspace: Path, space: Any, seed: int = 0) -> float:
    """The median predicted latency of 200 random sub-networks: a budget that rules out half."""
    import random

    import numpy as np

    from nas.search.costs import load_device

    cost = load_device(DEVICE, space, workspace)
    rng = random.Random(seed)
    predicted = cost.predict_latency_ms([space.sample(rng) for _ in range(200)])
    return float(np.round(np.median(predicted), 3))


def search(workspace: Path, output: Path, budget_ms: float, trials: int) -> dict[str, Any]:
    """Step 6: NSGA-II over accuracy (BN-recalibrated, cached) and predicted latency."""
    from nas.cli import main as cli

    result_path = workspace / "quickstart" / "search.json"
    argv = ["search", "--space", "mbv3", "--checkpoint", str(output), "--device", DEVICE,
            "--max-latency-ms", str(budget_ms), "--trials", str(trials), "--seed", "0",
            "--eval-device", "cpu", "--out", str(result_path), "--workspace", str(workspace)]
    _call(cli, argv, "searching")
    result = json.loads(result_path.read_text())
    print(f"[6/9] search: study {result['study']}, {result['trials']['complete']} trials, "
          f"{result['trials']['feasible']} within {budget_ms} ms ({result_path})")
    return result


def ship(workspace: Path, study: str, output: Path, epochs: int, progress: bool) -> None:
    """Step 7-8: the best and the knee, fine-tuned, measured on this CPU, exported, registered."""
    from nas.cli import main as cli

    for step, pick in (("7/9", "best"), ("8/9", "knee")):
        print(f"[{step}] {pick}: fine-tune, measure, export, register")
        argv = ["finetune", study, "--device", DEVICE, "--pick", pick, "--checkpoint", str(output),
                "--epochs", str(epochs), "--name", f"quickstart-{pick}", "--workspace", str(workspace)]
        _call(cli, argv + ([] if progress else ["--quiet"]), f"fine-tuning the {pick}")


def report(workspace: Path, study: str) -> Path:
    """Step 9: the HTML report (and PNG figures beside it)."""
    from nas.cli import main as cli

    out = workspace / "quickstart" / "report.html"
    _call(cli, ["report", study, "-o", str(out), "--workspace", str(workspace)], "writing the report")
    print(f"[9/9] report: {out.resolve()}")
    return out


def _call(cli: Any, argv: list[str], what: str) -> None:
    from nas.errors import EdgenasError

    code = cli(argv)
    if code:
        raise EdgenasError(f"quickstart stopped while {what} (the line above says why); fix it and run again")


def run(args: argparse.Namespace) -> int:
    from nas.commands.eval import format_table
    from nas.config import load_config
    from nas.training.config import TrainConfig

    if args.steps is not None and args.steps < 1:
        from nas.errors import EdgenasError

        raise EdgenasError(f"--steps must be at least 1, got {args.steps}")
    started = time.perf_counter()
    workspace = workspace_dir(args.workspace)
    directory = workspace / "quickstart"
    config_path = write_config(directory, args.steps)
    config = load_config(TrainConfig, config_path)
    prepare_data(config)
    output = Path(config.output_dir or directory / "supernet")
    train_supernet(config, output, not args.no_progress)
    rows = evaluate_subnets(output, config.seed)
    print()
    print(format_table(rows))
    print()
    profile_cpu(workspace, args.profile_minutes, not args.no_progress)
    from nas.training.restore import load_trained

    space = load_trained(output, "cpu").space
    budget = latency_budget(workspace, space)
    result = search(workspace, output, budget, args.trials)
    if result.get("recommended") is None:
        from nas.errors import EdgenasError

        raise EdgenasError(f"no arch met the {budget} ms budget in {args.trials} trials; run again with more --trials")
    ship(workspace, result["study"], output, args.finetune_epochs, not args.no_progress)
    page = report(workspace, result["study"])
    print(f"\nquickstart done in {time.perf_counter() - started:.0f} s. Open {page.resolve()}")
    print("next: `edgenas registry list`, `edgenas registry export quickstart-knee --format onnx --out dist/`")
    return 0
