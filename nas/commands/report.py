"""``edgenas report [STUDY] [--device NAME ...] [--adapt RUN_DIR ...] -o report.html``: the page a person picks from."""

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
    parser.add_argument("study", nargs="?", default=None,
                        help="study name (as printed by edgenas search); optional with --adapt")
    parser.add_argument("--device", action="append", default=None, metavar="NAME",
                        help="only these devices (repeatable; default: every device of the study)")
    parser.add_argument("--storage", default=None,
                        help="study storage URL or journal (default: the workspace's SQLite file)")
    parser.add_argument("-o", "--out", default=None, metavar="FILE",
                        help="HTML file to write (default: WORKSPACE/reports/STUDY.html, or adapt.html)")
    parser.add_argument("--adapt", action="append", default=[], metavar="RUN_DIR",
                        help="also show an `edgenas adapt` output (its out_dir): accuracy per method over "
                        "rounds, bytes per method (repeatable)")
    add_workspace_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.errors import EdgenasError
    from nas.report import load_adapt_run, write_report
    from nas.report.adapt import unique_names

    if args.study is None and not args.adapt:
        raise EdgenasError("give a STUDY (as printed by edgenas search), --adapt RUN_DIR (an edgenas adapt "
                           "out_dir), or both")
    adapt_runs = unique_names([load_adapt_run(path) for path in args.adapt])
    workspace = workspace_dir(args.workspace)
    storage, display = None, ""
    if args.study is not None:
        from nas.search.storage import check_reachable, open_storage, parse_storage

        spec = parse_storage(args.storage, workspace)
        if spec.is_sqlite and not Path(spec.target.split(":///", 1)[-1]).is_file():
            raise EdgenasError(f"no study database at {spec.display}; run `edgenas search` first or pass --storage")
        check_reachable(spec)
        storage, display = open_storage(spec, heartbeat=False), spec.display
    out = Path(args.out) if args.out else workspace / "reports" / f"{args.study or 'adapt'}.html"
    html_path, pngs = write_report(args.study, storage, display, workspace, out, args.device, adapt_runs)
    print(f"report: {html_path.resolve()}")
    if pngs:
        print(f"figures: {pngs[0].parent.resolve()} ({len(pngs)} PNG)")
    return 0
