"""How well a profile built by ``edgenas profile`` predicts whole networks it never saw.

On this machine's CPU via TVM (untuned, one thread), for the small ``mbv3`` preset:
``edgenas profile`` builds the device profile (unless the workspace has it), then
``--archs`` random sub-networks that the profile never measured are compiled and timed
end to end (stored, so an interrupted run resumes), and the profile's predictions are
scored: share within ±10 % (target: 95 % or more) and ±5 %, MAPE, RMSE, Spearman and
Kendall, beside the profile's own noise floor (one network timed repeatedly) and the
noise of the validation measurements themselves (their repeats' IQR / median).

Full size (about 40 minutes on 2 cores)::

    python experiments/bench/predictor_accuracy.py --out experiments/results/predictor_accuracy.json

CI size::

    python experiments/bench/predictor_accuracy.py --smoke
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402

BENCH = "predictor_accuracy"
TARGET = {"kind": "llvm", "num-cores": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny profile and 4 validation networks")
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--device", default="bench-cpu")
    parser.add_argument("--archs", type=int, default=100, help="validation networks")
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=2024, help="seed of the validation networks")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                        help="cpu (default: robust on this shared machine) or wall (time_evaluator)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.workspace is None:
        import tempfile

        args.workspace = tempfile.mkdtemp(prefix="edgenas-bench-")
    if args.smoke:
        args.archs, args.budget_minutes = 3, 10.0
    return args


def ensure_profile(args: argparse.Namespace) -> tuple[float | None, bool]:
    """Build the profile with the real command unless the workspace has it; its wall time."""
    from nas.cli import main as edgenas

    path = Path(args.workspace) / "profiles" / f"{args.device}.json"
    if path.is_file():
        return None, False
    cmd = ["profile", "--device", args.device, "--target", json.dumps(TARGET), "--space", "mbv3",
           "--budget-minutes", str(args.budget_minutes), "--workspace", args.workspace,
           "--clock", args.clock, "--quiet"]
    if args.smoke:
        cmd += ["--holdout", "2", "--train", "3", "--repeat", "5", "--max-blocks", "12"]
    t0 = time.monotonic()
    rc = edgenas(cmd)
    if rc != 0:
        raise SystemExit(f"edgenas profile failed with exit code {rc}")
    return time.monotonic() - t0, True


def validation_set(space: Any, profile_store: Any, device: str, n: int, seed: int) -> list[Any]:
    """``n`` distinct random archs that the profile never measured."""
    used = {m.item for m in profile_store.query(device, space="mbv3")}
    rng, out, seen = random.Random(seed), [], set(used)
    while len(out) < n:
        arch = space.sample(rng)
        key = space.arch_key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


def measure_validation(args: argparse.Namespace, space: Any, profile: Any, store: Any) -> list[Any]:
    """Time every validation network end to end (stored as device ``NAME#validation``)."""
    from latency_predictors.measurements import Measurement
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tvm_profiler import TVMProfiler, tvm_version

    profiler = TVMProfiler(TARGET, timing=TimingConfig(**profile.timing))
    archs = validation_set(space, store, args.device, args.archs, args.seed)
    vdev = f"{args.device}#validation"
    done = {m.item: m for m in store.query(vdev, role="holdout")}
    out = []
    for arch in tqdm(archs, desc="validation networks", unit="net"):
        key = space.arch_key(arch)
        if key not in done:
            t = profiler.measure(space.build_static(arch), space.input_shape(arch))
            done[key] = Measurement(
                device=vdev, space="mbv3", role="holdout", item=key, backend="tvm", schedule="untuned",
                target=profiler.target, tvm_version=tvm_version(), input_shape=space.input_shape(arch),
                number=t.number, repeat=t.repeat, median_ms=t.median_ms, spread_ms=t.spread_ms,
                results_ms=t.results_ms,
            )  # fmt: skip
            store.add(done[key])
        out.append(done[key])
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    from latency_predictors.device_profile import DeviceProfile, fit_cost_model
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.metrics import validation_figures

    build_s, built = ensure_profile(args)
    ws = Path(args.workspace)
    profile = DeviceProfile.load(ws / "profiles" / f"{args.device}.json")
    space = profile.build_space()
    store = MeasurementStore(f"sqlite:///{ws / 'measurements.db'}")
    measured = measure_validation(args, space, profile, store)
    model = fit_cost_model(profile, store, space=space)
    archs = [space.arch_from_json(m.item) for m in measured]
    truth = np.asarray([m.median_ms for m in measured])
    device = device_name("cpu") + f" TVM llvm 1 thread, untuned, {args.clock} clock"
    config = {"space": "mbv3/small", "target": TARGET, "clock": args.clock, "validation_networks": len(measured),
              "profile_counts": profile.counts, "workspace": str(ws), "smoke": args.smoke}
    records: list[dict[str, Any]] = []
    for kind in ("block_sum", "whole_network"):
        profile.predictor = kind
        try:
            pred = fit_cost_model(profile, store, space=space).predict(archs)["latency_ms"]
        except ValueError:
            continue
        f = validation_figures(truth, pred)
        cfg = {**config, "predictor": kind}
        emit(records, BENCH, f"{kind}_within_10pct", 100 * f["within_10pct"], "%", device, cfg)
        emit(records, BENCH, f"{kind}_within_5pct", 100 * f["within_5pct"], "%", device, cfg)
        emit(records, BENCH, f"{kind}_mape", f["mape_pct"], "%", device, cfg)
        emit(records, BENCH, f"{kind}_rmse", f["rmse_ms"], "ms", device, cfg)
        emit(records, BENCH, f"{kind}_spearman", f["spearman"], "rho", device, cfg)
        emit(records, BENCH, f"{kind}_kendall", f["kendall"], "tau", device, cfg)
    del model
    noise = profile.noise_floor or {}
    if "cv_pct" in noise:
        emit(records, BENCH, "noise_floor_cv", noise["cv_pct"], "%", device,
             {**config, "how": noise.get("how"), "repeats": noise.get("n")})
        emit(records, BENCH, "noise_floor_max_dev", noise["max_rel_dev_pct"], "%", device, config)
    within = np.asarray([m.spread_ms / m.median_ms for m in measured])
    emit(records, BENCH, "validation_iqr_over_median", 100 * float(np.median(within)), "%", device, config)
    if build_s is not None:
        emit(records, BENCH, "profile_wall_time", build_s / 60, "min", device, config)
    emit(records, BENCH, "profile_measurements", sum(profile.counts.values()), "count", device, config)
    if args.out:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
