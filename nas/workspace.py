"""The workspace: where runs, studies, device profiles and reports live by default.

Chosen by ``--workspace DIR``, else the environment variable ``EDGENAS_WORKSPACE``, else
``./edgenas-workspace``. Every command that stores something takes ``--workspace``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENV_VAR = "EDGENAS_WORKSPACE"
DEFAULT = "edgenas-workspace"


def workspace_dir(explicit: str | Path | None = None) -> Path:
    """The workspace directory (not created here)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.cwd() / DEFAULT


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--workspace DIR`` to a sub-command's parser."""
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        default=None,
        help=f"workspace directory (default: ${ENV_VAR} or ./{DEFAULT})",
    )
