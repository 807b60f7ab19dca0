"""``edgenas split``: where to split a network between an edge device and the cloud, and run it.

Examples::

    edgenas split --arch max --edge pi --cloud server --link 20mbit,40ms --out plan.json
    edgenas split --model digits-pi --edge pi --cloud server --link 5mbit,80ms,100nj --precision int8
    edgenas split --arch max --edge pi --cloud server --link 20mbit,40ms --run --at best --at edge --at cloud

For every cut of the arch it prints the predicted edge compute, the activation's size
(fp32, fp16, int8), the link time and the cloud compute, with the best split; ``--run``
runs the chosen points for real (the cloud part in a second process, TCP on 127.0.0.1,
the link enforced in software) and prints measured against predicted.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.commands._args import add_out, add_quiet, add_workspace, positive_int

SAVES_PROGRESS = False


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from latency_predictors.device_profile import PART_CORRECTIONS
    from nas.split.link import PRECISIONS

    p = subparsers.add_parser(
        "split",
        help="split a network between an edge device and the cloud: plan from predictors, run for real",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", metavar="ARCH", help="min, max, an arch as JSON, or a JSON file")
    which.add_argument("--model", metavar="NAME[:vN]", help="a registered model")
    p.add_argument("--edge", required=True, metavar="NAME", help="the edge device (a profiled device)")
    p.add_argument("--cloud", required=True, metavar="NAME", help="the cloud device (a profiled device, same space)")
    p.add_argument("--link", required=True, metavar="RATE,RTT[,ENERGY]",
                   help="the link: rate in kbit/mbit/gbit per second, round trip in ms, optionally radio energy "
                   "per bit (e.g. 20mbit,40ms or 5mbit,80ms,100nj)")
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                   help="how activations cross the link (default fp32; the table shows all three sizes)")
    p.add_argument("--correction", choices=PART_CORRECTIONS, default="proportional",
                   help="how the whole-network correction prices part of a network (default proportional: the "
                   "whole network's correction shared out by block sums; per_part: each part corrected as a "
                   "network of its own; none)")
    p.add_argument("--at", action="append", default=[], metavar="POINT",
                   help="split point(s) to show or run: best, edge, cloud or a number (repeatable; --run "
                   "default: best)")
    p.add_argument("--run", action="store_true",
                   help="run it for real: cloud part in a second process, TCP on 127.0.0.1, link in software")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="--run with a trained supernet's weights (default: random weights; latency is the same)")
    p.add_argument("--requests", type=positive_int("--requests"), default=20,
                   help="timed requests per point with --run (default 20, after 3 untimed)")
    p.add_argument("--port", type=int, default=0, help="port of the cloud process on 127.0.0.1 (default 0: a free one)")
    p.add_argument("--request-timeout-s", type=float, default=60.0,
                   help="give up on a cloud that does not answer a request within this many seconds (default 60)")
    add_out(p, "write the plan (and the runs) as JSON")
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.errors import EdgenasError
    from nas.search.result import write_json
    from nas.split import RunSettings, format_plan, parse_link
    from nas.split.pipeline import split
    from nas.workspace import Workspace

    if args.checkpoint and not args.run:
        raise EdgenasError("--checkpoint gives the weights of --run; add --run or drop it")
    settings = RunSettings(requests=args.requests, port=args.port, request_timeout_s=args.request_timeout_s)
    plan, doc = split(Workspace.resolve(args.workspace), args.edge, args.cloud, parse_link(args.link),
                      arch=args.arch, model=args.model, precision=args.precision, correction=args.correction,
                      run=args.run, at=args.at, checkpoint=args.checkpoint, settings=settings,
                      log=None if args.quiet else print)
    if args.out:
        write_json(args.out, doc)
    print(format_plan(plan))
    for chosen in doc.get("selected", []):
        print(f"point {chosen['position']} ({chosen['kind']}, {chosen['label']}): {chosen['total_ms']:.2f} ms predicted")
    for r in doc.get("runs", []):
        s, pred = r["summary"], r["predicted"]
        print(f"ran point {r['position']} ({pred['kind']}): measured e2e median {s['e2e_ms']['median']:.2f} ms "
              f"(p95 {s['e2e_ms']['p95']:.2f}; {s['e2e_cpu_ms']['median']:.2f} with compute on the CPU clock, "
              f"{s['e2e_corrected_ms']['median']:.2f} drift corrected) | "
              f"predicted {pred['total_ms']:.2f} ms ({r['error_pct']['e2e_ms']:+.1f} %) over {s['n']} requests")
    if args.out:
        print(f"wrote {json.dumps(str(args.out))}")
    return 0
