"""``edgenas registry list | show REF | verify [REF] | export REF --format F --out-dir DIR | gc``.

REF is ``name:vN``, a name (its latest version) or the numeric id ``list`` prints.
``verify`` exits with 1 when an artifact is missing or changed.
"""

from __future__ import annotations

import argparse
import json
import time

from nas.commands._args import add_out_dir, add_quiet, add_workspace
from nas.export import FORMATS

SAVES_PROGRESS = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "registry",
        help="registered (fine-tuned, exported) models",
        description="List, show, verify and export registered models. Every artifact's "
        "sha256 is checked before it is used.",
    )
    parser.add_argument("--registry-url", default=None, metavar="URL",
                        help="SQLAlchemy URL of a shared registry database (default: SQLite in the workspace)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every entry, one line each")
    listing.add_argument("--name", default=None, help="only the versions of this name")
    show = sub.add_parser("show", help="one entry as JSON")
    show.add_argument("ref", help="name:vN, a name (latest version) or an id")
    verify = sub.add_parser("verify", help="check artifacts against their sha256 (all entries by default)")
    verify.add_argument("ref", nargs="?", help="one entry (default: every entry)")
    export = sub.add_parser("export", help="copy an artifact out, after checking it")
    export.add_argument("ref", help="name:vN, a name (latest version) or an id")
    export.add_argument("--format", required=True, choices=FORMATS, help="which export to copy")
    add_out_dir(export, "folder to copy the artifact into", old=("--out",), required=True)
    sub.add_parser("gc", help="remove artifact directories no entry refers to")
    add_quiet(parser, list(sub.choices.values()))
    add_workspace(parser, list(sub.choices.values()))
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.errors import EdgenasError
    from nas.workspace import Workspace

    registry = Workspace.resolve(args.workspace).registry(args.registry_url)
    if args.action == "list":
        entries = registry.list(args.name)
        if not entries:
            print("the registry is empty: `edgenas finetune` registers models")
            return 0
        print(f"{'id':>4}  {'ref':<28} {'device':<16} {'acc %':>6} {'lat ms (pred/meas)':>19}  created")
        for e in entries:
            m = e.metrics
            lat = f"{_fmt(m.get('predicted_latency_ms'))}/{_fmt(m.get('measured_latency_ms'))}"
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created_at))
            print(f"{e.id:>4}  {e.ref:<28} {e.device:<16} {_fmt(m.get('accuracy')):>6} {lat:>19}  {created}")
        return 0
    if args.action == "show":
        print(json.dumps(registry.to_json(registry.get(args.ref)), indent=2))
        return 0
    if args.action == "verify":
        entries = [registry.get(args.ref)] if args.ref else registry.list()
        bad = 0
        for e in entries:
            problems = registry.verify(e.ref)
            bad += bool(problems)
            print(f"{e.ref}: " + ("ok" if not problems else "; ".join(problems)))
        if bad:
            print(f"{bad} entr{'y' if bad == 1 else 'ies'} failed verification; re-register them")
            return 1
        return 0
    if args.action == "export":
        if not args.out_dir:
            raise EdgenasError("registry export needs --out-dir DIR")
        path = registry.export(args.ref, args.format, args.out_dir)
        print(f"exported {args.ref} ({args.format}) to {path}")
        return 0
    removed = registry.gc()
    print(f"removed {len(removed)} unreferenced artifact director{'y' if len(removed) == 1 else 'ies'}")
    return 0


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
