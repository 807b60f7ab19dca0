"""``edgenas report STUDY [--device NAME ...] -o report.html``: the page a person picks from."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.workspace import add_workspace_argument, workspace_dir


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="HTML report of a study: Pareto fronts per device, predictors, registered models",
        description="Write one self-contained HTML file (works offline) with every device's "
        "Pareto front, the latency predictors' validation, the registered models with predicted "
        "against measured cost, and what training and search cost; PNG figures go beside it.",
    )
    parser.add_argument("study", help="study name (as printed by edgenas search)")
    parser.add_argument("--device", action="append", default=None, metavar="NAME",
                        help="only these devices (repeatable; default: every device of the study)")
    parser.add_argument("--storage", default=None,
                        help="study storage URL or journal (default: the workspace's SQLite file)")
    parser.add_argument("-o", "--out", default=None, metavar="FILE",
                        help="HTML file to write (default: WORKSPACE/reports/STUDY.html)")
    add_workspace_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.report import write_report
    from nas.search.storage import check_reachable, open_storage, parse_storage

    workspace = workspace_dir(args.workspace)
    spec = parse_storage(args.storage, workspace)
    if spec.is_sqlite and not Path(spec.target.split(":///", 1)[-1]).is_file():
        from nas.errors import EdgenasError

        raise EdgenasError(f"no study database at {spec.display}; run `edgenas search` first or pass --storage")
    check_reachable(spec)
    storage = open_storage(spec, heartbeat=False)
    out = Path(args.out) if args.out else workspace / "reports" / f"{args.study}.html"
    html_path, pngs = write_report(args.study, storage, spec.display, workspace, out, args.device)
    print(f"report: {html_path.resolve()}")
    if pngs:
        print(f"figures: {pngs[0].parent.resolve()} ({len(pngs)} PNG)")
    return 0
