"""How well a profile built by ``edgenas profile`` predicts whole networks it never saw.

On this machine's CPU via TVM (untuned, one thread), for the small ``mbv3`` preset:
``edgenas profile`` builds the device profile (unless the workspace has it), then
``--archs`` random sub-networks that the profile never measured are compiled and timed
end to end the way the profile measures (``profiler_for_profile``: same clock, paired
with the profile's reference network and corrected to its baseline), stored so an
interrupted run resumes, and the profile's predictions are scored: share within ±10 %
(target: 99 % or more, 95 % under ``--load``) and ±5 %, MAPE, RMSE, Spearman and Kendall,
beside the profile's noise floor (CV, max deviation, drift range) and the spread of the
validation measurements themselves (their repeats' IQR / median).

``--load`` starts a CPU-bound busy loop pinned to the last core (and pins this process to
the others) for the whole profile, and stops it before the validation networks are
timed: the profile must predict what the machine does without that load. The machine's
load average before and after each part is recorded with the figures.

Full size (10-minute profile; the validation networks take 20-40 minutes on 2 cores)::

    python experiments/bench/predictor_accuracy.py --out experiments/results/predictor_accuracy.json
    python experiments/bench/predictor_accuracy.py --load --out experiments/results/predictor_accuracy_load.json

The quickstart's profile (3 minutes), judged on 20 networks::

    python experiments/bench/predictor_accuracy.py --budget-minutes 3 --archs 20 --out experiments/results/predictor_accuracy_3min.json

CI size::

    python experiments/bench/predictor_accuracy.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402
from _retake import retake_not_in_state  # noqa: E402

BENCH = "predictor_accuracy"
TARGET = {"kind": "llvm", "num-cores": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny profile and 4 validation networks")
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--device", default="bench-cpu")
    parser.add_argument("--archs", type=int, default=100, help="validation networks")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=2024, help="seed of the validation networks")
    parser.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                        help="auto (default: edgenas profile's default, cpu for this target), cpu or wall")
    parser.add_argument("--no-drift-correction", action="store_true", help="profile without the reference network")
    parser.add_argument("--load", action="store_true",
                        help="a CPU-bound busy loop on the last core for the whole profile")
    parser.add_argument("--validation-db", default=None, metavar="FILE.db",
                        help="measurement store for the validation networks, shared by runs that measure the "
                             "same way (default: the workspace's); networks already in it are not timed again")
    parser.add_argument("--retakes", type=int, default=3, metavar="N",
                        help="passes that time again the validation networks not measured in the machine's fast "
                             "state (default: 3)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.workspace is None:
        import tempfile

        args.workspace = tempfile.mkdtemp(prefix="edgenas-bench-")
    if args.smoke:
        args.archs, args.budget_minutes = 3, 10.0
    return args


@contextlib.contextmanager
def busy_core(on: bool) -> Iterator[dict[str, Any]]:
    """A CPU-bound busy loop pinned to the last core while inside (this process pinned to
    the others), stopped and unpinned on the way out; yields what it did."""
    if not on:
        yield {"load": "none added"}
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--load needs at least two cores")
    last = cpus[-1]
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {last}))  # noqa: PLW1509
    os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        yield {"load": f"busy loop pinned to core {last}, benchmark on cores {cpus[:-1]}", "pid": proc.pid}
    finally:
        proc.kill()
        proc.wait()
        os.sched_setaffinity(0, set(cpus))


def ensure_profile(args: argparse.Namespace) -> tuple[float | None, bool, dict[str, Any]]:
    """Build the profile with the real command unless the workspace has it; its wall time
    and the conditions it ran in."""
    from nas.cli import main as edgenas

    path = Path(args.workspace) / "profiles" / f"{args.device}.json"
    if path.is_file():
        return None, False, {"note": "profile found in the workspace"}
    cmd = ["profile", "--device", args.device, "--target", json.dumps(TARGET), "--space", "mbv3",
           "--budget-minutes", str(args.budget_minutes), "--workspace", args.workspace,
           "--clock", args.clock, "--quiet"]
    if args.no_drift_correction:
        cmd += ["--no-drift-correction"]
    if args.smoke:
        cmd += ["--holdout", "2", "--train", "3", "--repeat", "5", "--max-blocks", "12"]
    before = os.getloadavg()[0]
    with busy_core(args.load) as load:
        t0 = time.monotonic()
        rc = edgenas(cmd)
        spent = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"edgenas profile failed with exit code {rc}")
    return spent, True, {**load, "command": "edgenas " + " ".join(cmd),
                         "load_average_1min": [before, os.getloadavg()[0]]}


def validation_device(profile: Any) -> str:
    """Where validation networks are stored: one set per way of measuring (clock, drift
    correction), shared by every profile measured that way."""
    clock = profile.timing.get("clock", "wall")
    return f"mbv3-small#validation-{clock}" + ("-corrected" if profile.reference else "")


def validation_set(space: Any, profile_store: Any, device: str, n: int, seed: int) -> list[Any]:
    """The first ``n`` distinct archs of the seeded sequence that the profile never measured
    (the same networks for every profile, but for the odd one a profile measured)."""
    used = {m.item for m in profile_store.query(device, space="mbv3")}
    rng, out, seen = random.Random(seed), [], set(used)
    while len(out) < n:
        arch = space.sample(rng)
        key = space.arch_key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


def truth_ms(m: Any, profile: Any) -> float:
    """A validation network's time in the profile's terms: drift corrected from its paired
    readings with the profile's reference baseline and exponent (whichever profile it was
    first stored with), or as timed when neither is corrected."""
    if m.reference_ms:
        if profile.reference is None:
            raise SystemExit("validation store mixes corrected and uncorrected measurements")
        from latency_predictors.reference import Reference

        return float(Reference.from_json(profile.reference).restate(m).median_ms)
    return float(m.median_ms)


def measure_validation(args: argparse.Namespace, space: Any, profile: Any, store: Any, vstore: Any) -> list[Any]:
    """Time every validation network end to end as the profile measures, unless ``vstore``
    has it already (stored as device :func:`validation_device`)."""
    from latency_predictors.measurements import Measurement
    from latency_predictors.profilers import profiler_for_profile
    from latency_predictors.tvm_profiler import tvm_version

    if profile.reference and profile.reference["item"] != space.arch_key(space.smallest()):
        raise SystemExit("this benchmark shares validation networks between profiles whose reference is the "
                         "smallest network")
    archs = validation_set(space, store, args.device, args.archs, args.seed)
    vdev = validation_device(profile)
    done = {m.item: m for m in vstore.query(vdev, role="holdout")}
    profiler = None

    def timed(arch: Any) -> Measurement:
        nonlocal profiler
        profiler = profiler or profiler_for_profile(profile)
        t = profiler.measure(space.build_static(arch), space.input_shape(arch))
        return Measurement(
            device=vdev, space="mbv3", role="holdout", item=space.arch_key(arch), backend="tvm", schedule="untuned",
            target=profile.target, tvm_version=tvm_version(), input_shape=space.input_shape(arch),
            number=t.number, repeat=t.repeat, median_ms=t.median_ms, spread_ms=t.spread_ms,
            results_ms=t.results_ms, reference_ms=t.reference_ms,
        )  # fmt: skip

    out = []
    for arch in tqdm(archs, desc="validation networks", unit="net", disable=args.quiet):
        key = space.arch_key(arch)
        if key not in done:
            done[key] = timed(arch)
            vstore.add(done[key])
        out.append(done[key])
    fast_ms = (profile.reference or {}).get("fast_ms")
    args.retaken = retake_not_in_state(out, fast_ms, lambda m: timed(space.arch_from_json(m.item)), vstore,
                                       args.retakes)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    from latency_predictors.device_profile import DeviceProfile, fit_cost_model
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.metrics import validation_figures

    build_s, built, conditions = ensure_profile(args)
    ws = Path(args.workspace)
    profile = DeviceProfile.load(ws / "profiles" / f"{args.device}.json")
    space = profile.build_space()
    store = MeasurementStore(f"sqlite:///{ws / 'measurements.db'}")
    vstore = MeasurementStore(args.validation_db) if args.validation_db else store
    before = os.getloadavg()[0]
    t0 = time.monotonic()
    measured = measure_validation(args, space, profile, store, vstore)
    validation_s = time.monotonic() - t0
    model = fit_cost_model(profile, store, space=space)
    archs = [space.arch_from_json(m.item) for m in measured]
    truth = np.asarray([truth_ms(m, profile) for m in measured])
    clock = profile.timing.get("clock", "wall")
    corrected = "drift corrected" if profile.reference else "not drift corrected"
    device = device_name("cpu") + f" TVM llvm 1 thread, untuned, {clock} clock, {corrected}"
    config = {"space": "mbv3/small", "target": TARGET, "clock": clock, "drift_correction": bool(profile.reference),
              "budget_minutes": profile.plan.get("budget_minutes", args.budget_minutes),
              "validation_networks": len(measured), "profile_counts": profile.counts, "profile_plan": profile.plan,
              "profile_conditions": conditions, "added_load": "busy loop on the last core during the profile"
              if args.load else "none", "validation_load_average_1min": [before, os.getloadavg()[0]],
              "validation_minutes": validation_s / 60, "validation_store": args.validation_db or "workspace",
              "workspace": str(ws), "smoke": args.smoke}
    records: list[dict[str, Any]] = []
    own = profile.validation.get(profile.predictor, {})
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
    if "within_10pct" in own:
        emit(records, BENCH, "profile_own_holdout_within_10pct", 100 * own["within_10pct"], "%", device,
             {**config, "n": own["n"]})
    noise = profile.noise_floor or {}
    if "cv_pct" in noise:
        emit(records, BENCH, "noise_floor_cv", noise["cv_pct"], "%", device,
             {**config, "how": noise.get("how"), "repeats": noise.get("n")})
        emit(records, BENCH, "noise_floor_max_dev", noise["max_rel_dev_pct"], "%", device, config)
    for key, figure in (("uncorrected_cv_pct", "noise_floor_uncorrected_cv"), ("drift_range_pct", "drift_range")):
        if key in noise:
            emit(records, BENCH, figure, noise[key], "%", device, config)
    within = np.asarray([m.spread_ms / m.median_ms for m in measured])
    emit(records, BENCH, "validation_iqr_over_median", 100 * float(np.median(within)), "%", device, config)
    if build_s is not None:
        emit(records, BENCH, "profile_wall_time", build_s / 60, "min", device, config)
    emit(records, BENCH, "profile_measurements", sum(profile.counts.values()), "count", device, config)
    state = noise.get("state")
    if state:
        emit(records, BENCH, "profile_slow_readings", state["slow_readings_pct"], "%", device, {**config, **state})
        emit(records, BENCH, "profile_not_in_fast_state", state["not_in_state"], "count", device, {**config, **state})
    if getattr(args, "retaken", None) and profile.reference and profile.reference.get("fast_ms"):
        r = args.retaken
        emit(records, BENCH, "validation_retaken", r["replaced"], "count", device,
             {**config, **r, "how": "validation networks not in the machine's fast state, timed again: "
                                    f"{r['tried']} retakes in {r['passes']} passes, this many replaced by a "
                                    f"fast-state retake, {r['still_not_in_state']} still not in the fast state"})
    if args.out:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
