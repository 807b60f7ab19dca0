"""Fixtures for the split tests: a workspace with a slow edge and a fast cloud of known costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from split_helpers import synthetic_device

from nas.workspace import Workspace
from search_spaces import get_space


@pytest.fixture(scope="module")
def small_space() -> Any:
    return get_space("mbv3", preset="small")


@pytest.fixture(scope="module")
def pair_workspace(tmp_path_factory: pytest.TempPathFactory, small_space: Any) -> Workspace:
    """A workspace with a slow ``edge`` (2 ms per MFLOP) and a fast ``cloud`` (0.05 ms per MFLOP)."""
    ws = Workspace(Path(tmp_path_factory.mktemp("split-ws")))
    synthetic_device(ws, "edge", small_space, ms_per_mflop=2.0)
    synthetic_device(ws, "cloud", small_space, ms_per_mflop=0.05, overhead=0.01, per_call=0.2)
    return ws
