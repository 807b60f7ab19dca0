"""gpt supernet: training tokens/s of a sandwich step against static models, and evaluation speed.

Training: one sandwich step = largest + smallest + N random sub-networks of the ``gpt``
supernet on one batch of token windows, KL-divergence distillation from the largest, one
AdamW step. The baseline trains the very same sub-networks, extracted as plain static
models, one AdamW step each on the same batch (each folded to its own context, as in the
sandwich). The primary figure is the ratio (sandwich step time / sum of the static steps;
target <= 1.3): the static sub-networks are the limit of what weight sharing can reach.

Evaluation: new sub-networks (never evaluated before) scored in place on a fixed number
of validation tokens (:func:`nas.evaluation.next_token_loss`, what the search's accuracy
source runs): sub-networks per second and tokens per second.

GPU (bf16, the small preset, context 1024)::

    python experiments/bench/gpt_throughput.py --device cuda --preset small --batch 32

CPU, tiny preset (runs anywhere)::

    python experiments/bench/gpt_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402

from nas.evaluation import next_token_loss  # noqa: E402
from nas.training.losses import NEXT_TOKEN  # noqa: E402
from nas.training.sandwich import sandwich_archs, sandwich_step  # noqa: E402
from search_spaces import get_space  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _static_step(model, arch, optimizer, x, y, amp_dtype) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(NEXT_TOKEN.inputs(x, arch))
    NEXT_TOKEN.loss(logits, NEXT_TOKEN.targets(y, arch), 0.0).backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small CPU run (tiny preset, 3 timed steps)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=32, help="token windows per step (of the longest context)")
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (distinct arch sets)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes over half the arch sets")
    parser.add_argument("--eval-archs", type=int, default=10, help="sub-networks timed for evaluation")
    parser.add_argument("--eval-tokens", type=int, default=32768, help="tokens each evaluation scores")
    parser.add_argument("--eval-batch", type=int, default=64, help="windows per evaluation batch")
    parser.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast on the GPU")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--out", default=None, help="write figures to this JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.preset, args.batch, args.steps = "cpu", "tiny", 16, 3
        args.eval_archs, args.eval_tokens = 4, 8192
        args.threads = args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    amp = torch.bfloat16 if cuda and not args.no_amp else None

    space = get_space("gpt", preset=args.preset)
    context = space.config.max_context
    torch.manual_seed(0)
    supernet = space.build_supernet().to(args.device).train()
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    x = torch.randint(0, 256, (args.batch, context), device=args.device)
    y = torch.randint(0, 256, (args.batch, context), device=args.device)
    rng = random.Random(0)
    arch_sets = [sandwich_archs(space, rng, args.num_random) for _ in range(args.steps)]

    def run_sandwich() -> float:
        for archs in arch_sets[: max(1, len(arch_sets) // 2)] * args.warmup:
            sandwich_step(supernet, archs, x, y, optimizer, loss=NEXT_TOKEN, amp_dtype=amp)
        _sync(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for archs in arch_sets:
            sandwich_step(supernet, archs, x, y, optimizer, loss=NEXT_TOKEN, amp_dtype=amp)
        _sync(args.device)
        return (time.perf_counter() - start) / len(arch_sets)

    statics = []
    for archs in arch_sets:
        models = [supernet.extract(a).train() for a in archs]
        statics.append([(m, a, torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1))
                        for m, a in zip(models, archs)])

    def run_static() -> tuple[float, list[float]]:
        for group in statics[: max(1, len(statics) // 2)] * args.warmup:
            for model, arch, opt in group:
                _static_step(model, arch, opt, x, y, amp)
        _sync(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for group in statics:
            for model, arch, opt in group:
                _static_step(model, arch, opt, x, y, amp)
        _sync(args.device)
        total = (time.perf_counter() - start) / len(statics)
        per_net = [0.0] * len(statics[0])
        for group in statics:  # the split per sub-network (largest first), synchronised
            for i, (model, arch, opt) in enumerate(group):
                start = time.perf_counter()
                _static_step(model, arch, opt, x, y, amp)
                _sync(args.device)
                per_net[i] += (time.perf_counter() - start) / len(statics)
        return total, per_net

    # alternate the two measurements twice and keep each one's best, so drift hits both
    sandwich_times, static_times, static_parts = [], [], []
    peak_sandwich = peak_static = 0.0
    for _ in range(2):
        sandwich_times.append(run_sandwich())
        if cuda:
            peak_sandwich = torch.cuda.max_memory_allocated() / 2**30
        total, parts = run_static()
        static_times.append(total)
        static_parts.append(parts)
        if cuda:
            peak_static = torch.cuda.max_memory_allocated() / 2**30
    sandwich_s, static_s = min(sandwich_times), min(static_times)
    parts = static_parts[static_times.index(static_s)]
    statics.clear()  # free the static models before the evaluation

    # evaluation: new sub-networks in place on fixed token windows
    supernet.eval()
    n_windows = -(-args.eval_tokens // context)
    windows = torch.randint(0, 256, (n_windows, context + 1), device=args.device)
    batches = [(windows[i : i + args.eval_batch, :-1], windows[i : i + args.eval_batch, 1:])
               for i in range(0, n_windows, args.eval_batch)]
    eval_rng = random.Random(1)
    next_token_loss(supernet, space.largest(), batches, amp)  # warm-up (kernels, allocator)
    seconds, scored = [], 0
    for _ in range(args.eval_archs):
        arch = space.sample(eval_rng)
        _sync(args.device)
        start = time.perf_counter()
        result = next_token_loss(supernet, arch, batches, amp)
        _sync(args.device)
        seconds.append(time.perf_counter() - start)
        scored += result.samples
    eval_s = statistics.median(seconds)

    dev = device_name(args.device)
    tokens = args.batch * context
    config = {
        "space": f"gpt/{args.preset}", "context": context, "batch": args.batch, "tokens_per_step": tokens,
        "subnets_per_step": 2 + args.num_random, "amp": "bf16" if amp else "fp32", "optimizer": "adamw",
        "steps": args.steps, "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    records: list[dict] = []
    name = "gpt_throughput"
    emit(records, name, "sandwich_step_time", round(sandwich_s, 4), "s", dev, config)
    emit(records, name, "sandwich_tokens_per_s", round(tokens / sandwich_s, 1), "tokens/s", dev, config)
    emit(records, name, "static_subnets_step_time", round(static_s, 4), "s", dev,
         {**config, "per_subnet_s": [round(p, 4) for p in parts]})
    emit(records, name, "static_largest_tokens_per_s", round(tokens / parts[0], 1), "tokens/s", dev, config)
    emit(records, name, "sandwich_over_static", round(sandwich_s / static_s, 3), "ratio", dev,
         {**config, "target": "<= 1.3"})
    eval_config = {**config, "eval_tokens": n_windows * context, "eval_batch": args.eval_batch,
                   "eval_archs": args.eval_archs}
    emit(records, name, "subnet_eval_time", round(eval_s, 4), "s", dev, eval_config)
    emit(records, name, "subnet_evals_per_s", round(1.0 / eval_s, 2), "archs/s", dev, eval_config)
    emit(records, name, "eval_tokens_per_s", round(scored / sum(seconds), 1), "tokens/s", dev, eval_config)
    if cuda:
        emit(records, name, "peak_memory_sandwich", round(peak_sandwich, 2), "GiB", dev, config)
        emit(records, name, "peak_memory_static", round(peak_static, 2), "GiB", dev, config)
    if args.out:
        write_results(records, name, args.out)
    return records


if __name__ == "__main__":
    main()
