"""How well a ``gpt`` device profile predicts both latencies of whole sub-networks it never saw.

On this machine's CPU via TVM (untuned, one thread), for the ``tiny`` gpt preset:
``edgenas profile --space gpt`` builds the profile (unless the workspace has it): blocks
and whole networks of both phases, **prefill** of ``context`` tokens and **decode** of one
token after a KV cache of ``context`` tokens. Then ``--archs`` random sub-networks the
profile never measured are compiled and timed end to end in both phases, the way the
profile measures (``profiler_for_profile``: same clock, paired with the profile's
reference network, in the machine's fast state as the profile's state gate judges it), stored so an interrupted run resumes, and each metric's predictions
are scored: share within ±10 % (target: 95 % or more per metric), ±5 %, MAPE, Spearman,
beside the profile's wall time, its noise floor and the machine's load average.

Full size (pin it to one core; the validation networks take 20-40 minutes on a shared core)::

    taskset -c 1 python experiments/bench/gpt_predictor_accuracy.py --out experiments/results/gpt_predictor_accuracy.json

CI size::

    python experiments/bench/gpt_predictor_accuracy.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
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
from _retake import retake_not_in_state  # noqa: E402

BENCH = "gpt_predictor_accuracy"
TARGET = {"kind": "llvm", "num-cores": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny profile and 3 validation networks")
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--device", default="bench-gpt-cpu")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--archs", type=int, default=50, help="validation networks (each timed in both phases)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--holdout", type=int, default=4, help="the profile's own held-out networks per metric")
    parser.add_argument("--train", type=int, default=None,
                        help="the profile's training networks per metric (default: the profile's plan, then more "
                             "while its budget lasts)")
    parser.add_argument("--state-wait", type=float, default=20.0, metavar="SECONDS",
                        help="the profile's wait for the machine's fast state per measurement (0: no state gate); "
                             "the validation networks are timed with the profile's setting")
    parser.add_argument("--retakes", type=int, default=3, metavar="N",
                        help="passes that time again the validation networks not measured in the machine's fast "
                             "state (default: 3)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the validation networks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.workspace is None:
        import tempfile

        args.workspace = tempfile.mkdtemp(prefix="edgenas-bench-gpt-")
    if args.smoke:
        args.archs, args.budget_minutes = 3, 1.0
    return args


def ensure_profile(args: argparse.Namespace) -> tuple[float | None, dict[str, Any]]:
    """Build the profile with the real command unless the workspace has it; its wall time
    and the load average around it."""
    from nas.cli import main as edgenas

    if (Path(args.workspace) / "profiles" / f"{args.device}.json").is_file():
        return None, {"note": "profile found in the workspace"}
    cmd = ["profile", "--device", args.device, "--target", json.dumps(TARGET), "--space", "gpt",
           "--preset", args.preset, "--budget-minutes", str(args.budget_minutes), "--workspace", args.workspace,
           "--quiet", "--state-wait", str(args.state_wait)]
    if args.smoke:
        cmd += ["--holdout", "2", "--train", "3", "--repeat", "5", "--max-blocks", "12"]
    else:
        cmd += ["--holdout", str(args.holdout)] + (["--train", str(args.train)] if args.train is not None else [])
    before = os.getloadavg()
    t0 = time.monotonic()
    rc = edgenas(cmd)
    spent = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"edgenas profile failed with exit code {rc}")
    return spent, {"command": "edgenas " + " ".join(cmd), "load_average_before": before, "load_average_after": os.getloadavg()}


def validation_set(space: Any, store: Any, device: str, n: int, seed: int) -> list[Any]:
    """The first ``n`` distinct archs of the seeded sequence that the profile never measured."""
    from latency_predictors.profile_builder import unique_archs

    used = [space.arch_from_json(m.item) for m in store.query(device, space=space.name)
            if m.role.rpartition(":")[2] in ("train", "holdout")]
    return unique_archs(space, random.Random(seed), n, exclude=used)


def measure_validation(args: argparse.Namespace, space: Any, profile: Any, store: Any) -> dict[str, list[Any]]:
    """Every validation network in every phase, timed as the profile measures (stored under
    device ``NAME#validation``, so a rerun only times what is missing). Then, as the profile
    does with its networks, every measurement the state gate could not take in the machine's
    fast state is timed again (``--retakes`` passes at most), and replaced by a retake that
    was (``retaken`` counts them, and those still not in the fast state)."""
    from latency_predictors.cost_metrics import latency_metrics
    from latency_predictors.measurements import Measurement
    from latency_predictors.profilers import profiler_for_profile
    from latency_predictors.reference import Reference
    from latency_predictors.timing import input_shape_of
    from latency_predictors.tvm_profiler import tvm_version

    archs = validation_set(space, store, args.device, args.archs, args.seed)
    vdev = f"{args.device}#validation"
    reference = Reference.from_json(profile.reference)
    fast_ms = reference.fast_ms if reference is not None else None
    profiler = None

    def measure(metric: Any, arch: Any) -> Measurement:
        nonlocal profiler
        profiler = profiler or profiler_for_profile(profile)
        example = metric.timing_input(space, arch)
        t = profiler.measure(metric.build(space, arch), example)
        return Measurement(
            device=vdev, space=space.name, role=metric.role("holdout"), item=space.arch_key(arch), backend="tvm",
            schedule="untuned", target=profile.target, tvm_version=tvm_version(), input_shape=input_shape_of(example),
            number=t.number, repeat=t.repeat, median_ms=t.median_ms, spread_ms=t.spread_ms,
            results_ms=t.results_ms, reference_ms=t.reference_ms,
        )  # fmt: skip

    out: dict[str, list[Any]] = {}
    for metric in latency_metrics(space):
        done = {m.item: m for m in store.query(vdev, role=metric.role("holdout"))}
        out[metric.name] = []
        for arch in tqdm(archs, desc=f"validation {metric.name}", unit="net", disable=args.quiet):
            key = space.arch_key(arch)
            if key not in done:
                done[key] = measure(metric, arch)
                store.add(done[key])
            out[metric.name].append(done[key])
    # the phases' rows in one list, so each pass goes over every phase before the next
    names = [metric.name for metric in latency_metrics(space)]
    flat = [m for name in names for m in out[name]]
    metric_of = {metric.role("holdout"): metric for metric in latency_metrics(space)}
    retaken = retake_not_in_state(flat, fast_ms, lambda m: measure(metric_of[m.role], space.arch_from_json(m.item)),
                                  store, args.retakes)
    out = {name: [m for m in flat if metric_of[m.role].name == name] for name in names}
    args.retaken = retaken
    if reference is not None:  # in the profile's terms: its baseline, drift exponent and fast state
        out = {name: [reference.restate(m) for m in rows] for name, rows in out.items()}
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    from latency_predictors.device_profile import DeviceProfile, fit_cost_model
    from latency_predictors.machine_state import in_state
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.metrics import validation_figures

    build_s, conditions = ensure_profile(args)
    ws = Path(args.workspace)
    profile = DeviceProfile.load(ws / "profiles" / f"{args.device}.json")
    space = profile.build_space()
    store = MeasurementStore(f"sqlite:///{ws / 'measurements.db'}")
    before = os.getloadavg()
    t0 = time.monotonic()
    measured = measure_validation(args, space, profile, store)
    validation_s = time.monotonic() - t0
    clock = profile.timing.get("clock", "wall")
    device = device_name("cpu") + f" TVM llvm 1 thread, untuned, {clock} clock" + (
        ", drift corrected" if profile.reference else "")
    config = {"space": f"gpt/{args.preset}", "target": TARGET, "clock": clock,
              "budget_minutes": profile.plan.get("budget_minutes", args.budget_minutes),
              "validation_networks": args.archs, "profile_counts": profile.counts, "profile_plan": profile.plan,
              "profile_conditions": conditions, "validation_load_average": [before, os.getloadavg()],
              "validation_minutes": validation_s / 60, "validation_retaken": getattr(args, "retaken", None),
              "workspace": str(ws), "smoke": args.smoke,
              "affinity": sorted(os.sched_getaffinity(0))}
    records: list[dict[str, Any]] = []
    chosen = profile.predictor
    for kind in ("block_sum", "whole_network"):
        profile.predictor = kind
        try:
            model = fit_cost_model(profile, store, space=space)
        except ValueError:
            continue
        for name, rows in measured.items():
            if len(rows) < 2:
                continue
            truth = np.asarray([m.median_ms for m in rows])
            pred = model.predict([space.arch_from_json(m.item) for m in rows])[name]
            f = validation_figures(truth, pred)
            cfg = {**config, "predictor": kind, "chosen_predictor": kind == chosen, "metric": name,
                   "n": f["n"], "measured_ms_range": [float(truth.min()), float(truth.max())],
                   "worst_rel_error_pct": float(100 * np.max(np.abs(pred - truth) / truth))}
            emit(records, BENCH, f"{name}_{kind}_within_10pct", 100 * f["within_10pct"], "%", device, cfg)
            emit(records, BENCH, f"{name}_{kind}_within_5pct", 100 * f["within_5pct"], "%", device, cfg)
            emit(records, BENCH, f"{name}_{kind}_mape", f["mape_pct"], "%", device, cfg)
            emit(records, BENCH, f"{name}_{kind}_spearman", f["spearman"], "rho", device, cfg)
    if profile.reference:
        emit(records, BENCH, "drift_exponent", profile.reference.get("exponent", 1.0), "exponent", device,
             {**config, "chosen_by": profile.reference.get("exponent_chosen_by")})
    noise = profile.noise_floor or {}
    if "cv_pct" in noise:
        emit(records, BENCH, "noise_floor_cv", noise["cv_pct"], "%", device, {**config, "how": noise.get("how")})
    state = noise.get("state")
    if state:
        emit(records, BENCH, "profile_slow_readings", state["slow_readings_pct"], "%", device, {**config, **state})
        emit(records, BENCH, "profile_not_in_fast_state", state["not_in_state"], "count", device, {**config, **state})
    fast_ms = (profile.reference or {}).get("fast_ms")
    for name, rows in measured.items():
        iqr = np.asarray([m.spread_ms / m.median_ms for m in rows])
        emit(records, BENCH, f"{name}_validation_iqr_over_median", 100 * float(np.median(iqr)), "%", device, config)
        if fast_ms is not None:
            slow = sum(in_state(m.reference_ms, fast_ms) is None for m in rows)
            emit(records, BENCH, f"{name}_validation_not_in_fast_state", slow, "count", device,
                 {**config, "fast_ms": fast_ms, "how": "validation networks with too few fast-state repeats "
                                                       "(their figure: every repeat, drift corrected)"})
    if build_s is not None:
        emit(records, BENCH, "profile_wall_time", build_s / 60, "min", device, config)
    emit(records, BENCH, "profile_measurements", sum(profile.counts.values()), "count", device, config)
    if getattr(args, "retaken", None):
        emit(records, BENCH, "validation_retaken", args.retaken["replaced"], "count", device,
             {**config, "how": "validation measurements not in the machine's fast state, timed again: "
                               f"{args.retaken['tried']} retakes in {args.retaken['passes']} passes, this many "
                               f"replaced by a fast-state retake, {args.retaken['still_not_in_state']} still not "
                               "in the fast state"})
    emit(records, BENCH, "load_average_1min", os.getloadavg()[0], "load", device, config)
    if args.out:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
