"""What profiling costs: wall time and measurements until the profile is accurate enough.

Reads (or first builds, through ``predictor_accuracy.py``) a workspace holding a profile
made by ``edgenas profile`` and the end-to-end measurements of validation networks it never
saw. Reports the profile's total wall time and measurement count, then replays the
measurement log: the block-sum predictor is refitted on the first ``k`` blocks in the order
the adaptive sampler measured them (with the training networks), scored on the validation
networks, and the wall time at which those ``k`` blocks had been measured is read from the
stored timestamps (plus the time the training networks took). The first ``k`` that reaches
95 % within ±10 % gives the cost to reach the target (target: under 20 minutes on 2 cores).

Full size (reuses the predictor_accuracy workspace if given)::

    python experiments/bench/profile_cost.py --workspace /tmp/edgenas-bench --out experiments/results/profile_cost.json

CI size::

    python experiments/bench/profile_cost.py --smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import predictor_accuracy  # noqa: E402
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "profile_cost"
GOAL = 0.95


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--device", default="bench-cpu")
    parser.add_argument("--step", type=int, default=8, help="blocks between replay points")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.metrics import validation_figures
    from latency_predictors.predictors import BlockSumRegressor
    from search_spaces import BlockSpec

    pa_args = ["--device", args.device] + (["--workspace", args.workspace] if args.workspace else [])
    pa_args += ["--smoke"] if args.smoke else []
    parsed = predictor_accuracy.parse(pa_args)
    ws = Path(parsed.workspace)
    if not (ws / "profiles" / f"{args.device}.json").is_file() or not _validation(ws, args.device):
        predictor_accuracy.main(pa_args)
    profile = DeviceProfile.load(ws / "profiles" / f"{args.device}.json")
    space = profile.build_space()
    store = MeasurementStore(f"sqlite:///{ws / 'measurements.db'}")
    rows = store.query(args.device, space=space.name)
    blocks = [m for m in rows if m.role == "block"]
    train = [m for m in rows if m.role == "train"]
    valid = _validation(ws, args.device)
    start = min(m.created for m in rows)
    train_s = (max(m.created for m in train) - min(m.created for m in train)).total_seconds() * len(train) / max(
        len(train) - 1, 1
    )
    nets = [space.blocks(space.arch_from_json(m.item)) for m in train]
    vnets = [space.blocks(space.arch_from_json(m.item)) for m in valid]
    truth = np.asarray([m.median_ms for m in valid])
    device = device_name("cpu") + f" TVM llvm 1 thread, untuned, {profile.timing.get('clock', 'wall')} clock"
    config = {"space": "mbv3/small", "validation_networks": len(valid), "train_networks": len(train),
              "counts": profile.counts, "smoke": args.smoke}  # fmt: skip
    records: list[dict[str, Any]] = []
    if profile.build_seconds is not None:
        emit(records, BENCH, "profile_wall_time", profile.build_seconds / 60, "min", device, config)
    emit(records, BENCH, "profile_measurements", sum(profile.counts.values()), "count", device, config)
    reached = None
    for k in sorted({*range(args.step, len(blocks), args.step), len(blocks)}):
        used = blocks[:k]
        model = BlockSumRegressor(random_state=0).fit(
            nets, [m.median_ms for m in train], block_X=[BlockSpec.from_json(_json(m.item)) for m in used],
            block_y=[m.median_ms for m in used],
        )  # fmt: skip
        f = validation_figures(truth, model.predict(vnets))
        wall = (used[-1].created - start).total_seconds() + train_s
        n_meas = profile.counts.get("noise", 0) + profile.counts.get("holdout", 0) + k + len(train)
        point = {**config, "blocks": k, "measurements": n_meas, "wall_min": wall / 60,
                 "mape_pct": f["mape_pct"], "spearman": f["spearman"]}  # fmt: skip
        emit(records, BENCH, "replay_within_10pct", 100 * f["within_10pct"], "%", device, point)
        if reached is None and f["within_10pct"] >= GOAL:
            reached = point
    if reached is not None:
        emit(records, BENCH, "wall_time_to_95pct_within_10pct", reached["wall_min"], "min", device, reached)
        emit(records, BENCH, "measurements_to_95pct_within_10pct", reached["measurements"], "count", device, reached)
    else:
        emit(records, BENCH, "wall_time_to_95pct_within_10pct", None, "min", device,  # type: ignore[arg-type]
             {**config, "note": "not reached with the measurements of this profile"})
    if args.out:
        write_results(records, BENCH, args.out)
    return records


def _validation(ws: Path, device: str) -> list[Any]:
    from latency_predictors.measurements import MeasurementStore

    db = ws / "measurements.db"
    return MeasurementStore(f"sqlite:///{db}").query(f"{device}#validation", role="holdout") if db.is_file() else []


def _json(text: str) -> dict[str, Any]:
    import json

    return json.loads(text)


if __name__ == "__main__":
    main()
