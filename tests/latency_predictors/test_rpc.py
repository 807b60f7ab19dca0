"""Profiling through a real TVM RPC tracker and server on loopback, and what goes wrong."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

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
    profiler = TVMProfiler(CPU_TARGET, session=session, timing=FAST)
    timing = profiler.measure(module(), (4, 8, 8))
    assert timing.median_ms > 0 and FAST.repeat <= timing.repeat <= FAST.repeat_cap
    assert profiler.kernels is None  # every module is uploaded whole: no kernel cache over RPC
    # drift correction over RPC: each repeat beside a repeat of the reference, on the device
    from latency_predictors.reference import ReferencedProfiler

    referenced = ReferencedProfiler(profiler, nn.Sequential(nn.Conv2d(4, 8, 3, padding=1)).eval(), (4, 8, 8))
    referenced.baseline_ms = referenced.time_reference().median_ms
    paired = referenced.measure(module(), (4, 8, 8))
    assert paired.median_ms > 0 and len(paired.reference_ms) == paired.repeat >= FAST.repeat


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


@pytest.mark.parametrize("text", ["localhost", "host:port", ":9190", "h:70000", "[::1]", "[::1]9090", "[]:9090"])
def test_malformed_address(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text, "--rpc")


def test_ipv6_literals_need_brackets():
    assert parse_address("[::1]:9090", "--rpc") == ("::1", 9090)
    assert parse_address("[fe80::1%eth0]:9190", "--rpc-tracker") == ("fe80::1%eth0", 9190)
    assert parse_address("10.0.0.2:9190", "--rpc") == ("10.0.0.2", 9190)
    with pytest.raises(ValueError, match=r"ambiguous.*\[::1\]:9090"):
        parse_address("::1:9090", "--rpc")


class SilentListener:
    """A TCP port on loopback that accepts connections and never sends a byte (a firewall,
    a wrong service): what made `edgenas profile` wait for ever."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:  # frees the abandoned handshakes in this process
            conn.close()


class HalfServer(SilentListener):
    """Closes a connection that starts with anything but TVM's RPC magic (as a TVM server
    does, so the preflight passes) and then never answers TVM's real handshake: the wait
    that only the deadline thread can end."""

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if conn.recv(4) != RPC_MAGIC:
                conn.close()


RPC_MAGIC = (0xFF271).to_bytes(4, "little")


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.mark.timeout(60, method="thread")  # a regression hangs: fail, do not wait for ever
def test_silent_server_times_out_with_one_line(silent):
    start = time.monotonic()
    with pytest.raises(ProfilingError) as info:
        connect(CPU_TARGET, rpc=f"127.0.0.1:{silent.port}", timeout=1.5)
    message = str(info.value)
    assert time.monotonic() - start < 15
    assert f"RPC server at 127.0.0.1:{silent.port}" in message and "did not answer within 1.5 s" in message
    assert "tvm.exec.rpc_server" in message and "\n" not in message
    assert silent.conns  # it really connected: the wait was on the handshake, not the TCP connect


@pytest.mark.timeout(60, method="thread")  # a regression hangs: fail, do not wait for ever
def test_server_silent_in_tvms_handshake_times_out_and_frees_the_thread():
    server = HalfServer()
    try:
        with pytest.raises(ProfilingError, match=r"did not answer within 1\.5 s"):
            connect(CPU_TARGET, rpc=f"127.0.0.1:{server.port}", timeout=1.5)
        assert len(server.conns) == 2  # the preflight's connection, then TVM's own
        deadline = time.monotonic() + 10
        while any(t.name == "edgenas-rpc-wait" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the handshake thread is still blocked"
            time.sleep(0.1)
    finally:
        server.close()


@pytest.mark.timeout(60, method="thread")  # a regression hangs: fail, do not wait for ever
def test_silent_tracker_times_out_with_one_line(silent):
    start = time.monotonic()
    with pytest.raises(ProfilingError) as info:
        connect(CPU_TARGET, tracker=f"127.0.0.1:{silent.port}", key="loop", timeout=1.5)
    message = str(info.value)
    assert time.monotonic() - start < 15
    assert f"RPC tracker at 127.0.0.1:{silent.port}" in message and "did not answer within 1.5 s" in message
    assert "--rpc-tracker" in message and "\n" not in message


@pytest.mark.slow
def test_stuck_handshake_does_not_keep_the_process_alive():
    """The abandoned handshake thread is a daemon: the process exits as soon as it is done."""
    code = textwrap.dedent(
        """
        import socket
        from latency_predictors.errors import ProfilingError
        from latency_predictors.rpc import connect
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for how in ({"rpc": f"127.0.0.1:{port}"}, {"tracker": f"127.0.0.1:{port}", "key": "k"}):
            try:
                connect({"kind": "llvm"}, timeout=1, **how)
            except ProfilingError as exc:
                print("refused:", exc)
        # a server that passes the preflight, then stays silent in TVM's (C++) handshake
        half = socket.socket()
        half.bind(("127.0.0.1", 0))
        half.listen(4)
        held = []
        def serve():
            while True:
                conn, _ = half.accept()
                held.append(conn)
                if conn.recv(4) != (0xFF271).to_bytes(4, "little"):
                    conn.close()
        threading.Thread(target=serve, daemon=True).start()
        try:
            connect({"kind": "llvm"}, rpc=f"127.0.0.1:{half.getsockname()[1]}", timeout=1)
        except ProfilingError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", "import threading" + code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("did not answer within 1 s") == 3


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.slow
def test_direct_server_over_ipv6_loopback():
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "::1", "--port", str(port), "--port-end",
         str(port + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket(socket.AF_INET6) as probe:
                if probe.connect_ex(("::1", port)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, "the IPv6 rpc_server did not start"
            time.sleep(0.3)
        session = connect(CPU_TARGET, rpc=f"[::1]:{port}")
        assert session.describe() == {"kind": "rpc", "address": f"[::1]:{port}"}
        assert TVMProfiler(CPU_TARGET, session=session, timing=FAST).measure(module(), (4, 8, 8)).median_ms > 0
    finally:
        stop(server)  # the server and its popen_worker (a SIGTERM to the parent alone orphans it)
