"""Seconds to evaluate one sub-network in place: BN recalibration + accuracy.

Each timed sub-network is new (never evaluated before), as in a search: its BN statistics
are recalibrated on ``--calib`` images, then its accuracy is measured on ``--val`` images,
and the supernet's own statistics are restored. Images are device-resident tensors (the
data pipeline is not what is measured). OFA needs 0.41 s per sub-network on a GPU at 224
(0.10 s to extract, 0.31 s to recalibrate and evaluate).

GPU (the issue's setting)::

    python experiments/bench/subnet_eval.py --device cuda --resolution 224

CPU, small::

    python experiments/bench/subnet_eval.py --smoke
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

from nas.evaluation import evaluate_arch  # noqa: E402
from search_spaces import get_space  # noqa: E402


def _batches(images: torch.Tensor, labels: torch.Tensor, size: int):
    return [(images[i : i + size], labels[i : i + size]) for i in range(0, len(images), size)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small CPU run (small preset, 32x32)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="ofa")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--calib", type=int, default=2000, help="BN calibration images")
    parser.add_argument("--val", type=int, default=2000, help="validation images")
    parser.add_argument("--batch", type=int, default=500, help="evaluation batch size")
    parser.add_argument("--archs", type=int, default=20, help="timed sub-networks (all new)")
    parser.add_argument("--amp", choices=("bf16", "fp16", "none"), default="bf16",
                        help="autocast dtype on the GPU (default: bf16, as in training)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN autotune (pays off only for shapes seen again)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the one-time block warm-up")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.preset, args.resolution = "cpu", "small", 32
        args.calib, args.val, args.batch, args.archs, args.no_warmup = 256, 256, 128, 3, True
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[args.amp] if cuda else None
    fmt = torch.channels_last if cuda else torch.contiguous_format

    space = get_space("mbv3", preset=args.preset, resolutions=(args.resolution,))
    supernet = space.build_supernet().to(args.device, memory_format=fmt)
    g = torch.Generator(device="cpu").manual_seed(0)
    n = args.calib + args.val
    images = torch.randn(n, 3, args.resolution, args.resolution, generator=g).to(args.device)
    images = images.contiguous(memory_format=fmt)
    labels = torch.randint(0, space.config.num_classes, (n,), generator=g).to(args.device)
    calib = _batches(images[: args.calib], labels[: args.calib], args.batch)
    val = _batches(images[args.calib :], labels[args.calib :], args.batch)

    rng = random.Random(0)
    timed = [space.sample(rng) for _ in range(args.archs)]
    # One-time warm-up, as at the start of a search: every block shape (each kernel and
    # expand ratio at every position) runs once, so CUDA loads its kernels and the
    # allocator has its pools. The timed archs are still new (never evaluated before).
    cfg = space.config
    start = time.perf_counter()
    for kernel in [] if args.no_warmup else cfg.kernels:
        for expand in cfg.expands:
            n = max(cfg.depths) * space.num_stages
            arch = type(space.largest())((max(cfg.depths),) * space.num_stages, (kernel,) * n,
                                         (expand,) * n, args.resolution)
            evaluate_arch(supernet, arch, calib, val, amp)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    warmup_s = time.perf_counter() - start
    seconds = []
    for arch in timed:
        start = time.perf_counter()
        result = evaluate_arch(supernet, arch, calib, val, amp)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        assert result.samples == args.val

    dev = device_name(args.device)
    mean_flops = statistics.mean(space.flops(a) for a in timed) / 1e6
    config = {
        "space": f"mbv3/{args.preset}", "resolution": args.resolution, "calib_images": args.calib,
        "val_images": args.val, "batch": args.batch, "archs": args.archs,
        "amp": args.amp if amp else "fp32", "mean_mflops": round(mean_flops, 1),
        "torch": torch.__version__,
    }
    records: list[dict] = []
    name = "subnet_eval"
    emit(records, name, "seconds_per_subnet_median", round(statistics.median(seconds), 4), "s", dev,
         {**config, "target": "<= 0.2 (OFA: 0.41)"})
    emit(records, name, "seconds_per_subnet_mean", round(statistics.mean(seconds), 4), "s", dev, config)
    emit(records, name, "seconds_per_subnet_max", round(max(seconds), 4), "s", dev, config)
    emit(records, name, "one_time_warmup", round(warmup_s, 2), "s", dev,
         {**config, "note": "9 uniform archs covering every block shape, once per process"})
    if cuda:
        emit(records, name, "peak_memory", round(torch.cuda.max_memory_allocated() / 2**30, 2), "GiB", dev, config)
    if args.out:
        write_results(records, name, args.out)
    return records


if __name__ == "__main__":
    main()
