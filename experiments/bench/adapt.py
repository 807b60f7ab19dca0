"""Nebula's Table 1 protocol at small scale: adaptation accuracy and communication per method.

For MNIST-1D and digits, at two levels of label skew (2 and 5 of 10 classes per device),
100 devices with 50-150 samples, 10-25 sampled per round, per-device budgets, failures
and stragglers: accuracy after adapting to one environment shift (``one_step``: device
data fixed, mean of the last 5 rounds) and under continuous drift (``continuous``: 30 %
of each device's data replaced every round), for Nebula and every baseline in the same
simulator; bytes per device-round relative to FedAvg and HeteroFL; device training memory.

    python experiments/bench/adapt.py            # full size (about 20-40 min on 2 cores)
    python experiments/bench/adapt.py --smoke    # CI size
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from experiments.bench._report import device_name, emit, write_results  # noqa: E402
from nas.adapt.config import AdaptConfig  # noqa: E402
from nas.adapt.data import load_domain_data  # noqa: E402
from nas.adapt.simulator import simulate  # noqa: E402
from nas.config import load_config  # noqa: E402

BENCH = "adapt"


def run_one(dataset: str, skew: int, continuous: bool, args: argparse.Namespace, data, root: Path) -> dict:
    name = f"{dataset}_m{skew}_{'continuous' if continuous else 'one_step'}"
    out = root / name
    cfg = {
        "data": {"name": dataset},
        "devices": {"count": args.devices, "per_round_min": 10, "per_round_max": 25, "classes_per_device": skew},
        "cloud": {"pretrain_steps": args.pretrain_steps, "sharpen_steps": args.sharpen_steps},
        "rounds": args.rounds, "continuous": continuous, "drift_share": 0.3,
        "out_dir": str(out), "parallel": args.parallel, "workers": args.workers, "seed": 0,
    }
    if args.smoke:
        cfg["devices"].update({"count": 30, "per_round_min": 10, "per_round_max": 12})
        cfg["cloud"].update({"preset": None})
    config = load_config(AdaptConfig, cfg)
    sibling = root / f"{dataset}_m{skew}_one_step" / "cloud_pretrained.safetensors"
    out.mkdir(parents=True, exist_ok=True)
    if continuous and sibling.is_file() and not (out / "cloud_pretrained.safetensors").exists():
        shutil.copy(sibling, out / "cloud_pretrained.safetensors")  # same cloud model, trained once
    return simulate(config, progress=not args.quiet, data=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CI size: 30 devices, 3 rounds, short pretraining")
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "digits"])
    parser.add_argument("--skews", nargs="+", type=int, default=[2, 5], help="classes per device")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pretrain-steps", type=int, default=1200)
    parser.add_argument("--sharpen-steps", type=int, default=300)
    parser.add_argument("--parallel", choices=("auto", "ray", "sequential"), default="sequential")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs-dir", default="runs/bench_adapt", help="per-run state (resumable)")
    parser.add_argument("--out", help="results JSON (default experiments/results/adapt.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.pretrain_steps, args.sharpen_steps = 3, 100, 30
        args.runs_dir = args.runs_dir + "_smoke"
    torch.set_num_threads(1)
    root = Path(args.runs_dir)
    device = device_name("cpu")
    records: list[dict] = []
    for dataset in args.datasets:
        data = load_domain_data(dataset, seed=0, proxy_samples=3000, device_samples=4000 if args.smoke else 16000)
        for skew in args.skews:
            summaries = {}
            for continuous in (False, True):
                scenario = "continuous" if continuous else "one_step"
                res = run_one(dataset, skew, continuous, args, data, root)
                summaries[scenario] = res["summary"]
                conf = {"dataset": dataset, "classes_per_device": skew, "scenario": scenario,
                        "devices": res["config"]["devices"]["count"], "rounds": args.rounds,
                        "per_round": "10-25", "smoke": args.smoke}
                for method, s in res["summary"].items():
                    emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/{method}/accuracy_final",
                         round(s["accuracy_final"], 2), "%", device, conf)
                    emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/{method}/accuracy_round1",
                         round(s["accuracy_round1"], 2), "%", device, conf)
                    emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/{method}/bytes_per_device_round",
                         round(s["bytes_per_device_round"]), "bytes", device, conf)
                    emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/{method}/peak_memory",
                         round(s["peak_memory_bytes_mean"] / 1e6, 3), "MB", device, conf)
                neb = res["summary"]["nebula"]
                for base in ("fedavg", "heterofl"):
                    ratio = res["summary"][base]["bytes_per_device_round"] / max(1.0, neb["bytes_per_device_round"])
                    emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/comm_reduction_vs_{base}",
                         round(ratio, 2), "x", device, conf)
                best_base = max(v["accuracy_final"] for k, v in res["summary"].items() if k != "nebula")
                emit(records, BENCH, f"{dataset}/m{skew}/{scenario}/nebula_margin_over_best_baseline",
                     round(neb["accuracy_final"] - best_base, 2), "points", device, conf)
    path = write_results(records, BENCH + ("_smoke" if args.smoke else ""), args.out)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
