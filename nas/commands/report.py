"""``edgenas report STUDY [--device NAME ...] [--adapt RUN_DIR ...] --out report.html``: the page a person picks from."""

from __future__ import annotations

import argparse

from nas.commands._args import add_out, add_quiet, add_workspace

SAVES_PROGRESS = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="HTML report of a study: Pareto fronts per device, predictors, registered models",
        description="Write one self-contained HTML file (works offline) with every device's "
        "Pareto front, the latency predictors' validation, the registered models with predicted "
        "against measured cost, and what training and search cost; PNG figures go beside it.",
    )
    parser.add_argument("study", nargs="?", default=None,
                        help="study name (as printed by edgenas search); optional with --adapt or --split")
    parser.add_argument("--device", action="append", default=None, metavar="NAME",
                        help="only these devices (repeatable; default: every device of the study)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="study storage URL or journal (default: the workspace's SQLite file)")
    add_out(parser, "HTML file to write (default: WORKSPACE/reports/STUDY.html, or adapt.html)", old=("-o",))
    parser.add_argument("--adapt", action="append", default=[], metavar="RUN_DIR",
                        help="also show an `edgenas adapt` output (its out_dir): accuracy per method over "
                        "rounds, bytes per method (repeatable)")
    parser.add_argument("--split", action="append", default=[], metavar="FILE",
                        help="also show an `edgenas split --out` plan (breakdown per split point, best split "
                        "against bandwidth) or an `edgenas cascade --out` sweep (repeatable)")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.report import write_report
    from nas.workspace import Workspace

    html_path, pngs = write_report(Workspace.resolve(args.workspace), args.study, out=args.out,
                                   storage=args.storage, devices=args.device, adapt_dirs=args.adapt,
                                   split_files=args.split)
    print(f"report: {html_path.resolve()}")
    if pngs:
        print(f"figures: {pngs[0].parent.resolve()} ({len(pngs)} PNG)")
    return 0
