"""The flags every command spells the same way, and old spellings kept for one release.

- ``--workspace DIR`` (every command, also after an action: ``devices list --workspace W``);
- ``--quiet`` (no progress bars or step lines; the old ``--no-progress`` still works);
- ``--torch-device auto|cpu|cuda`` (where torch runs; ``--device`` always names a device profile);
- ``--out FILE`` for files and ``--out-dir DIR`` for folders.

An old spelling (``--output``, ``-o``, ``--eval-device``, ``--no-progress``, ``eval --device
cuda``) still works and prints one deprecation line saying what to write instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from nas.workspace import DEFAULT, ENV_VAR

TORCH_DEVICES = ("auto", "cpu", "cuda")


class Deprecated(argparse.Action):
    """An old flag: stores into the new flag's ``dest`` and says once what to write instead."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(parser, option_string or self.dest, self.new)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def warn_deprecated(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    print(f"{parser.prog}: {old} is deprecated and will be removed in the next release; use {new}",
          file=sys.stderr)


def add_workspace(parser: argparse.ArgumentParser, actions: Sequence[argparse.ArgumentParser] = ()) -> None:
    """``--workspace DIR`` on a command and on each of its actions' parsers (an action's
    parser does not reset a value given before the action)."""
    help_text = f"workspace directory (default: ${ENV_VAR} or ./{DEFAULT})"
    parser.add_argument("--workspace", metavar="DIR", default=None, help=help_text)
    for action in actions:
        action.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS, help=help_text)


def add_quiet(parser: argparse.ArgumentParser, actions: Sequence[argparse.ArgumentParser] = ()) -> None:
    """``--quiet`` (and the old ``--no-progress``) on a command and on each of its actions."""
    help_text = "no progress bars or step lines, only the result"
    parser.add_argument("--quiet", action="store_true", help=help_text)
    parser.add_argument("--no-progress", dest="quiet", action=Deprecated, nargs=0, new="--quiet")
    for action in actions:
        action.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=help_text)
        action.add_argument("--no-progress", dest="quiet", action=Deprecated, nargs=0, new="--quiet",
                            default=argparse.SUPPRESS)


def add_torch_device(parser: argparse.ArgumentParser, what: str, old: Sequence[str] = ()) -> None:
    """``--torch-device`` (and old spellings of it, deprecated)."""
    parser.add_argument("--torch-device", choices=TORCH_DEVICES, default="auto",
                        help=f"where torch runs {what} (default: auto, a GPU if there is one)")
    for flag in old:
        parser.add_argument(flag, dest="torch_device", choices=TORCH_DEVICES, action=Deprecated,
                            new="--torch-device")


def add_out(parser: argparse.ArgumentParser, help_text: str, old: Sequence[str] = (), required: bool = False,
            metavar: str = "FILE") -> None:
    parser.add_argument("--out", metavar=metavar, required=required, help=help_text)
    if old:
        parser.add_argument(*old, dest="out", metavar=metavar, action=Deprecated, new="--out")


def add_out_dir(parser: argparse.ArgumentParser, help_text: str, old: Sequence[str] = (),
                required: bool = False) -> None:
    parser.add_argument("--out-dir", metavar="DIR", required=required and not old, help=help_text)
    if old:
        parser.add_argument(*old, dest="out_dir", metavar="DIR", action=Deprecated, new="--out-dir")


def positive_int(flag: str) -> Any:
    """An argparse type: an integer of at least 1 (``flag`` names it in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {value}")
        return value

    return parse
