"""``edgenas cascade``: the edge answers when it is sure, else offloads to the cloud's largest network.

Examples::

    edgenas cascade --checkpoint runs/digits --arch min --edge pi --cloud server --link 20mbit,40ms \\
        --target-accuracy 97 --out cascade.json
    edgenas cascade --checkpoint runs/digits --model digits-pi --edge pi --cloud server --link 5mbit,80ms \\
        --confidence margin --max-latency-ms 30

Every validation image of the checkpoint's data runs on the edge (timed) and is offloaded
to the cloud process (timed, over TCP on 127.0.0.1 through the software link); the table
shows accuracy, mean and p95 latency and the share offloaded as the confidence threshold
varies, next to edge only and cloud only. With a target (accuracy or mean latency) the
chosen threshold is run once more for real.
"""

from __future__ import annotations

import argparse
from typing import Any

from nas.commands._args import add_out, add_quiet, add_workspace, positive_int

SAVES_PROGRESS = False


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from nas.split.cascade import CONFIDENCES
    from nas.split.link import PRECISIONS

    p = subparsers.add_parser(
        "cascade",
        help="offload when unsure: accuracy against latency as the edge's confidence threshold varies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="trained supernet: the cloud runs its largest network; its validation images are used")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", metavar="ARCH", help="the edge's sub-network: min, max, JSON or a JSON file")
    which.add_argument("--model", metavar="NAME[:vN]", help="the edge's sub-network: a registered (fine-tuned) model")
    p.add_argument("--edge", required=True, metavar="NAME", help="the edge device (a profiled device)")
    p.add_argument("--cloud", required=True, metavar="NAME", help="the cloud device (a profiled device, same space)")
    p.add_argument("--link", required=True, metavar="RATE,RTT[,ENERGY]",
                   help="the link, e.g. 20mbit,40ms (see edgenas split)")
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                   help="how an offloaded input crosses the link (default fp32)")
    p.add_argument("--confidence", choices=CONFIDENCES, default="softmax",
                   help="softmax: the largest probability; margin: its gap to the second (default softmax)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-accuracy", metavar="PCT|cloud-D",
                        help="pick the fastest threshold reaching this accuracy (%%), or within D points of the "
                        "cloud's (cloud-0.5), and run it for real")
    target.add_argument("--max-latency-ms", type=float, metavar="MS",
                        help="pick the most accurate threshold within this mean latency and run it for real")
    p.add_argument("--limit", type=positive_int("--limit"), help="use only the first N validation images")
    p.add_argument("--port", type=int, default=0, help="port of the cloud process on 127.0.0.1 (default 0: a free one)")
    p.add_argument("--request-timeout-s", type=float, default=60.0,
                   help="give up on a cloud that does not answer within this many seconds (default 60)")
    add_out(p, "write the sweep and the baselines as JSON")
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.search.result import write_json
    from nas.split import RunSettings, parse_link
    from nas.split.pipeline import cascade
    from nas.workspace import Workspace

    settings = RunSettings(port=args.port, request_timeout_s=args.request_timeout_s)
    doc = cascade(Workspace.resolve(args.workspace), args.edge, args.cloud, parse_link(args.link), args.checkpoint,
                  arch=args.arch, model=args.model, precision=args.precision, kind=args.confidence,
                  target_accuracy=args.target_accuracy, max_latency_ms=args.max_latency_ms, limit=args.limit,
                  settings=settings, log=None if args.quiet else print)
    if args.out:
        write_json(args.out, doc)
    print(format_cascade(doc))
    return 0


def format_cascade(doc: dict[str, Any]) -> str:
    """The sweep as a table (every fourth threshold), the baselines and the choice."""
    lines = [f"cascade of {doc['images']} images, confidence {doc['confidence']}, link {doc['link']['label']} "
             "(latency measured; predicted mean beside it)",
             f"{'threshold':>10} {'accuracy %':>10} {'mean ms':>9} {'p95 ms':>9} {'offloaded':>9} {'pred. mean':>10}"]
    rows = doc["sweep"]
    for row in rows[:: max(1, len(rows) // 10)] + rows[-1:]:
        lines.append(f"{row['threshold']:>10.4f} {row['accuracy']:>10.2f} {row['mean_ms']:>9.2f} {row['p95_ms']:>9.2f} "
                     f"{100 * row['offloaded']:>8.0f}% {row.get('predicted_mean_ms', float('nan')):>10.2f}")
    for name, b in doc["baselines"].items():
        lines.append(f"{name.replace('_', ' '):>10} {b['accuracy']:>10.2f} {b['mean_ms']:>9.2f} {b['p95_ms']:>9.2f} "
                     f"{100 * b['offloaded']:>8.0f}%")
    chosen, ran = doc.get("chosen"), doc.get("chosen_run")
    if chosen and chosen.get("threshold") is None:
        lines.append(f"no threshold meets {chosen['goal']}: {chosen['why']}")
    elif chosen:
        lines.append(f"chosen for {chosen['goal']}: threshold {chosen['threshold']:.4f} ({chosen['accuracy']:.2f} %, "
                     f"mean {chosen['mean_ms']:.2f} ms, {100 * chosen['offloaded']:.0f}% offloaded)")
        if ran:
            lines.append(f"run for real at that threshold: {ran['accuracy']:.2f} %, mean {ran['mean_ms']:.2f} ms, "
                         f"p95 {ran['p95_ms']:.2f} ms, {100 * ran['offloaded']:.0f}% offloaded")
    return "\n".join(lines)
