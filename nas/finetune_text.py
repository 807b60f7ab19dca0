"""Fine-tune an extracted language-model sub-network with distillation from the cloud model.

The text counterpart of :func:`nas.finetune.finetune_subnet` (which calls this for text
tasks, so ``edgenas finetune`` is the same command for every space). The student is
``supernet.extract(arch)``; the teacher is the supernet's largest sub-network, extracted
and frozen. The loss is next-token cross-entropy plus ``distill_weight`` times the KL
divergence from the teacher's next-token distribution (the loss training used,
:data:`nas.training.losses.NEXT_TOKEN`). An epoch is one pass over the training tokens in
windows of the supernet's context. The optimizer is AdamW at ``lr / 20`` (the default
``lr`` 0.02 is SGD's for image models; 0.001 suits AdamW on a pretrained transformer), and
no label smoothing (it inflates the loss a language model is scored by). Checkpoints and
exact resume as for images.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import EdgenasError
from nas.evaluation import EvalResult, next_token_loss
from nas.training.losses import NEXT_TOKEN

ADAMW_LR_FRACTION = 1 / 20
"""AdamW's learning rate as a fraction of ``FinetuneConfig.lr`` (whose default suits SGD)."""
EVAL_BATCH = 32


def finetune_text_subnet(trained: Any, arch: Any, config: Any, out_dir: str | Path, *,
                         progress: bool = True) -> tuple[nn.Module, EvalResult, EvalResult, int, float, int]:
    """Fine-tune ``arch`` of ``trained`` (a supernet of a text task); returns the fields of a
    :class:`~nas.finetune.FinetuneResult` in order (model, inherited and fine-tuned
    :class:`~nas.evaluation.EvalResult` with next-token ``loss`` and ``perplexity``, steps,
    seconds, the step it resumed from)."""
    from nas.training.checkpoint import resume_matching, save_checkpoint

    out = Path(out_dir)
    space, supernet, task, device = trained.space, trained.supernet, trained.task, trained.device
    identity = {"kind": "finetune", "arch": space.arch_to_json(arch), "finetune": asdict(config),
                "supernet_sha256": trained.checkpoint.meta.get("sha256")}
    validation = task.eval_batches("validation", EVAL_BATCH, device)
    student = supernet.extract(arch).to(device)
    inherited = next_token_loss(student, None, validation, context=arch.context)
    per_epoch = max(1, len(task.splits.train) // (config.batch_size * task.context))
    total = config.epochs * per_epoch
    lr = config.lr * ADAMW_LR_FRACTION
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=config.weight_decay)
    start = resume_matching(out, student, optimizer, identity)
    began = time.perf_counter()
    if start < total:
        teacher = supernet.extract(space.largest()).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        batches = task.train_batches(device, seed=config.seed, start_step=start, global_batch=config.batch_size)
        _train(student, teacher, arch, optimizer, config, lr, start, total, batches,
               lambda step: save_checkpoint(out, student, optimizer, {**identity, "step": step}), progress)
    finetuned = next_token_loss(student, None, validation, context=arch.context)
    return student.eval(), inherited, finetuned, total, time.perf_counter() - began, start


def _train(student: nn.Module, teacher: nn.Module, arch: Any, optimizer: torch.optim.Optimizer, config: Any,
           lr: float, start: int, total: int, batches: Any, save: Any, progress: bool) -> None:
    from tqdm import tqdm

    student.train()
    bar = tqdm(total=total, initial=start, desc="fine-tune", unit="step", disable=not progress)
    step = start
    try:
        for x, y in batches:
            if step >= total:
                break
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / max(1, total)))
            tokens, target = NEXT_TOKEN.inputs(x, arch), NEXT_TOKEN.targets(y, arch)
            logits = student(tokens).float()
            loss = NEXT_TOKEN.loss(logits, target, 0.0)
            if config.distill_weight > 0:
                with torch.no_grad():
                    soft = NEXT_TOKEN.teacher(teacher(tokens))
                loss = loss + config.distill_weight * NEXT_TOKEN.distill(logits, soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % config.checkpoint_every == 0 or step == total:
                save(step)
    except KeyboardInterrupt:
        if step > start:
            save(step)  # every finished step is kept; the same command resumes from here
        raise
    finally:
        bar.close()
        student.eval()
    if step < total:
        raise EdgenasError(f"fine-tuning ran out of training batches at step {step} of {total}")


__all__ = ["ADAMW_LR_FRACTION", "finetune_text_subnet"]
