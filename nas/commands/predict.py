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

from nas.errors import EdgenasError
from nas.workspace import add_workspace_argument, measurements_url, workspace_dir


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="predict latency/energy of archs on a profiled device",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, metavar="NAME")
    p.add_argument("--space", required=True)
    p.add_argument("--preset", default=None, help="space preset (default for mbv3: small)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", metavar="FILE", help="one arch per line, or a CSV with an arch column")
    which.add_argument("--all", action="store_true", help="every arch of the space (nb201)")
    p.add_argument("--out", required=True, metavar="FILE.csv")
    add_workspace_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from latency_predictors.device_profile import fit_cost_model
    from latency_predictors.measurements import MeasurementStore
    from nas.commands.devices import load_profile
    from nas.commands.profile import build_space

    workspace = workspace_dir(args.workspace)
    space = build_space(args.space, args.preset)
    profile = load_profile(workspace, args.device)
    if profile.space.get("name") != space.name:
        raise EdgenasError(
            f"device {args.device!r} was profiled on space {profile.space.get('name')!r}, not {space.name!r}; "
            f"pass --space {profile.space.get('name')}"
        )
    archs = read_archs(space, args)
    store = MeasurementStore(measurements_url(workspace))
    model = fit_cost_model(profile, store, space=space)
    preds = model.predict(archs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["arch", *preds]
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i, arch in enumerate(archs):
            writer.writerow([space.arch_key(arch)] + [f"{preds[c][i]:.6g}" for c in columns[1:]])
    print(f"wrote {len(archs)} predictions ({', '.join(columns[1:])}) for {args.device!r} to {out}")
    return 0


def read_archs(space: Any, args: argparse.Namespace) -> list[Any]:
    if args.all:
        try:
            return list(space.enumerate())
        except TypeError:
            raise EdgenasError(f"space {space.name!r} is too large to list; pass --archs FILE instead of --all") from None
    path = Path(args.archs)
    if not path.is_file():
        raise EdgenasError(f"--archs file {path} does not exist")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if "arch" not in (reader.fieldnames or []):
                raise EdgenasError(f"{path}: no 'arch' column; the header must name arch")
            texts = [(i, row["arch"]) for i, row in enumerate(reader, start=2)]
    else:
        texts = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), start=1) if ln.strip()]
    archs = []
    for line, text in texts:
        try:
            archs.append(space.arch_from_json(text.strip()))
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgenasError(f"{path}:{line}: not a {space.name} arch ({exc}); fix or remove the line") from None
    if not archs:
        raise EdgenasError(f"{path} lists no archs")
    return archs
