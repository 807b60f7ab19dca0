"""Joint search (arch and split point together) against "search the arch for the edge, then split it".

Both searches use the same supernet (mbv3 small trained on digits, as the quickstart
trains it), the same trials and sampler, and the ``small`` device pair of
``_split_setup.py``. The joint search optimises accuracy against ``e2e_latency_ms`` (every
arch at its best split over the link); the edge search accuracy against the edge's
latency, after which each arch of its front is split at its best cut. Both fronts are
compared in (end-to-end latency, accuracy): the best accuracy each reaches within a range
of end-to-end budgets (all predicted; accuracy measured on the supernet).

Full size::

    python experiments/bench/split_search.py --workspace /tmp/split-bench/ws --out experiments/results/split_search.json

CI size::

    python experiments/bench/split_search.py --smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _split_setup  # noqa: E402
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "split_search"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workspace", default="/tmp/edgenas-split-bench")
    parser.add_argument("--link", default="100mbit,2ms", help="the edge-cloud link (default 100mbit,2ms)")
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--budgets", type=int, default=8, help="end-to-end budgets the fronts are compared at")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from nas.search.objectives import Budget
    from nas.search.problem import SearchSpec
    from nas.search.runner import SearchSettings, search
    from nas.split import load_pair
    from nas.split.objective import SplitObjective
    from nas.workspace import Workspace

    ws = Path(args.workspace)
    load_before = os.getloadavg()
    checkpoint = _split_setup.ensure_checkpoint(ws, smoke=args.smoke)
    edge, cloud = _split_setup.ensure_pair(ws, "small", smoke=args.smoke, progress=not args.smoke)
    trials = 12 if args.smoke else args.trials
    common = dict(space="mbv3", space_options={}, devices=(edge,), budget=Budget(), checkpoint=str(checkpoint),
                  workspace=str(ws), eval_batch_size=256, eval_device="cpu")
    settings = SearchSettings(trials=trials, sampler="nsga2", seed=0, population=20 if args.smoke else 30,
                              buffered=True, progress_every_s=float("inf"))
    started = time.time()
    joint_spec = SearchSpec(objectives=("accuracy", "e2e"), split={"cloud": cloud, "link": args.link}, **common)
    joint, _ = search(joint_spec, settings, margin=0.0, quiet=True)
    t_joint = time.time() - started
    edge_spec = SearchSpec(objectives=("accuracy", "latency"), **common)
    edge_result, _ = search(edge_spec, settings, margin=0.0, quiet=True)
    pair = load_pair(Workspace(ws), edge, cloud)
    objective = SplitObjective.load(Workspace(ws), pair.space, edge, cloud, args.link)
    edge_front = [(pair.space.arch_from_json(r["arch"]), r["accuracy"]) for r in edge_result["pareto_front"]]
    e2e, positions = objective.best([a for a, _ in edge_front])
    then_split = [(float(ms), acc, int(p)) for (_, acc), ms, p in zip(edge_front, e2e, positions)]
    jointly = [(r["predicted"]["e2e_latency_ms"], r["accuracy"], int(r["predicted"]["split_position"]))
               for r in joint["pareto_front"]]
    lo = min(p[0] for p in jointly + then_split)
    hi = max(p[0] for p in jointly + then_split)
    budgets = np.geomspace(lo, hi, args.budgets)
    config = {"link": args.link, "trials": trials, "edge": edge, "cloud": cloud, "checkpoint": str(checkpoint),
              "smoke": args.smoke, "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
              "joint_front": jointly, "edge_then_split_front": then_split, "joint_search_s": round(t_joint),
              "wall_s": round(time.time() - started)}
    device = f"{device_name()}: {_split_setup.describe_pair(ws, edge, cloud)}, predicted; load {load_before[0]:.1f}"
    records: list[dict[str, Any]] = []
    emit(records, BENCH, "front_sizes", len(jointly), "count", device, config)
    gains = []
    for budget in budgets:
        a = max((acc for ms, acc, _ in jointly if ms <= budget), default=float("nan"))
        b = max((acc for ms, acc, _ in then_split if ms <= budget), default=float("nan"))
        gains.append(a - b)
        emit(records, BENCH, "joint_accuracy_at_budget", a, "%", device, {"e2e_budget_ms": float(budget)})
        emit(records, BENCH, "edge_then_split_accuracy_at_budget", b, "%", device, {"e2e_budget_ms": float(budget)})
    finite = [g for g in gains if np.isfinite(g)]
    emit(records, BENCH, "accuracy_gain_mean", float(np.mean(finite)) if finite else float("nan"), "points", device,
         {"what": "joint minus edge-then-split, best accuracy within each budget, over budgets both reach"})
    splits = sum(1 for _, _, p in jointly if 0 < p < max(pp for _, _, pp in jointly + then_split))
    emit(records, BENCH, "joint_front_split_inside", splits, "count", device, {"of": len(jointly)})
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
