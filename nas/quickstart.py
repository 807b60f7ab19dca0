"""The whole flow on embedded defaults, on a CPU, in minutes: what ``edgenas quickstart`` runs.

Steps, each a call of the library's own pipelines, each reusing what an earlier run left
in the workspace: write the training config, build the digits data set, train a small
``mbv3`` supernet (:func:`nas.training.train`), evaluate a few sub-networks
(:func:`nas.evaluation.evaluate_subnets`), profile this machine's CPU through TVM
(:func:`nas.profiling.profile_device`), search with a latency budget
(:func:`nas.search.search`), fine-tune + measure + export + register the best and the
knee of the front (:func:`nas.ship.ship`), and write the report
(:func:`nas.report.write_report`). Progress lines go to the ``edgenas`` logger.

``space="gpt"`` runs the same flow for a language model: a tiny ``gpt`` supernet on the
built-in pydoc corpus (CPython's own documentation topics), profiled for both of its
latencies (decode of one token after a KV cache, prefill of the context), searched under a
decode budget, and ends with a short text written by the largest and by each registered
sub-network. Its files live in ``quickstart/gpt`` and its device is ``this-cpu-gpt``.

Example::

    from nas.quickstart import QuickstartOptions, quickstart
    from nas.workspace import Workspace

    summary = quickstart(Workspace.resolve("edgenas-workspace"), QuickstartOptions(trials=60))
    summary.report
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
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
GPT_QUICKSTART_CONFIG: dict[str, Any] = {
    "seed": 0,
    "log_every": 10,
    "space": {"name": "gpt", "options": {"preset": "tiny", "contexts": [32, 64]}},
    "data": {"name": "pydoc", "eval_tokens": 8192},
    "train": {
        "steps": 150,
        "batch_size": 16,
        "num_random": 2,
        "optimizer": "adamw",
        "lr": 0.003,
        "warmup_steps": 10,
        "label_smoothing": 0.0,
        "device": "cpu",
        "threads": 1,
    },
    "checkpoint": {"every_steps": 25},
}
CONFIGS = {"mbv3": QUICKSTART_CONFIG, "gpt": GPT_QUICKSTART_CONFIG}
DEVICE = "this-cpu"
DEVICES = {"mbv3": DEVICE, "gpt": "this-cpu-gpt"}
TARGET = {"kind": "llvm", "num-cores": 1}
FINETUNE_EPOCHS = {"mbv3": 2, "gpt": 1}
SAMPLE_PROMPT = "def "
SAMPLE_TOKENS = 80


@dataclass(frozen=True)
class QuickstartOptions:
    """Sizes of the quickstart (``steps`` ``None``: the config's 150, or what ``train.yaml`` says)."""

    steps: int | None = None
    trials: int = 60
    finetune_epochs: int | None = None  # None: 2 for mbv3, 1 for gpt
    profile_minutes: float = 3.0
    progress: bool = True
    space: str = "mbv3"
    parallel_profile: bool = True  # profile beside training when two cores are free (ParallelProfile)

    def __post_init__(self) -> None:
        if self.space not in CONFIGS:
            raise EdgenasError(f"--space {self.space!r}: the quickstart runs {' or '.join(CONFIGS)}")
        if self.steps is not None and self.steps < 1:
            raise EdgenasError(f"--steps must be at least 1, got {self.steps}")
        if self.trials < 1 or (self.finetune_epochs or 0) < 0 or self.profile_minutes <= 0:
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
    samples: dict[str, str] = field(default_factory=dict)  # gpt: text written by each sub-network
    step_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step, in order

    def timing_line(self) -> str:
        """``train 283 s, profile 180 s, ...``: where the time went (a reused step takes ~0 s)."""
        return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.step_seconds.items())


def write_config(directory: Path, steps: int | None, space: str = "mbv3") -> Path:
    """Step 1: ``train.yaml`` in the quickstart directory (kept if it exists: edit it to experiment)."""
    import yaml

    path = directory / "train.yaml"
    if not path.exists() or steps is not None:
        config = json.loads(json.dumps(CONFIGS[space]))
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
    if d.get("kind") == "text":
        log.info("[2/9] data: %s, %d train / %d validation bytes, windows of %d", d["name"], d["train"],
                 d["validation"], d["context"])
        return splits
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
    what = "loss and perplexity on %d validation tokens" if "perplexity" in rows[0] else "accuracy on %d validation images"
    log.info("[4/9] sub-networks: " + what + " (%s)", rows[0]["samples"], cache)
    return rows


def profile_cpu(workspace: Workspace, minutes: float, progress: bool, space: Any = None, quiet: bool = False,
                state_wait_s: float = 20.0) -> None:
    """Step 5: this CPU through TVM (blocks and whole networks, predictors fitted and validated;
    for ``space`` gpt, both latencies). ``state_wait_s``: see ``edgenas profile --state-wait``."""
    from nas.profiling import profile_device

    name = space.name if space is not None else "mbv3"
    device = DEVICES[name]
    path = workspace.profile_path(device)
    if path.is_file():
        if not quiet:
            log.info("[5/9] device: %s profiled before, reusing %s", device, path)
        return
    profile_device(workspace, device, TARGET, space=space or "mbv3", preset=None if space else "small",
                   budget_minutes=minutes, progress=progress, state_wait_s=state_wait_s)
    if not quiet:
        log_profile(workspace, device)


def log_profile(workspace: Workspace, device: str) -> None:
    """The profile's one-line summary and where it is."""
    from latency_predictors.device_profile import DeviceProfile
    from nas.profiling import summary_line

    path = workspace.profile_path(device)
    log.info("%s", summary_line(DeviceProfile.load(path)))
    log.info("[5/9] device: %s profiled through TVM (%s)", device, path)


def _profile_child(root: str, config_path: str, minutes: float, cpus: list[int], results: Any) -> None:
    """Step 5 in a process of its own, on ``cpus``: what :func:`profile_cpu` does, quietly
    (the parent logs the outcome). Runs in a spawned process: module level, picklable.

    The state gate does not wait here (``state_wait_s=0``): the supernet training on the
    other core slows this core for the whole profile (work on one core slows the other on
    the project's 2-core VM), so a wait for the machine's fast state is a wait for training
    to end. With waits, a 3-minute profile beside training timed 21 blocks instead of 75,
    and predicted only 65 % of 20 never-seen networks within ±10 % (against 100 %). Without
    the gate its figures are drift corrected with the chosen exponent, as before the gate."""
    try:
        os.setsid()  # a group of its own: stopping it stops whatever it started (TVM workers)
        os.sched_setaffinity(0, cpus)
        from nas.config import load_config
        from nas.training import TrainConfig
        from nas.training.build import space_and_task

        config = load_config(TrainConfig, Path(config_path))
        space = space_and_task(config)[0] if config.space.name != "mbv3" else None
        profile_cpu(Workspace(Path(root)), minutes, progress=False, space=space, quiet=True, state_wait_s=0.0)
        results.put(("ok", ""))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, in one line
        results.put((type(exc).__name__, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))


class ParallelProfile:
    """The profile (step 5) running beside training (steps 3-4) on a core of its own.

    Training runs on one thread, and a profile times one core; on a machine with two or
    more cores the two need not wait for each other. The profile is drift corrected
    (every reading paired with a reference network), and so is every later measurement of
    the device, against the same baseline, so profiling while the other core trains does
    not bias what is measured later on a quiet machine. The parent stays off the
    profile's core while training; :meth:`wait` gives it its cores back.
    """

    def __init__(self, workspace: Workspace, config_path: Path, minutes: float) -> None:
        import multiprocessing

        self.cpus = sorted(os.sched_getaffinity(0))
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        self.results = ctx.Queue()
        self.process = ctx.Process(target=_profile_child, name="edgenas-quickstart-profile",
                                   args=(str(workspace.root), str(config_path), minutes, self.cpus[-1:], self.results))
        self.process.start()
        import torch

        self.threads = torch.get_num_threads()
        os.sched_setaffinity(0, self.cpus[:-1])
        torch.set_num_threads(min(self.threads, len(self.cpus) - 1))  # no more threads than cores left
        log.info("[5/9] device: profiling this CPU on core %d while the supernet trains on the other%s",
                 self.cpus[-1], "s" if len(self.cpus) > 2 else "")

    @staticmethod
    def possible(workspace: Workspace, device: str) -> bool:
        """Two or more cores this process may use, and no profile of ``device`` yet."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        return cores >= 2 and not workspace.profile_path(device).is_file()

    def wait(self) -> None:
        """Join the profile (raising its error, in one line) and restore this process's cores
        and threads."""
        try:
            self.process.join()
            kind, message = self.results.get(timeout=5) if not self.results.empty() else ("died", "")
        finally:
            self.stop()
        if kind != "ok":
            raise EdgenasError(f"profiling this CPU failed ({kind}: {message or 'exit code ' + str(self.process.exitcode)}); "
                               "run `edgenas quickstart` again to resume it")

    def stop(self) -> None:
        """Stop the profile if it still runs (an interrupted quickstart) and restore the cores;
        measurements it stored are kept and a later run resumes from them."""
        import signal

        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.process.is_alive():
                break
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):  # not yet its own group: the process alone
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, sig)
            self.process.join(10)
        import torch

        os.sched_setaffinity(0, self.cpus)
        torch.set_num_threads(self.threads)


def latency_budget(workspace: Workspace, space: Any, seed: int = 0) -> float:
    """The median predicted latency (the primary metric: decode for gpt) of 200 random
    sub-networks: a budget that rules out half."""
    import random

    import numpy as np

    model = workspace.cost_model(DEVICES[space.name], space)
    rng = random.Random(seed)
    predicted = model.predict([space.sample(rng) for _ in range(200)])[model.primary]
    return float(np.round(np.median(predicted), 3))


def search_subnets(workspace: Workspace, output: Path, budget_ms: float, trials: int, progress: bool,
                   space: str = "mbv3", directory: Path | None = None) -> dict[str, Any]:
    """Step 6: the search over accuracy (BN-recalibrated, cached; negative validation loss
    for gpt) and predicted latency (decode latency for gpt)."""
    from nas.search import Budget, SearchSettings, SearchSpec, search, write_json

    budget = Budget(max_decode_ms=budget_ms) if space == "gpt" else Budget(max_latency_ms=budget_ms)
    spec = SearchSpec(space=space, space_options={}, devices=(DEVICES[space],), budget=budget,
                      checkpoint=str(output), workspace=str(workspace.root), eval_device="cpu")
    result, _ = search(spec, SearchSettings(trials=trials, seed=0, buffered=True), quiet=not progress)
    path = (directory or workspace.quickstart_dir) / "search.json"
    write_json(path, result)
    log.info("[6/9] search: study %s, %d trials, %d within %s ms (%s)", result["study"],
             result["trials"]["complete"], result["trials"]["feasible"], budget_ms, path)
    return result


def ship_picks(workspace: Workspace, study: str, output: Path, epochs: int, progress: bool,
               space: str = "mbv3", seconds: dict[str, float] | None = None) -> list[Any]:
    """Steps 7-8: the best and the knee, fine-tuned, measured on this CPU, exported, registered
    (the wall time of each is put in ``seconds``, by pick)."""
    from nas.ship import ShipOptions, ship

    entries = []
    prefix = "quickstart" if space == "mbv3" else f"quickstart-{space}"
    for step, pick in (("7/9", "best"), ("8/9", "knee")):
        start = time.perf_counter()
        log.info("[%s] %s: fine-tune, measure, export, register", step, pick)
        shipped = ship(workspace, study, DEVICES[space], ShipOptions(pick=pick, checkpoint=str(output), epochs=epochs,
                                                                     name=f"{prefix}-{pick}", torch_device="cpu",
                                                                     progress=progress))
        if shipped.already_registered:
            log.info("%s: already registered as %s", pick, shipped.entry.ref)
        entries.append(shipped.entry)
        if seconds is not None:
            seconds[pick] = time.perf_counter() - start
    return entries


def quickstart(workspace: Workspace, options: QuickstartOptions = QuickstartOptions()) -> QuickstartSummary:
    """Run (or resume) the whole flow in ``workspace``; every step reuses what exists."""
    from nas.config import load_config
    from nas.evaluation import format_table
    from nas.report import write_report
    from nas.training import TrainConfig, load_trained

    started = last = time.perf_counter()
    steps: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[step], last = now - last, now

    name = options.space
    directory = workspace.quickstart_dir if name == "mbv3" else workspace.quickstart_dir / name
    config_path = write_config(directory, options.steps, name)
    config = load_config(TrainConfig, config_path)
    prepare_data(config)
    lap("data")
    output = Path(config.output_dir or directory / "supernet")
    beside = (ParallelProfile(workspace, config_path, options.profile_minutes)
              if options.parallel_profile and ParallelProfile.possible(workspace, DEVICES[name]) else None)
    try:
        train_supernet(config, output, options.progress)
        lap("train")
        rows = evaluate_subnets(output, config.seed)
        log.info("\n%s\n", format_table(rows))
        lap("evaluate")
        space = load_trained(output, "cpu").space
        if beside is not None:
            beside.wait()
            log_profile(workspace, DEVICES[name])
            lap("profile (after training)")
        else:
            profile_cpu(workspace, options.profile_minutes, options.progress, space if name != "mbv3" else None)
            lap("profile")
    finally:
        if beside is not None:
            beside.stop()
    budget = latency_budget(workspace, space)
    result = search_subnets(workspace, output, budget, options.trials, options.progress, name, directory)
    if result.get("recommended") is None:
        raise EdgenasError(f"no arch met the {budget} ms budget in {options.trials} trials; run again with more --trials")
    lap("search")
    epochs = options.finetune_epochs if options.finetune_epochs is not None else FINETUNE_EPOCHS[name]
    picks: dict[str, float] = {}
    entries = ship_picks(workspace, result["study"], output, epochs, options.progress, name, picks)
    steps.update({f"ship {pick}": s for pick, s in picks.items()})
    last = time.perf_counter()
    page, _ = write_report(workspace, result["study"], out=directory / "report.html")
    log.info("[9/9] report: %s", page.resolve())
    samples = write_samples(workspace, output, entries) if name == "gpt" else {}
    lap("report")
    return QuickstartSummary(output, rows, budget, result["study"], entries, page, time.perf_counter() - started,
                             samples, steps)


def write_samples(workspace: Workspace, output: Path, entries: list[Any]) -> dict[str, str]:
    """A short greedy continuation of :data:`SAMPLE_PROMPT` by the largest sub-network of the
    supernet and by each registered one (what a user of each would read)."""
    from nas.data.text import decode, encode
    from nas.generate import generate
    from nas.training import load_trained

    trained = load_trained(output, "cpu")
    models = {"largest": trained.supernet.extract(trained.space.largest()).eval()}
    registry = workspace.registry()
    for entry in entries:
        models[entry.ref] = registry.load_model(entry.ref)
    out = {}
    for label, model in models.items():
        ids = generate(model, encode(SAMPLE_PROMPT), SAMPLE_TOKENS)
        out[label] = SAMPLE_PROMPT + decode(ids)  # the command prints them (also under --quiet)
    return out


__all__ = ["DEVICE", "DEVICES", "GPT_QUICKSTART_CONFIG", "QUICKSTART_CONFIG", "TARGET", "QuickstartOptions", "QuickstartSummary", "quickstart"]
