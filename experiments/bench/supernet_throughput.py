"""Images/s of one sandwich step against the same sub-networks trained as static models.

One sandwich step = largest + smallest + N random sub-networks of the supernet on one
batch, in-place distillation from the largest, one optimizer step. The baseline trains
the very same sub-networks, extracted as plain static models, one optimizer step each on
the same batch. The primary figure is the ratio (sandwich step time / sum of the static
steps): the static sub-networks are the limit of what weight sharing can reach.

GPU (the issue's setting)::

    python experiments/bench/supernet_throughput.py --device cuda --resolution 224 --batch 256

CPU, small (runs anywhere)::

    python experiments/bench/supernet_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402

from nas.training import sandwich_archs, sandwich_step  # noqa: E402
from search_spaces import get_space  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _static_step(model, optimizer, images, labels, amp_dtype) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small CPU run (small preset, 32x32)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="ofa")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="timed steps (distinct arch sets)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes over the arch sets")
    parser.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--out", default=None, help="write figures to this JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.preset, args.resolution, args.batch = "cpu", "small", 32, 32
        args.steps, args.warmup = 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    amp = torch.bfloat16 if cuda and not args.no_amp else None
    channels_last = cuda and not args.no_channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    space = get_space("mbv3", preset=args.preset, resolutions=(args.resolution,))
    supernet = space.build_supernet().to(args.device, memory_format=fmt).train()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randn(args.batch, 3, args.resolution, args.resolution, device=args.device)
    images = images.contiguous(memory_format=fmt)
    labels = torch.randint(0, space.config.num_classes, (args.batch,), device=args.device)
    rng = random.Random(0)
    arch_sets = [sandwich_archs(space, rng, args.num_random) for _ in range(args.steps)]

    def run_sandwich() -> float:
        for archs in arch_sets[: max(1, len(arch_sets) // 2)] * args.warmup:
            sandwich_step(supernet, archs, images, labels, optimizer, amp_dtype=amp)
        _sync(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for archs in arch_sets:
            sandwich_step(supernet, archs, images, labels, optimizer, amp_dtype=amp)
        _sync(args.device)
        return (time.perf_counter() - start) / len(arch_sets)

    # static baseline: the same sub-networks as plain models with their own optimizers
    statics = []
    for archs in arch_sets:
        models = [supernet.extract(a).to(memory_format=fmt).train() for a in archs]
        statics.append([(m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)) for m in models])

    def run_static() -> tuple[float, list[float]]:
        for group in statics[: max(1, len(statics) // 2)] * args.warmup:
            for model, opt in group:
                _static_step(model, opt, images, labels, amp)
        _sync(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for group in statics:  # timed like the sandwich: no synchronisation inside a step
            for model, opt in group:
                _static_step(model, opt, images, labels, amp)
        _sync(args.device)
        total = (time.perf_counter() - start) / len(statics)
        per_net = [0.0] * len(statics[0])
        for group in statics:  # the split per sub-network (largest first), synchronised
            for i, (model, opt) in enumerate(group):
                start = time.perf_counter()
                _static_step(model, opt, images, labels, amp)
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

    dev = device_name(args.device)
    config = {
        "space": f"mbv3/{args.preset}", "resolution": args.resolution, "batch": args.batch,
        "subnets_per_step": 2 + args.num_random, "amp": "bf16" if amp else "fp32",
        "channels_last": channels_last, "steps": args.steps, "torch": torch.__version__,
    }
    records: list[dict] = []
    name = "supernet_throughput"
    emit(records, name, "sandwich_step_time", round(sandwich_s, 4), "s", dev, config)
    emit(records, name, "sandwich_images_per_s", round(args.batch / sandwich_s, 1), "images/s", dev, config)
    emit(records, name, "static_subnets_step_time", round(static_s, 4), "s", dev,
         {**config, "per_subnet_s": [round(p, 4) for p in parts]})
    emit(records, name, "static_largest_images_per_s", round(args.batch / parts[0], 1), "images/s", dev, config)
    emit(records, name, "sandwich_over_static", round(sandwich_s / static_s, 3), "ratio", dev,
         {**config, "target": "<= 1.3"})
    if cuda:
        emit(records, name, "peak_memory_sandwich", round(peak_sandwich, 2), "GiB", dev, config)
        emit(records, name, "peak_memory_static", round(peak_static, 2), "GiB", dev, config)
    if args.out:
        write_results(records, name, args.out)
    return records


if __name__ == "__main__":
    main()
