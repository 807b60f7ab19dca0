"""``edgenas train``: the supernet training loop, top to bottom.

Per step: pick the phase, sample the step's archs from an RNG seeded by ``(seed, step)``,
take this rank's share of the step's batch, run :func:`sandwich_step` (gradients and BN
statistics averaged across ranks in ``before_step``), save a checkpoint every
``checkpoint.every_steps``. Everything a step depends on is either a function of the step
or in the checkpoint, so a run resumed after a kill ends with bit-identical weights.
What the batches hold and how each sub-network is scored comes from the space's task
(:mod:`nas.tasks`: images and labels for mbv3, token windows for gpt).
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nas.config import config_to_dict
from nas.errors import EdgenasError
from nas.training.build import space_and_task
from nas.training.checkpoint import (
    Checkpoint,
    find_checkpoint,
    load_model_state,
    read_checkpoint,
    restore_optimizer,
    restore_rng,
    save_checkpoint,
)
from nas.training.config import RESUMABLE_KEYS, TrainConfig
from nas.training.distributed import DistContext, setup, teardown
from nas.training.optim import lr_at, make_optimizer, set_lr
from nas.training.phases import Phase, locate, resolve_phases
from nas.training.sandwich import sandwich_step


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended: output directory, step reached, total steps, weights' sha256."""

    output_dir: Path
    step: int
    total_steps: int
    fingerprint: str
    last_loss: float | None


def run_dir(cfg: TrainConfig, config_path: str | Path, out_dir: str | Path | None = None,
            workspace: str | Path | None = None) -> Path:
    """Where a run goes: ``out_dir``, else the config's ``output_dir``, else ``WORKSPACE/runs/CONFIG_NAME``."""
    from nas.workspace import Workspace

    if out_dir:
        return Path(out_dir)
    if cfg.output_dir:
        return Path(cfg.output_dir)
    return Workspace.resolve(workspace).run_dir(Path(config_path).stem)


def train(
    cfg: TrainConfig,
    output_dir: str | Path,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) the supernet of ``cfg`` into ``output_dir``.

    An existing checkpoint there is resumed automatically; ``resume=True`` insists on one.
    ``max_steps`` stops early (the run resumes later as if never stopped). ``train.threads``
    holds for the run only: the caller's thread count is restored after (the quickstart
    evaluates and fine-tunes in the same process).
    """
    threads = torch.get_num_threads()
    ctx = setup(cfg.train.device)
    try:
        return _train(cfg, Path(output_dir), ctx, resume, max_steps, progress)
    finally:
        teardown(ctx)
        torch.set_num_threads(threads)


def _train(
    cfg: TrainConfig, out: Path, ctx: DistContext, resume: bool, max_steps: int | None, progress: bool
) -> TrainResult:
    tc = cfg.train
    if tc.threads is not None and ctx.device.type == "cpu":
        torch.set_num_threads(tc.threads)
    if tc.batch_size % ctx.world_size:
        raise EdgenasError(
            f"train.batch_size ({tc.batch_size}) must be divisible by the number of processes ({ctx.world_size})"
        )
    ckpt = _existing_checkpoint(out, cfg, resume)
    space, task, options = space_and_task(cfg)
    task.check_batch_size(tc.batch_size)
    phases = resolve_phases(tc, space)
    total = phases[-1].start + phases[-1].steps
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    supernet = space.build_supernet().to(ctx.device)
    channels_last = tc.channels_last if tc.channels_last is not None else (
        ctx.device.type == "cuda" and task.prefers_channels_last)
    if channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if tc.amp == "bf16" or (tc.amp == "auto" and ctx.device.type == "cuda") else None
    meta = {
        "space": space.describe(),
        "space_config": {"name": cfg.space.name, "options": options},
        "config": config_to_dict(cfg),
        "data": task.describe(),
        "seed": cfg.seed,
        "world_size": ctx.world_size,
        "total_steps": total,
    }
    if ckpt is not None:
        _check_same_space(ckpt, meta)
        load_model_state(supernet, ckpt)
    step = ctx.agree(ckpt.step if ckpt is not None else 0)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        note = f"resuming from step {step}/{total}" if ckpt is not None else f"training {total} steps"
        print(f"edgenas train: {note} into {out} ({ctx.world_size} process(es), {ctx.device.type})", file=sys.stderr)
    if step >= total:
        return TrainResult(out, step, total, ctx.check_in_sync(supernet), None)

    batches = task.train_batches(
        ctx.device,
        seed=cfg.seed,
        start_step=step,
        global_batch=tc.batch_size,
        rank=ctx.rank,
        world_size=ctx.world_size,
        workers=cfg.data.workers,
        channels_last=channels_last,
    )
    if ckpt is not None:
        restore_rng(ckpt)
    stop_at = total if max_steps is None else min(total, max_steps)
    optimizer: torch.optim.Optimizer | None = None
    current: Phase | None = None
    stop = {"requested": False, "agreed": False}
    last_loss: float | None = None
    bar = tqdm(total=total, initial=step, unit="step", disable=not (progress and ctx.is_main), dynamic_ncols=True)
    window_start, window_items = time.perf_counter(), 0
    # wall time spent training, summed over interrupted runs (reports quote it)
    run_start = time.perf_counter()
    earlier_seconds = float(ckpt.meta.get("train_seconds", 0.0)) if ckpt is not None else 0.0

    def before_step() -> None:
        stop["agreed"] = ctx.sync(supernet, stop["requested"])

    def save(step_done: int, phase: Phase) -> None:
        digest = ctx.check_in_sync(supernet)
        if ctx.is_main:
            state = {**meta, "step": step_done, "phase": phase.name, "phase_index": phase.index,
                     "train_seconds": round(earlier_seconds + time.perf_counter() - run_start, 1)}
            state["optimizer_phase"] = phase.index
            state["fingerprint"] = digest
            save_checkpoint(out, supernet, optimizer, state, keep=cfg.checkpoint.keep)

    with _stop_on_signals(stop), bar:
        while step < stop_at:
            phase, local = locate(phases, step)
            if phase is not current:
                if local == 0 and phase.sort_channels:
                    supernet.sort_channels()
                optimizer = make_optimizer(supernet, tc, phase.lr)
                if ckpt is not None and ckpt.meta.get("optimizer_phase") == phase.index and local > 0:
                    restore_optimizer(optimizer, ckpt)
                current = phase
            assert optimizer is not None
            set_lr(optimizer, lr_at(local, phase.steps, phase.lr, tc.warmup_steps, tc.min_lr))
            archs = phase.archs(space, random.Random(cfg.seed * 1_000_003 + step), tc.num_random)
            inputs, targets = next(batches)
            stats = sandwich_step(
                supernet,
                archs,
                inputs,
                targets,
                optimizer,
                loss=task.loss,
                distill=tc.distill,
                distill_weight=tc.distill_weight,
                label_smoothing=tc.label_smoothing,
                amp_dtype=amp_dtype,
                grad_clip=tc.grad_clip,
                before_step=before_step,
            )
            step += 1
            last_loss = stats.loss
            window_items += task.items(tc.batch_size)
            if step % cfg.log_every == 0 or step == stop_at:
                rate = window_items / max(1e-9, time.perf_counter() - window_start)
                window_start, window_items = time.perf_counter(), 0
                bar.set_postfix({"phase": phase.name, "loss": f"{last_loss:.3f}", f"{task.unit}/s": f"{rate:.0f}"},
                                refresh=False)
                if ctx.is_main:
                    _log(out, step, phase, stats.losses, optimizer, f"{task.unit}_per_s", rate)
            bar.update(1)
            if stop["agreed"] or step % cfg.checkpoint.every_steps == 0 or step == stop_at:
                save(step, phase)
            if stop["agreed"]:
                raise KeyboardInterrupt
    digest = ctx.check_in_sync(supernet)
    if ctx.enabled:
        print(f"edgenas train: rank {ctx.rank}/{ctx.world_size} weights sha256 {digest}", file=sys.stderr)
    return TrainResult(out, step, total, digest, last_loss)


def _existing_checkpoint(out: Path, cfg: TrainConfig, resume: bool) -> Checkpoint | None:
    if find_checkpoint(out) is None:
        if resume:
            raise EdgenasError(f"--resume: {out} holds no checkpoint; drop --resume to start a new run")
        return None
    ckpt = read_checkpoint(out)
    _check_same_config(ckpt, config_to_dict(cfg), out)
    return ckpt


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _check_same_config(ckpt: Checkpoint, config: dict[str, Any], out: Path) -> None:
    old = _flatten(json.loads(json.dumps(ckpt.meta.get("config", {}))))
    new = _flatten(json.loads(json.dumps(config)))
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_KEYS or any(key.startswith(k + ".") for k in RESUMABLE_KEYS):
            continue
        if old.get(key) != new.get(key):
            raise EdgenasError(
                f"{out} holds a checkpoint of another config ({key}: {old.get(key)!r} there, {new.get(key)!r} now); "
                "use another output directory, or delete that one to start over"
            )


def _check_same_space(ckpt: Checkpoint, meta: dict[str, Any]) -> None:
    saved = json.loads(json.dumps(ckpt.meta.get("space")))
    if saved != json.loads(json.dumps(meta["space"])):
        raise EdgenasError(
            f"{ckpt.path} is a checkpoint of another space ({saved.get('name') if isinstance(saved, dict) else saved}, "
            f"preset {saved.get('preset') if isinstance(saved, dict) else '?'}); use another output directory"
        )


def _log(out: Path, step: int, phase: Phase, losses: list[float], optimizer: Any, rate_key: str,
         rate: float) -> None:
    record = {
        "step": step,
        "phase": phase.name,
        "loss": sum(losses) / len(losses),
        "losses": losses,
        "lr": optimizer.param_groups[0]["lr"],
        rate_key: round(rate, 1),
        "time": time.time(),
    }
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


@contextmanager
def _stop_on_signals(stop: dict[str, bool]) -> Iterator[None]:
    """SIGINT / SIGTERM ask the loop to save and stop after the current step."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        stop["requested"] = True
        print("\nedgenas train: stopping after this step (saving a checkpoint)...", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
