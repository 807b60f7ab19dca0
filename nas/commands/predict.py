"""``edgenas predict``: predicted latency (and energy where known) of archs on a profiled device.

Examples::

    edgenas predict --device laptop --space mbv3 --archs archs.jsonl --out laptop.csv
    edgenas predict --device pixel7 --space nb201 --all --out pixel7.csv

``--archs`` is a file with one arch per line (JSON; for nb201 also cell strings or
indices) or a CSV with an ``arch`` column; ``--all`` predicts every arch of a space small
enough to list (nb201).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from nas.commands._args import add_out, add_quiet, add_workspace

SAVES_PROGRESS = False


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="predict latency/energy of archs on a profiled device",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, metavar="NAME", help="a profiled or imported device")
    p.add_argument("--space", required=True, help="search space of the archs")
    p.add_argument("--preset", default=None, help="space preset (default for mbv3: small)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", metavar="FILE", help="one arch per line, or a CSV with an arch column")
    which.add_argument("--all", action="store_true", help="every arch of the space (nb201)")
    add_out(p, "CSV to write: arch and one column per predicted cost", required=True, metavar="FILE.csv")
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.devices import predict_costs
    from nas.errors import EdgenasError
    from nas.spaces import build_space, read_arch_file
    from nas.workspace import Workspace

    workspace = Workspace.resolve(args.workspace)
    space = build_space(args.space, preset=args.preset)
    if args.all:
        try:
            archs = list(space.enumerate())
        except TypeError:
            raise EdgenasError(f"space {space.name!r} is too large to list; pass --archs FILE instead of --all") from None
    else:
        archs = read_arch_file(space, args.archs)
    preds = predict_costs(workspace, args.device, space, archs)
    out = Path(args.out)
    if out.is_dir():
        raise EdgenasError(f"--out {out} is a directory; name a CSV file")
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["arch", *preds]
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i, arch in enumerate(archs):
            writer.writerow([space.arch_key(arch)] + [f"{preds[c][i]:.6g}" for c in columns[1:]])
    print(f"wrote {len(archs)} predictions ({', '.join(columns[1:])}) for {args.device!r} to {out}")
    return 0
