"""Fixtures for latency_predictors tests: a tiny mbv3 space and a real RPC tracker on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from lp_helpers import _wait_for, _wait_for_key, free_port, start_server, stop

from search_spaces import get_space


@pytest.fixture(scope="session")
def tiny_space():
    """An mbv3 space small enough that a whole network compiles in a few seconds."""
    return get_space(
        "mbv3", preset="small", stage_channels=(8, 8, 16, 16, 16), resolutions=(16,),
        final_expand=32, feature_mix=32, depths=(1, 2), kernels=(3, 5), expands=(3,),
    )  # fmt: skip


@pytest.fixture(scope="module")
def rpc_tracker() -> Iterator[dict[str, object]]:
    """A real TVM RPC tracker and one server registered with key ``loop``, on loopback."""
    pytest.importorskip("tvm")
    tport = free_port()
    tracker = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tport),
         "--port-end", str(tport + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    procs = [tracker]
    try:
        _wait_for(tport, tracker)
        procs.insert(0, start_server(free_port(), tracker=f"127.0.0.1:{tport}", key="loop"))
        _wait_for_key(f"127.0.0.1:{tport}", "loop")
        yield {"tracker": f"127.0.0.1:{tport}", "key": "loop"}
    finally:
        for proc in procs:  # with the popen workers that serve for them
            stop(proc)
