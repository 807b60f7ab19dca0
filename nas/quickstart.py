"""The whole flow on embedded defaults, on a CPU, in minutes: what ``edgenas quickstart`` runs.

Steps, each a call of the library's own pipelines, each reusing what an earlier run left
in the workspace: write the training config, build the digits data set, train a small
``mbv3`` supernet (:func:`nas.training.train`), evaluate a few sub-networks
(:func:`nas.evaluation.evaluate_subnets`), profile this machine's CPU through TVM
(:func:`nas.profiling.profile_device`), search with a latency budget
(:func:`nas.search.search`), fine-tune + measure + export + register the best and the
knee of the front (:func:`nas.ship.ship`), and write the report
(:func:`nas.report.write_report`). Progress lines go to the ``edgenas`` logger.

Example::

    from nas.quickstart import QuickstartOptions, quickstart
    from nas.workspace import Workspace

    summary = quickstart(Workspace.resolve("edgenas-workspace"), QuickstartOptions(trials=60))
    summary.report
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import Workspace

log = logging.getLogger("edgenas.quickstart")

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
DEVICE = "this-cpu"
TARGET = {"kind": "llvm", "num-cores": 1}


@dataclass(frozen=True)
class QuickstartOptions:
    """Sizes of the quickstart (``steps`` ``None``: the config's 150, or what ``train.yaml`` says)."""

    steps: int | None = None
    trials: int = 60
    finetune_epochs: int = 2
    profile_minutes: float = 3.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise EdgenasError(f"--steps must be at least 1, got {self.steps}")
        if self.trials < 1 or self.finetune_epochs < 0 or self.profile_minutes <= 0:
            raise EdgenasError("--trials must be at least 1, --finetune-epochs at least 0, --profile-minutes positive")


@dataclass
class QuickstartSummary:
    """What the quickstart left behind, and where."""

    checkpoint: Path
    subnets: list[dict[str, Any]]
    budget_ms: float
    study: str
    registered: list[Any] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0


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
    log.info("[1/9] config: %s", path)
    return path


def prepare_data(config: Any) -> Any:
    """Step 2: the digits splits (real scans shipped with scikit-learn, resized to 32x32)."""
    from nas.training import space_and_data

    _, splits, _ = space_and_data(config)
    d = splits.describe()
    log.info("[2/9] data: %s, %d train / %d validation / %d calibration images at %dx%d, %d classes",
             d["name"], d["train"], d["validation"], d["calibration"], d["image_size"], d["image_size"], d["num_classes"])
    return splits


def train_supernet(config: Any, output: Path, progress: bool) -> Any:
    """Step 3: train the supernet, or resume it, or skip it when already trained."""
    from nas.training import train

    start = time.perf_counter()
    result = train(config, output, progress=progress)
    loss = f", last loss {result.last_loss:.3f}" if result.last_loss is not None else ""
    log.info("[3/9] supernet: %d/%d steps in %s (%.0f s%s)", result.step, result.total_steps, output,
             time.perf_counter() - start, loss)
    return result


def evaluate_subnets(output: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Step 4: smallest, largest and 3 random sub-networks, BN recalibrated.

    The table is saved in ``subnets.json`` with the checkpoint's sha256 and reused while
    the checkpoint is unchanged.
    """
    from nas.evaluation import evaluate_subnets as evaluate
    from nas.spaces import parse_arch_specs
    from nas.training import load_trained

    cache = output.parent / "subnets.json"
    trained = load_trained(output, "cpu")
    digest = trained.checkpoint.meta["sha256"]
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("checkpoint_sha256") == digest:
                log.info("[4/9] sub-networks: evaluated before, reusing %s", cache)
                return list(saved["rows"])
        except (json.JSONDecodeError, AttributeError, KeyError):
            pass  # unreadable: evaluate again and overwrite it
    archs = parse_arch_specs(trained.space, ["min", "max", "random:3"], seed)
    rows = evaluate(trained, archs, "validation", 256)
    cache.write_text(json.dumps({"checkpoint_sha256": digest, "rows": rows}, indent=1))
    log.info("[4/9] sub-networks: accuracy on %d validation images (%s)", rows[0]["samples"], cache)
    return rows


def profile_cpu(workspace: Workspace, minutes: float, progress: bool) -> None:
    """Step 5: this CPU through TVM (blocks and whole networks, predictors fitted and validated)."""
    from nas.profiling import profile_device, summary_line

    path = workspace.profile_path(DEVICE)
    if path.is_file():
        log.info("[5/9] device: %s profiled before, reusing %s", DEVICE, path)
        return
    profile = profile_device(workspace, DEVICE, TARGET, space="mbv3", preset="small", budget_minutes=minutes,
                             progress=progress)
    log.info("%s", summary_line(profile))
    log.info("[5/9] device: %s profiled through TVM (%s)", DEVICE, path)


def latency_budget(workspace: Workspace, space: Any, seed: int = 0) -> float:
    """The median predicted latency of 200 random sub-networks: a budget that rules out half."""
    import random

    import numpy as np

    model = workspace.cost_model(DEVICE, space)
    rng = random.Random(seed)
    predicted = model.predict([space.sample(rng) for _ in range(200)])["latency_ms"]
    return float(np.round(np.median(predicted), 3))


def search_subnets(workspace: Workspace, output: Path, budget_ms: float, trials: int, progress: bool) -> dict[str, Any]:
    """Step 6: the search over accuracy (BN-recalibrated, cached) and predicted latency."""
    from nas.search import Budget, SearchSettings, SearchSpec, search, write_json

    spec = SearchSpec(space="mbv3", space_options={}, devices=(DEVICE,), budget=Budget(max_latency_ms=budget_ms),
                      checkpoint=str(output), workspace=str(workspace.root), eval_device="cpu")
    result, _ = search(spec, SearchSettings(trials=trials, seed=0, buffered=True), quiet=not progress)
    path = workspace.quickstart_dir / "search.json"
    write_json(path, result)
    log.info("[6/9] search: study %s, %d trials, %d within %s ms (%s)", result["study"],
             result["trials"]["complete"], result["trials"]["feasible"], budget_ms, path)
    return result


def ship_picks(workspace: Workspace, study: str, output: Path, epochs: int, progress: bool) -> list[Any]:
    """Steps 7-8: the best and the knee, fine-tuned, measured on this CPU, exported, registered."""
    from nas.ship import ShipOptions, ship

    entries = []
    for step, pick in (("7/9", "best"), ("8/9", "knee")):
        log.info("[%s] %s: fine-tune, measure, export, register", step, pick)
        shipped = ship(workspace, study, DEVICE, ShipOptions(pick=pick, checkpoint=str(output), epochs=epochs,
                                                             name=f"quickstart-{pick}", torch_device="cpu",
                                                             progress=progress))
        if shipped.already_registered:
            log.info("%s: already registered as %s", pick, shipped.entry.ref)
        entries.append(shipped.entry)
    return entries


def quickstart(workspace: Workspace, options: QuickstartOptions = QuickstartOptions()) -> QuickstartSummary:
    """Run (or resume) the whole flow in ``workspace``; every step reuses what exists."""
    from nas.config import load_config
    from nas.evaluation import format_table
    from nas.report import write_report
    from nas.training import TrainConfig, load_trained

    started = time.perf_counter()
    directory = workspace.quickstart_dir
    config_path = write_config(directory, options.steps)
    config = load_config(TrainConfig, config_path)
    prepare_data(config)
    output = Path(config.output_dir or directory / "supernet")
    train_supernet(config, output, options.progress)
    rows = evaluate_subnets(output, config.seed)
    log.info("\n%s\n", format_table(rows))
    profile_cpu(workspace, options.profile_minutes, options.progress)
    space = load_trained(output, "cpu").space
    budget = latency_budget(workspace, space)
    result = search_subnets(workspace, output, budget, options.trials, options.progress)
    if result.get("recommended") is None:
        raise EdgenasError(f"no arch met the {budget} ms budget in {options.trials} trials; run again with more --trials")
    entries = ship_picks(workspace, result["study"], output, options.finetune_epochs, options.progress)
    page, _ = write_report(workspace, result["study"], out=directory / "report.html")
    log.info("[9/9] report: %s", page.resolve())
    return QuickstartSummary(output, rows, budget, result["study"], entries, page, time.perf_counter() - started)


__all__ = ["DEVICE", "QUICKSTART_CONFIG", "TARGET", "QuickstartOptions", "QuickstartSummary", "quickstart"]
