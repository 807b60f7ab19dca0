"""Fine-tune an extracted sub-network with distillation from the cloud model.

The student is ``supernet.extract(arch)`` with BN statistics recalibrated for it; the
teacher is the supernet's largest sub-network, extracted and recalibrated the same way
and frozen. The loss is cross-entropy on the labels plus ``distill_weight`` times the
cross-entropy against the teacher's softmax (OFA's fine-tuning). Progress is saved every
``checkpoint_every`` steps in safetensors (weights, optimizer, RNG), so an interrupted
fine-tune resumes exactly; a finished one is read back instead of being run again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import EdgenasError
from nas.evaluation import EvalResult, accuracy, calibrated_subnet
from nas.training.sandwich import resize_to, soft_cross_entropy


@dataclass(frozen=True)
class FinetuneConfig:
    """How long and how to fine-tune (the ``finetune:`` settings; CLI flags override)."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.02
    weight_decay: float = 4e-5
    distill_weight: float = 1.0
    label_smoothing: float = 0.1
    checkpoint_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs must be >= 0, batch_size >= 1 and lr > 0")
        if self.distill_weight < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("distill_weight must be >= 0 and label_smoothing in [0, 1)")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")


@dataclass
class FinetuneResult:
    """The fine-tuned model and its accuracy before (inherited) and after."""

    model: nn.Module
    inherited: EvalResult
    finetuned: EvalResult
    steps: int
    seconds: float
    resumed_from: int


def finetune_subnet(
    trained: Any,
    arch: Any,
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``arch`` of ``trained`` (a :class:`nas.training.restore.TrainedSupernet`).

    ``out_dir`` holds the fine-tune's checkpoint; it must belong to the same arch, config
    and supernet checkpoint, or the call stops with an error rather than mixing runs.
    Language models (text tasks) are fine-tuned by :mod:`nas.finetune_text`.
    """
    from nas.data import EvalBatches, Normalizer, train_batches
    from nas.tasks import ImageTask
    from nas.training.checkpoint import resume_matching, save_checkpoint

    if not isinstance(trained.task, ImageTask):
        from nas.finetune_text import finetune_text_subnet

        return FinetuneResult(*finetune_text_subnet(trained, arch, config, out_dir, progress=progress))
    out = Path(out_dir)
    space, supernet, splits, device = trained.space, trained.supernet, trained.splits, trained.device
    identity = {
        "kind": "finetune",
        "arch": space.arch_to_json(arch),
        "finetune": asdict(config),
        "supernet_sha256": trained.checkpoint.meta.get("sha256"),
    }
    cuda = device.type == "cuda"
    amp = torch.bfloat16 if cuda else None
    norm = Normalizer(splits.mean, splits.std, device, cuda)
    calibration = EvalBatches(splits.calibration, norm, 256, splits.image_size)
    validation = EvalBatches(splits.validation, norm, 256, splits.image_size)
    res = arch.resolution

    student = calibrated_subnet(supernet, arch, calibration, amp).to(device)
    inherited = accuracy(student, None, validation, amp, resolution=res)
    per_epoch = max(1, len(splits.train) // config.batch_size)
    total = config.epochs * per_epoch
    optimizer = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                weight_decay=config.weight_decay)
    start = resume_matching(out, student, optimizer, identity)
    began = time.perf_counter()
    if start < total:
        teacher_arch = space.largest()
        teacher = calibrated_subnet(supernet, teacher_arch, calibration, amp).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        _train(student, teacher, teacher_arch.resolution, res, optimizer, config, start, total,
               train_batches(splits.train, norm, image_size=splits.image_size, augment=splits.augment,
                             seed=config.seed, start_step=start, global_batch=config.batch_size),
               lambda step: save_checkpoint(out, student, optimizer, {**identity, "step": step}),
               amp, progress)
    finetuned = accuracy(student, None, validation, amp, resolution=res)
    return FinetuneResult(student.eval(), inherited, finetuned, total, time.perf_counter() - began, start)


def _train(
    student: nn.Module,
    teacher: nn.Module,
    teacher_res: int,
    res: int,
    optimizer: torch.optim.Optimizer,
    config: FinetuneConfig,
    start: int,
    total: int,
    batches: Any,
    save: Any,
    amp: torch.dtype | None,
    progress: bool,
) -> None:
    from tqdm import tqdm

    student.train()
    bar = tqdm(total=total, initial=start, desc="fine-tune", unit="step", disable=not progress)
    step = start
    buffers = list(student.buffers())
    try:
        for images, labels in batches:
            if step >= total:
                break
            # BN statistics as of the last finished step: a forward pass interrupted
            # mid-step must not leave its update in the saved state
            before = [b.clone() for b in buffers]
            lr = 0.5 * config.lr * (1 + math.cos(math.pi * step / max(1, total)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = resize_to(images, res)
            with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = student(x).float()
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
                if config.distill_weight > 0:
                    with torch.no_grad():
                        soft = F.softmax(teacher(resize_to(images, teacher_res)).float(), dim=-1)
                    loss = loss + config.distill_weight * soft_cross_entropy(logits, soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4f}")
            if step % config.checkpoint_every == 0 or step == total:
                save(step)
    except KeyboardInterrupt:
        if step > start:
            with torch.no_grad():
                for buffer, saved in zip(buffers, before):
                    buffer.copy_(saved)
            save(step)  # keep every finished step; the same command resumes from here
        raise
    finally:
        bar.close()
        student.eval()
    if step < total:
        raise EdgenasError(f"fine-tuning ran out of training batches at step {step} of {total}")
