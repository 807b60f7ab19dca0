"""Offload when unsure: accuracy against latency of a cascade as its threshold varies, measured.

The edge runs the smallest sub-network of the digits supernet (as the quickstart trains
it), the cloud its largest, on the ``small`` device pair of ``_split_setup.py``; every
validation image is timed on the edge and offloaded to the cloud process (TCP on
127.0.0.1, software link). Per link: edge only, cloud only, and the threshold chosen to
stay within 0.5 points of the cloud's accuracy, run for real.

Full size::

    python experiments/bench/split_cascade.py --workspace /tmp/split-bench/ws --out experiments/results/split_cascade.json

CI size::

    python experiments/bench/split_cascade.py --smoke
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _split_setup  # noqa: E402
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "split_cascade"
LINKS = ("20mbit,40ms", "100mbit,5ms")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workspace", default="/tmp/edgenas-split-bench")
    parser.add_argument("--arch", default="min", help="the edge's sub-network (default min)")
    parser.add_argument("--target", default="cloud-0.5", help="target accuracy: PCT or cloud-D (default cloud-0.5)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from nas.split import parse_link
    from nas.split.pipeline import cascade
    from nas.workspace import Workspace

    ws = Path(args.workspace)
    load_before = os.getloadavg()
    checkpoint = _split_setup.ensure_checkpoint(ws, smoke=args.smoke)
    edge, cloud = _split_setup.ensure_pair(ws, "small", smoke=args.smoke, progress=not args.smoke)
    records: list[dict[str, Any]] = []
    for text in LINKS[:1] if args.smoke else LINKS:
        doc = cascade(Workspace(ws), edge, cloud, parse_link(text), checkpoint, arch=args.arch,
                      target_accuracy=args.target, limit=40 if args.smoke else None)
        device = (f"{device_name()}: {_split_setup.describe_pair(ws, edge, cloud)}, link {text}, measured; "
                  f"load {load_before[0]:.1f}")
        config = {"link": text, "images": doc["images"], "edge_arch": doc["edge_arch"], "smoke": args.smoke,
                  "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "sweep": doc["sweep"],
                  "predicted": doc["predicted"]}
        for name, base in doc["baselines"].items():
            emit(records, BENCH, f"{name}_accuracy", base["accuracy"], "%", device, config if name == "edge_only" else {})
            emit(records, BENCH, f"{name}_mean_ms", base["mean_ms"], "ms", device)
            emit(records, BENCH, f"{name}_p95_ms", base["p95_ms"], "ms", device)
        chosen, ran = doc["chosen"], doc["chosen_run"]
        if chosen and chosen.get("threshold") is not None:
            emit(records, BENCH, "chosen_threshold", chosen["threshold"], "softmax", device, {"goal": chosen["goal"]})
            for key, unit in (("accuracy", "%"), ("mean_ms", "ms"), ("p95_ms", "ms"), ("offloaded", "share")):
                emit(records, BENCH, f"chosen_{key}", chosen[key], unit, device)
                if ran:
                    emit(records, BENCH, f"chosen_run_{key}", ran[key], unit, device,
                         {"what": "the chosen threshold run for real (edge decides, offloads when unsure)"})
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
