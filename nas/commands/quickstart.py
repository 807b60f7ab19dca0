"""``edgenas quickstart``: the whole flow on embedded defaults, on a CPU, in minutes.

Build the offline digits data set, train a small ``mbv3`` supernet, evaluate a few
sub-networks, profile this machine's CPU through TVM, search with a latency budget,
fine-tune + measure + export + register the best and the knee of the front, and write
the report (:func:`nas.quickstart.quickstart`). Run it again and every step reuses its
results.
"""

from __future__ import annotations

import argparse

from nas.commands._args import add_quiet, add_workspace, positive_int

SAVES_PROGRESS = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quickstart",
        help="the whole flow on built-in data and this CPU (minutes)",
        description="Build the offline digits data set, train a small mbv3 supernet, profile "
        "this CPU with TVM, search with a latency budget, fine-tune, measure, export and register "
        "the best and the knee, and write the report. Run it again to reuse the results.",
    )
    parser.add_argument("--steps", type=positive_int("--steps"), default=None, help="training steps (default: 150)")
    parser.add_argument("--trials", type=positive_int("--trials"), default=60, help="search trials (default: 60)")
    parser.add_argument("--space", choices=("mbv3", "gpt"), default="mbv3",
                        help="mbv3 (default): digits and a CNN; gpt: the pydoc corpus and a tiny language model, "
                        "searched under a decode-latency budget, ending with text each registered model writes")
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="fine-tuning epochs per pick (default: 2 for mbv3, 1 for gpt)")
    parser.add_argument("--profile-minutes", type=float, default=3.0,
                        help="time budget of the TVM profile of this CPU (default: 3)")
    parser.add_argument("--no-parallel-profile", dest="parallel_profile", action="store_false",
                        help="profile after training instead of beside it on a core of its own (the default "
                        "when this process may use two or more cores)")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.quickstart import QuickstartOptions, quickstart
    from nas.workspace import Workspace

    options = QuickstartOptions(args.steps, args.trials, args.finetune_epochs, args.profile_minutes, not args.quiet,
                                args.space, args.parallel_profile)
    summary = quickstart(Workspace.resolve(args.workspace), options)
    for label, text in summary.samples.items():
        print(f"{label} writes: {text!r}")
    print(f"\nquickstart done in {summary.seconds:.0f} s ({summary.timing_line()}). Open {summary.report}")
    knee = "quickstart-knee" if args.space == "mbv3" else f"quickstart-{args.space}-knee"
    print(f"next: `edgenas registry list`, `edgenas registry export {knee} --format onnx --out-dir dist/`")
    return 0
