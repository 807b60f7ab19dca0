"""Rank fidelity of the gpt supernet: inherited-weight loss against training from scratch.

The question every weight-sharing user asks: does a sub-network's loss with weights
inherited from the supernet rank archs as training them alone would? This trains a tiny
``gpt`` supernet on the built-in ``pydoc`` corpus with ``edgenas train`` (sandwich rule;
the smaller sub-networks learn half from the largest's predictions, half from the labels,
the library's default for language models), picks ``--archs`` sub-networks spread evenly over the FLOPs range
(smallest and largest included), and for each measures

* the validation loss with inherited weights (the supernet, nothing retrained), and
* the validation loss of the same arch trained from scratch as a static model on the
  same batches (same seed and data order, so the same tokens the supernet saw), the same
  number of steps, optimizer and learning-rate schedule,

both on the same validation tokens. Kendall's tau between the two rankings is the figure
(target >= 0.8); Spearman's rho beside it. The archs are fixed (from the space and the
seed) before anything is trained. Everything runs on the CPU; ``--jobs 2`` trains the
static models in a second process while the supernet trains (the same figures, one
thread each).

Full run (about 25 minutes on 2 shared cores with ``--jobs 2``, 45 without)::

    python experiments/bench/gpt_rank_fidelity.py --progressive --threads 1 --steps 600 --eval-tokens 49792 \
        --jobs 2 --out experiments/results/gpt_rank_fidelity.json

CI-sized::

    python experiments/bench/gpt_rank_fidelity.py --smoke
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402

from nas.config import load_config  # noqa: E402
from nas.evaluation import next_token_loss  # noqa: E402
from nas.training import TrainConfig, load_trained, space_and_task, train  # noqa: E402
from nas.training.losses import NEXT_TOKEN  # noqa: E402
from nas.training.optim import lr_at, make_optimizer, set_lr  # noqa: E402


def config(args: argparse.Namespace) -> TrainConfig:
    """The supernet's training config: plain sandwich, or progressive shrinking (25 % largest,
    15 % depth, 20 % heads, 40 % width; the shrinking phases at half the learning rate)."""
    train_section = {
        "batch_size": args.batch, "num_random": 2, "optimizer": "adamw", "lr": args.lr, "weight_decay": 0.1,
        "betas": [0.9, 0.95], "warmup_steps": max(1, args.steps // 20), "min_lr": args.lr / 10,
        "label_smoothing": 0.0, "grad_clip": 1.0, "device": "cpu", "amp": "none",
    }
    if args.threads:
        train_section["threads"] = args.threads
    if args.distill_weight is not None:
        train_section["distill_weight"] = args.distill_weight
    if args.progressive:  # the largest first (a trained teacher), then the shrinking phases at half the lr
        largest, depth, heads = args.steps // 4, (3 * args.steps) // 20, args.steps // 5
        train_section.update(steps=None, progressive=True, phases=[
            {"name": "largest", "steps": largest},
            {"name": "depth", "steps": depth, "lr": args.lr / 2},
            {"name": "heads", "steps": heads, "lr": args.lr / 2},
            {"name": "width", "steps": args.steps - largest - depth - heads, "lr": args.lr / 2},
        ])
    else:
        train_section["steps"] = args.steps
    return load_config(TrainConfig, {
        "seed": args.seed,
        "log_every": max(1, args.steps // 10),
        "space": {"name": "gpt", "options": {"preset": "tiny", **args.space_options}},
        "data": {"name": "pydoc", "eval_tokens": args.eval_tokens},
        "train": train_section,
        "checkpoint": {"every_steps": args.steps},
    })


def spread_archs(space, count: int, seed: int) -> list:
    """``count`` archs at evenly spaced FLOPs quantiles of 2,000 samples (smallest and largest included)."""
    rng = random.Random(seed)
    pool = {space.arch_key(a): a for a in [space.smallest(), space.largest()]}
    for _ in range(2000):
        arch = space.sample(rng)
        pool.setdefault(space.arch_key(arch), arch)
    ranked = sorted(pool.values(), key=lambda a: (space.flops(a), space.arch_key(a)))
    picks = sorted({round(i * (len(ranked) - 1) / (count - 1)) for i in range(count)})
    return [ranked[i] for i in picks]


def train_static(space, arch, task, cfg: TrainConfig) -> torch.nn.Module:
    """``arch`` from scratch as a static model, on the batches and schedule the supernet had."""
    tc = cfg.train
    torch.manual_seed(cfg.seed)
    model = space.build_static(arch).train()
    optimizer = make_optimizer(model, tc, tc.lr)
    total = tc.total_steps
    batches = task.train_batches(torch.device("cpu"), seed=cfg.seed, start_step=0, global_batch=tc.batch_size)
    for step in range(total):
        set_lr(optimizer, lr_at(step, total, tc.lr, tc.warmup_steps, tc.min_lr))
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = NEXT_TOKEN.loss(model(NEXT_TOKEN.inputs(x, arch)), NEXT_TOKEN.targets(y, arch), 0.0)
        loss.backward()
        if tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
    return model.eval()


def scratch_loss(cfg: TrainConfig, arch, threads: int, space=None, task=None) -> tuple[float, float]:
    """Validation loss of ``arch`` trained from scratch (:func:`train_static`) and the seconds
    that took; runs in a worker process too (``--jobs``), rebuilding space and data from ``cfg``."""
    if threads:
        torch.set_num_threads(threads)
    if space is None or task is None:
        space, task, _ = space_and_task(cfg)
    validation = task.eval_batches("validation", 64, torch.device("cpu"))
    start = time.perf_counter()
    model = train_static(space, arch, task, cfg)
    seconds = time.perf_counter() - start
    return next_token_loss(model, None, validation, context=arch.context).loss, seconds


def kendall_spearman(a: list[float], b: list[float]) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(kendalltau(a, b).statistic), float(spearmanr(a, b).statistic)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CI size: a few steps, 8 archs, few eval tokens")
    parser.add_argument("--steps", type=int, default=800, help="supernet (and each static model's) steps")
    parser.add_argument("--batch", type=int, default=16, help="windows of 128 bytes per step")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak lr (static models and the largest phase)")
    parser.add_argument("--archs", type=int, default=8, help="sub-networks compared (at least 8)")
    parser.add_argument("--eval-tokens", type=int, default=32768, help="validation tokens per loss")
    parser.add_argument("--progressive", action="store_true", help="progressive shrinking (depth, heads, width)")
    parser.add_argument("--distill-weight", type=float, default=None,
                        help="share of a student's loss from the teacher (default: the library's, 0.5 for gpt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes: with 2, the static models train beside the supernet (same results)")
    parser.add_argument("--run-dir", default=None, help="keep the supernet here (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write figures to this JSON file")
    args = parser.parse_args(argv)
    args.space_options = {}
    if args.smoke:
        args.steps, args.batch, args.archs, args.eval_tokens = 6, 4, 8, 1024
        args.space_options = {"contexts": [32, 64]}
        args.threads = args.threads or 1
    if args.archs < 2:
        parser.error("--archs must be at least 2")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config(args)
    load_start = os.getloadavg()
    space, task, _ = space_and_task(cfg)
    archs = spread_archs(space, args.archs, args.seed)  # fixed before any loss is seen
    validation = task.eval_batches("validation", 64, torch.device("cpu"))
    pool = ProcessPoolExecutor(args.jobs - 1, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 else None
    try:
        # the static models need nothing from the supernet: with --jobs they train beside it
        pending = [pool.submit(scratch_loss, cfg, a, args.threads) for a in archs] if pool else []
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(args.run_dir or Path(tmp) / "supernet")
            start = time.perf_counter()
            train(cfg, run, progress=False)
            supernet_s = time.perf_counter() - start
            trained = load_trained(run, "cpu")
        inherited = [next_token_loss(trained.supernet, a, validation).loss for a in archs]
        done = ([f.result() for f in pending] if pool else
                [scratch_loss(cfg, a, args.threads, space, task) for a in archs])
        scratch, static_s = [loss for loss, _ in done], sum(seconds for _, seconds in done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    tau, rho = kendall_spearman(inherited, scratch)

    tokens = cfg.train.total_steps * task.items(cfg.train.batch_size)
    run_config = {
        "space": "gpt/tiny", "data": "pydoc", "steps": cfg.train.total_steps, "batch": cfg.train.batch_size,
        "context": task.context, "tokens_seen": tokens, "archs": len(archs), "eval_tokens": validation.tokens,
        "progressive": args.progressive, "distill_weight": (
            cfg.train.distill_weight if cfg.train.distill_weight is not None else task.loss.distill_weight), "seed": args.seed,
        "smoke": args.smoke, "torch": torch.__version__, "jobs": args.jobs,
        "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]},
    }
    rows = [{"arch": str(a), "mflops": round(space.flops(a) / 1e6, 2), "inherited_loss": round(i, 4),
             "scratch_loss": round(s, 4)} for a, i, s in zip(archs, inherited, scratch)]
    records: list[dict] = []
    name = "gpt_rank_fidelity"
    dev = device_name("cpu")
    emit(records, name, "kendall_tau", round(tau, 3), "tau", dev, {**run_config, "target": ">= 0.8", "rows": rows})
    emit(records, name, "spearman_rho", round(rho, 3), "rho", dev, run_config)
    emit(records, name, "largest_inherited_loss", round(inherited[-1], 4), "nats/byte", dev, run_config)
    emit(records, name, "smallest_inherited_loss", round(inherited[0], 4), "nats/byte", dev, run_config)
    emit(records, name, "supernet_train_time", round(supernet_s, 1), "s", dev, run_config)
    emit(records, name, "static_train_time", round(static_s, 1), "s", dev,
         {**run_config, "note": "all archs from scratch, summed over the models"})
    if args.out:
        write_results(records, name, args.out)
    return records


if __name__ == "__main__":
    main()
