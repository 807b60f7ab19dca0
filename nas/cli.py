"""``edgenas`` command line: sub-commands live in ``nas.commands``, one module each.

Every user-facing error is an :class:`EdgenasError` (or a ``ValueError`` from validation),
printed as one line on stderr with exit code 2; Ctrl-C exits with 130 after the command
has saved its progress.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from nas.commands import COMMANDS
from nas.errors import EdgenasError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgenas",
        description="Hardware-aware NAS across cloud and edge: train one supernet, profile "
        "devices with TVM, search per device, ship and adapt sub-networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"nas.commands.{name}")
        command = module.add_parser(sub)
        command.set_defaults(_run=module.run)
    return parser


# torch.export warns about its own deprecated LeafSpec use on every export (torch 2.13); it
# says nothing about the user's model, so it is hidden here and in TVM's worker processes.
_QUIET = "ignore:`isinstance(treespec:FutureWarning"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec", category=FutureWarning)
    if _QUIET not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), _QUIET]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args._run(args)
    except (EdgenasError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"edgenas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgenas {args.command}: interrupted; progress is saved, run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgenas devices show X | head`: the reader left, nothing to report
        _silence_stdout()
        return 141
    return int(result or 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
