"""Profiling through a real TVM RPC tracker and server on loopback, and what goes wrong."""

from __future__ import annotations

import pytest
from torch import nn

pytest.importorskip("tvm")

from lp_helpers import CPU_TARGET, FAST, free_port, start_server, stop  # noqa: E402

from latency_predictors.errors import ProfilingError  # noqa: E402
from latency_predictors.rpc import connect, parse_address  # noqa: E402
from latency_predictors.tvm_profiler import TVMProfiler  # noqa: E402


def module() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()).eval()


@pytest.mark.slow  # TVM RPC tracker and server processes, TVM builds
def test_profiles_through_the_tracker(rpc_tracker):
    session = connect(CPU_TARGET, tracker=rpc_tracker["tracker"], key="loop")
    assert session.describe() == {"kind": "tracker", "tracker": rpc_tracker["tracker"], "key": "loop"}
    timing = TVMProfiler(CPU_TARGET, session=session, timing=FAST).measure(module(), (4, 8, 8))
    assert timing.median_ms > 0 and timing.repeat == FAST.repeat


@pytest.mark.slow  # TVM RPC tracker and server processes
def test_unknown_key_names_the_known_ones(rpc_tracker):
    with pytest.raises(ProfilingError, match=r"no device with key 'nope' \(keys: loop\)"):
        connect(CPU_TARGET, tracker=rpc_tracker["tracker"], key="nope")


@pytest.mark.slow  # a TVM RPC server process, TVM builds
def test_direct_server_then_device_drops_mid_profile():
    port = free_port()
    server = start_server(port)
    try:
        session = connect(CPU_TARGET, rpc=f"127.0.0.1:{port}")
        profiler = TVMProfiler(CPU_TARGET, session=session, timing=FAST)
        assert profiler.measure(module(), (4, 8, 8)).median_ms > 0
    finally:
        stop(server)  # the device goes away: server, serving worker and session
    with pytest.raises(ProfilingError, match="stopped answering.*re-run the same command"):
        profiler.measure(module(), (4, 8, 8))


def test_unreachable_server_and_tracker():
    port = free_port()  # nothing listens there
    with pytest.raises(ProfilingError, match="cannot reach the RPC server"):
        connect(CPU_TARGET, rpc=f"127.0.0.1:{port}")
    with pytest.raises(ProfilingError, match="cannot reach the RPC tracker"):
        connect(CPU_TARGET, tracker=f"127.0.0.1:{port}", key="x")


@pytest.mark.parametrize("text", ["localhost", "host:port", ":9190", "h:70000"])
def test_malformed_address(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text, "--rpc")
