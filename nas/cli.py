"""``edgenas`` command line: sub-commands live in ``nas.commands``, one thin module each.

Exit codes:

- ``0``: the command did what was asked;
- ``1``: it ran and found a problem (``registry verify`` found a changed artifact, ``search
  --verify`` could not verify its recommendation: its result is written, marked unverified);
- ``2``: bad input or usage: one line on stderr naming the problem and the fix (the
  project's own error types, :data:`nas.errors.USER_ERRORS`, and argparse's usage errors);
- ``3``: an internal error, which is a bug: one line saying so, and the traceback with
  ``EDGENAS_DEBUG=1``;
- ``130``: interrupted (Ctrl-C or SIGTERM); commands that save progress say so.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from nas.commands import COMMANDS
from nas.errors import USER_ERRORS

DEBUG_VAR = "EDGENAS_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgenas",
        description="Hardware-aware NAS across cloud and edge: train one supernet, profile "
        "devices with TVM, search per device, ship and adapt sub-networks.",
        epilog=f"Exit codes: 0 ok, 1 ran and found a problem, 2 bad input, 3 internal error "
        f"({DEBUG_VAR}=1 shows its traceback), 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"nas.commands.{name}")
        command = module.add_parser(sub)
        command.set_defaults(_run=module.run, _saves_progress=getattr(module, "SAVES_PROGRESS", False))
    return parser


# torch.export warns about its own deprecated LeafSpec use on every export (torch 2.13); it
# says nothing about the user's model, so it is hidden here and in TVM's worker processes.
_QUIET = "ignore:`isinstance(treespec:FutureWarning"


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure_logging(command: str, quiet: bool) -> None:
    """Library progress (``edgenas.*`` loggers) on stdout, warnings on stderr; ``--quiet``
    keeps only the warnings."""
    logger = logging.getLogger("edgenas")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    info = logging.StreamHandler(sys.stdout)
    info.addFilter(_Below(logging.WARNING))
    info.setFormatter(logging.Formatter("%(message)s"))
    warn = logging.StreamHandler(sys.stderr)
    warn.setLevel(logging.WARNING)
    warn.setFormatter(logging.Formatter(f"edgenas {command}: %(message)s"))
    logger.addHandler(info)
    logger.addHandler(warn)


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # the same orderly stop as Ctrl-C: save, clean up, exit 130


def main(argv: Sequence[str] | None = None) -> int:
    warnings_filter()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.command, getattr(args, "quiet", False))
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        result = args._run(args)
    except USER_ERRORS as exc:
        _report(f"edgenas {args.command}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        saved = ("progress is saved, run the same command to resume" if args._saves_progress
                 else "nothing was changed")
        print(f"edgenas {args.command}: interrupted; {saved}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgenas devices show X | head`: the reader left, nothing to report
        _silence_stdout()
        return 141
    except Exception as exc:  # the machine's problem (a full disk), or a bug
        if os.environ.get(DEBUG_VAR):
            raise
        problem = environment_problem(exc)
        if problem:
            _report(f"edgenas {args.command}: error: {problem}; what was stored before is kept")
            return 2
        _report(f"edgenas {args.command}: internal error: {type(exc).__name__}: {str(exc)[:300]} "
                f"(this is a bug; run again with {DEBUG_VAR}=1 for the traceback and report it)")
        return 3
    finally:
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        sys.stdout.flush()
    except OSError as exc:  # stdout on a full device: say so once, and do not fail again at exit
        _silence_stdout()
        _report(f"edgenas {args.command}: error: cannot write the output ({exc.strerror or exc})")
        return 2
    return int(result or 0)


def environment_problem(exc: BaseException) -> str | None:
    """A one-line description when ``exc`` is the machine's problem, not a bug: an OS error
    (disk full, permission denied, a folder where a file belongs) or a database that cannot
    write (full disk, read-only file)."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ELOOP:
            return f"a symbolic-link loop{where}: fix the path"
        return f"{exc.strerror or exc}{where}"
    text = str(getattr(exc, "orig", None) or exc).lower()
    for needle, problem in (("disk is full", "the disk is full"), ("disk i/o error", "disk I/O error"),
                            ("readonly database", "the database file is read-only"),
                            ("unable to open database file", "a database file cannot be opened")):
        if needle in text and type(exc).__module__.startswith(("sqlalchemy", "sqlite3", "optuna")):
            return problem
    return None


def _report(line: str) -> None:
    """One line on stderr (even when stderr itself cannot be written to)."""
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass


def warnings_filter() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec", category=FutureWarning)
    if _QUIET not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), _QUIET]))


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
