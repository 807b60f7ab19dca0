"""``edgenas profile``: time a device's blocks and networks with TVM, fit and store its predictors.

Example (this machine's CPU, one thread; a device over RPC adds ``--rpc HOST:PORT`` or
``--rpc-tracker HOST:PORT --rpc-key KEY``)::

    edgenas profile --device laptop --target '{"kind": "llvm", "num-cores": 1}' --space mbv3

Measurements are stored as they are taken; run the same command again to resume
(:func:`nas.profiling.profile_device`).
"""

from __future__ import annotations

import argparse
from typing import Any

from nas.commands._args import add_quiet, add_workspace

SAVES_PROGRESS = True


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "profile",
        help="profile a device with TVM (local or RPC) and store its latency predictors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, metavar="NAME", help="name the profile is stored under (letters, digits, -_.)")
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
    p.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                   help="auto (default): cpu for a local target with \"num-cores\": 1, wall otherwise; "
                        "wall: elapsed time (TVM time_evaluator); cpu: CPU time of the model's one thread, "
                        "robust to other processes on a shared machine (local num-cores 1 only)")
    p.add_argument("--no-drift-correction", action="store_true",
                   help="do not pair measurements with a reference network (default: pair them, and "
                        "correct every figure for the machine's drift)")
    p.add_argument("--state-wait", type=float, default=20.0, metavar="SECONDS",
                   help="wait up to this long per measurement for the machine's fast state, judged by the "
                        "reference network (default: 20; 0: no state gate)")
    p.add_argument("--max-blocks", type=int, default=None, metavar="N", help="time at most N distinct blocks")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled networks and blocks (default: 0)")
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from latency_predictors.profilers import Reach
    from nas.profiling import profile_device, summary_line
    from nas.workspace import Workspace

    workspace = Workspace.resolve(args.workspace)
    reach = Reach.from_flags(args.rpc, args.rpc_tracker, args.rpc_key, args.cross_compiler)
    profile = profile_device(
        workspace, args.device, args.target, space=args.space, preset=args.preset, reach=reach,
        backend=args.backend, tune_trials=args.tune_trials, repeat=args.repeat, clock=args.clock,
        budget_minutes=args.budget_minutes, holdout=args.holdout, train=args.train, max_blocks=args.max_blocks,
        seed=args.seed, drift_correction=not args.no_drift_correction, state_wait_s=args.state_wait,
        progress=not args.quiet,
    )
    print(summary_line(profile))
    print(f"profile written to {workspace.profile_path(args.device)}")
    return 0
