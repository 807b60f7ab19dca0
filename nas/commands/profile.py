"""``edgenas profile``: time a device's blocks and networks with TVM, fit and store its predictors.

Example (this machine's CPU, one thread; a device over RPC adds ``--rpc HOST:PORT`` or
``--rpc-tracker HOST:PORT --rpc-key KEY``)::

    edgenas profile --device laptop --target '{"kind": "llvm", "num-cores": 1}' --space mbv3

Measurements are stored as they are taken; run the same command again to resume.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import add_workspace_argument, measurements_url, profiles_dir, workspace_dir

DEFAULT_PRESETS = {"mbv3": "small"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "profile",
        help="profile a device with TVM (local or RPC) and store its latency predictors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, metavar="NAME", help="name the profile is stored under")
    p.add_argument("--target", required=True, metavar="JSON",
                   help='TVM target as JSON, e.g. \'{"kind": "llvm", "num-cores": 1}\'')
    reach = p.add_mutually_exclusive_group()
    reach.add_argument("--rpc-tracker", metavar="HOST:PORT", help="reach the device through a TVM RPC tracker")
    reach.add_argument("--rpc", metavar="HOST:PORT", help="reach the device's TVM RPC server directly")
    p.add_argument("--rpc-key", metavar="KEY", help="the device's key at the tracker")
    p.add_argument("--cross-compiler", metavar="CC", help="C++ compiler that links for the device (e.g. aarch64-linux-gnu-g++)")
    p.add_argument("--space", default="mbv3", help="search space to profile (default: mbv3)")
    p.add_argument("--preset", default=None, help="space preset (default for mbv3: small)")
    p.add_argument("--budget-minutes", type=float, default=20.0, metavar="N", help="time budget (default: 20)")
    p.add_argument("--tune-trials", type=int, default=0, metavar="N",
                   help="MetaSchedule trials per compiled module (default 0: TVM's untuned pipeline)")
    p.add_argument("--backend", choices=("tvm", "eager"), default="tvm",
                   help="tvm (default) or eager: the torch baseline, local CPU only")
    p.add_argument("--holdout", type=int, default=None, metavar="N", help="whole networks kept out for validation")
    p.add_argument("--train", type=int, default=None, metavar="N", help="whole networks for the correction model")
    p.add_argument("--repeat", type=int, default=15, metavar="N", help="timed repeats per measurement")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: TVM time_evaluator (default); cpu: CPU time of the model's one thread, "
                        "robust to other processes on a shared machine (local num-cores 1 only)")
    p.add_argument("--max-blocks", type=int, default=None, metavar="N", help="time at most N distinct blocks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_workspace_argument(p)
    return p


def build_space(name: str, preset: str | None) -> Any:
    from search_spaces import get_space

    preset = preset or DEFAULT_PRESETS.get(name)
    try:
        return get_space(name, preset=preset) if preset else get_space(name)
    except KeyError as exc:
        raise EdgenasError(f"--space: {exc.args[0]}") from None


def run(args: argparse.Namespace) -> int:
    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.errors import ProfilingError
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
    from latency_predictors.timing import TimingConfig

    if args.rpc_key and not args.rpc_tracker:
        raise EdgenasError("--rpc-key needs --rpc-tracker HOST:PORT (a direct --rpc server has no key)")
    if args.rpc_tracker and not args.rpc_key:
        raise EdgenasError("--rpc-tracker needs --rpc-key KEY (the key the device's rpc_server registered)")
    workspace = workspace_dir(args.workspace)
    space = build_space(args.space, args.preset)
    timing = TimingConfig(repeat=args.repeat, clock=args.clock)
    sizes = (("holdout", args.holdout), ("train", args.train), ("max_blocks", args.max_blocks))
    plan_kwargs = {k: v for k, v in sizes if v is not None}
    plan = ProfilePlan(budget_minutes=args.budget_minutes, seed=args.seed, **plan_kwargs)
    try:
        profiler, reached, schedule = _profiler(args, workspace, timing)
        store = MeasurementStore(measurements_url(workspace))
        profile = DeviceProfile(
            name=args.device, space=space.describe(), target=profiler.describe()["target"], reached=reached,
            backend=args.backend, schedule=schedule.to_json(), schedule_label=schedule.label,
            timing=timing.to_json(), energy=profiler.describe().get("energy", "not measured"),
        )  # fmt: skip
        builder = ProfileBuilder(profile, space, profiler, store, profiles_dir(workspace), plan=plan,
                                 progress=not args.no_progress)  # fmt: skip
        profile = builder.run()
    except ProfilingError as exc:
        raise EdgenasError(str(exc)) from None
    print(summary_line(profile))
    print(f"profile written to {workspace / 'profiles' / (args.device + '.json')}")
    return 0


def _profiler(args: argparse.Namespace, workspace: Any, timing: Any) -> tuple[Any, dict[str, Any], Any]:
    from latency_predictors.eager_profiler import EagerProfiler
    from latency_predictors.energy import detect_meter
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import TVMProfiler, parse_target, target_threads

    schedule = Schedule.from_trials(args.tune_trials, workspace / "tuning" / args.device)
    target = parse_target(args.target)
    if args.backend == "eager":
        if args.rpc or args.rpc_tracker or args.tune_trials:
            raise EdgenasError("--backend eager times this machine's CPU only: drop --rpc/--rpc-tracker/--tune-trials")
        return EagerProfiler(threads=target_threads(target), timing=timing), {"kind": "local"}, schedule
    if args.rpc or args.rpc_tracker:
        from latency_predictors.rpc import connect

        session = connect(target, rpc=args.rpc, tracker=args.rpc_tracker, key=args.rpc_key,
                          cross_compiler=args.cross_compiler)  # fmt: skip
        profiler = TVMProfiler(target, session=session, timing=timing, schedule=schedule)
        return profiler, session.describe(), schedule
    profiler = TVMProfiler(target, timing=timing, schedule=schedule, meter=detect_meter(target))
    return profiler, {"kind": "local"}, schedule


def summary_line(profile: Any) -> str:
    figures = profile.validation.get(profile.predictor, {})
    noise = profile.noise_floor or {}
    parts = [f"{profile.name}: predictor {profile.predictor}"]
    if "within_10pct" in figures:
        parts.append(
            f"{100 * figures['within_10pct']:.0f}% within ±10% on {figures['n']} held-out networks "
            f"(MAPE {figures['mape_pct']:.1f}%, Spearman {figures['spearman']:.3f})"
        )
    if "cv_pct" in noise:
        parts.append(f"noise floor CV {noise['cv_pct']:.1f}%")
    parts.append(f"energy {profile.energy}")
    return "; ".join(parts) + "; " + json.dumps(profile.counts, sort_keys=True)
