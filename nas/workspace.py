"""The workspace: where runs, studies, device profiles and reports live by default.

Chosen by ``--workspace DIR``, else the environment variable ``EDGENAS_WORKSPACE``, else
``./edgenas-workspace``. Every command that stores something takes ``--workspace``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

ENV_VAR = "EDGENAS_WORKSPACE"
DEFAULT = "edgenas-workspace"


def workspace_dir(explicit: str | Path | None = None) -> Path:
    """The workspace directory (not created here)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.cwd() / DEFAULT


def profiles_dir(workspace: Path) -> Path:
    """Where device profiles live: ``WORKSPACE/profiles/NAME.json``."""
    return Path(workspace) / "profiles"


def profile_path(workspace: Path, device: str) -> Path:
    return profiles_dir(workspace) / f"{device}.json"


def device_names(workspace: Path) -> list[str]:
    """Devices profiled or imported in this workspace."""
    return sorted(p.stem for p in profiles_dir(workspace).glob("*.json"))


def measurements_url(workspace: Path) -> str:
    """The workspace's measurement store (SQLite) as a SQLAlchemy URL."""
    return f"sqlite:///{Path(workspace) / 'measurements.db'}"


def add_workspace_argument(parser: argparse.ArgumentParser, action_parsers: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add ``--workspace DIR`` to a sub-command's parser, and to its actions' parsers if it
    has actions (``edgenas devices --workspace W list`` and ``edgenas devices list
    --workspace W`` both work; an action's parser does not reset a value given before it)."""
    help_text = f"workspace directory (default: ${ENV_VAR} or ./{DEFAULT})"
    parser.add_argument("--workspace", metavar="DIR", default=None, help=help_text)
    for action in action_parsers:
        action.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS, help=help_text)
