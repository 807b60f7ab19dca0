"""``edgenas registry list | show REF | verify [REF] | export REF --format F --out-dir DIR | gc [--yes]``.

REF is ``name:vN``, a name (its latest version) or the numeric id ``list`` prints.
``verify`` exits with 1 when an artifact is missing or changed, or when the artifacts
folder holds model folders no entry knows. ``gc`` shows the unreferenced folders that
provably belong to this registry and removes them after asking (``--yes``: without asking);
folders it cannot prove are this registry's are listed and left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
    gc = sub.add_parser("gc", help="remove artifact directories no entry refers to (after asking)")
    gc.add_argument("--yes", action="store_true", help="remove without asking (needed when not on a terminal)")
    add_quiet(parser, list(sub.choices.values()))
    add_workspace(parser, list(sub.choices.values()))
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.errors import EdgenasError
    from nas.workspace import Workspace

    workspace = Workspace.resolve(args.workspace)
    if args.registry_url is None and _never_used(workspace.registry_dir) and args.action in ("list", "verify", "gc"):
        print("the registry is empty: `edgenas finetune` registers models")
        return 0
    registry = workspace.registry(args.registry_url, create=False)
    if args.action == "list":
        entries = registry.list(args.name)
        _, unknown = registry.unreferenced()
        if unknown and not args.name:
            print(f"note: {registry.artifacts} holds {len(unknown)} model folder(s) no entry of this database knows "
                  "(another registry's, or a lost registry.db?); `edgenas registry verify` lists them", file=sys.stderr)
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
        ours, unknown = registry.unreferenced() if not args.ref else ([], [])
        for path in ours:
            print(f"{path}: no entry refers to it (a registration that crashed); `edgenas registry gc` removes it")
        for path in unknown:
            print(f"{path}: no entry of this database knows it, and it is not provably this registry's "
                  "(another registry's, or a lost registry.db?); left alone")
        return 1 if bad or ours or unknown else 0
    if args.action == "export":
        if not args.out_dir:
            raise EdgenasError("registry export needs --out-dir DIR")
        path = registry.export(args.ref, args.format, args.out_dir)
        print(f"exported {args.ref} ({args.format}) to {path}")
        return 0
    ours, unknown = registry.unreferenced()
    for path in unknown:
        print(f"keeping {path}: not provably this registry's (no entry of {registry.url} refers to it)")
    if not ours:
        print("nothing to remove")
        return 0
    for path in ours:
        print(f"will remove {path} ({_size(path)})")
    if not args.yes:
        if not sys.stdin.isatty():
            raise EdgenasError(f"registry gc would remove {len(ours)} folder(s); pass --yes to confirm")
        if input(f"remove {len(ours)} folder(s)? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    removed = registry.gc(ours)
    print(f"removed {len(removed)} unreferenced artifact director{'y' if len(removed) == 1 else 'ies'}")
    return 0


def _never_used(root: Path) -> bool:
    """No database and no model folder: a workspace that never registered anything (a lost
    ``registry.db`` beside model folders is not this; it is an error)."""
    artifacts = root / "artifacts"
    return not (root / "registry.db").exists() and not (artifacts.is_dir() and any(artifacts.iterdir()))


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{total / 1e6:.1f} MB"


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
