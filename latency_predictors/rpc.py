"""Reach a remote device through TVM RPC: a tracker (``HOST:PORT`` + key) or a server directly.

The device runs ``python -m tvm.exec.rpc_server`` (registered with a tracker, or on its
own); the profiler cross-compiles for the device's target here, uploads the library and
times it there with ``time_evaluator``, so only the timing runs on the device.

Example::

    session = connect(tracker="127.0.0.1:9190", key="pi4", target=target)
    profiler = TVMProfiler(target, session=session)
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from latency_predictors.errors import ProfilingError
from latency_predictors.tvm_profiler import _first_line, _pin_threads, require_tvm, target_threads


def parse_address(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; ``ValueError`` naming ``flag`` if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag} {text!r} is not HOST:PORT; pass e.g. {flag} 127.0.0.1:9190")
    return host, int(port)


class RemoteSession:
    """A device reached over RPC: libraries are exported here, uploaded and run there.

    ``cross_compiler`` is the C compiler that links for the device (e.g.
    ``aarch64-linux-gnu-g++``); ``None`` uses this machine's default (same architecture).
    """

    def __init__(
        self, remote: Any, how: dict[str, Any], target: dict[str, Any], cross_compiler: str | None = None
    ) -> None:
        self.remote = remote
        self.how = how
        self.target = target
        self.cross_compiler = cross_compiler

    def describe(self) -> dict[str, Any]:
        return dict(self.how)

    def load(self, executable: Any) -> tuple[Any, Any]:
        from tvm import relax

        kwargs: dict[str, Any] = {}
        if self.cross_compiler:
            from tvm.contrib import cc

            kwargs["fcompile"] = cc.cross_compiler(self.cross_compiler)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "timed.so")
            executable.export_library(path, **kwargs)
            self.remote.upload(path)
        library = self.remote.load_module("timed.so")
        dev = self.remote.cuda(0) if self.target["kind"] == "cuda" else self.remote.cpu(0)
        if self.target["kind"] != "cuda":
            _pin_threads(self.remote.get_function, target_threads(self.target))
        return relax.VirtualMachine(library, dev), dev


def connect(
    target: dict[str, Any],
    *,
    rpc: str | None = None,
    tracker: str | None = None,
    key: str | None = None,
    cross_compiler: str | None = None,
    session_timeout: int = 0,
) -> RemoteSession:
    """Open an RPC session: directly to ``rpc`` (``HOST:PORT``), or through ``tracker``
    with ``key``. Raises ``ValueError`` for malformed arguments and ProfilingError (one
    line, with the fix) for a server that cannot be reached or a key the tracker lacks."""
    tvm = require_tvm()
    if (rpc is None) == (tracker is None):
        raise ValueError("give either --rpc HOST:PORT or --rpc-tracker HOST:PORT with --rpc-key KEY")
    if rpc is not None:
        host, port = parse_address(rpc, "--rpc")
        try:
            _probe(host, port)  # TVM itself retries a refused connection for a minute
            remote = tvm.rpc.connect(host, port, session_timeout=session_timeout)
        except Exception as exc:
            raise ProfilingError(
                f"cannot reach the RPC server at {host}:{port} ({_first_line(exc)}); start "
                f"`python -m tvm.exec.rpc_server --host {host} --port {port}` on the device "
                "or fix --rpc"
            ) from None
        return RemoteSession(remote, {"kind": "rpc", "address": f"{host}:{port}"}, target, cross_compiler)
    if not key:
        raise ValueError("--rpc-tracker needs --rpc-key KEY (the key the device's rpc_server registered)")
    host, port = parse_address(str(tracker), "--rpc-tracker")
    try:
        _probe(host, port)
        client = tvm.rpc.connect_tracker(host, port)
        queues = client.summary().get("queue_info", {})
    except Exception as exc:
        raise ProfilingError(
            f"cannot reach the RPC tracker at {host}:{port} ({_first_line(exc)}); start "
            f"`python -m tvm.exec.rpc_tracker --host {host} --port {port}` or fix --rpc-tracker"
        ) from None
    if key not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise ProfilingError(
            f"the tracker at {host}:{port} has no device with key {key!r} (keys: {known}); "
            "fix --rpc-key or register the device's rpc_server with that key"
        )
    try:
        remote = client.request(key, priority=1, session_timeout=session_timeout, max_retry=3)
    except Exception as exc:
        raise ProfilingError(
            f"the tracker at {host}:{port} could not give a {key!r} device ({_first_line(exc)}); "
            "check that its rpc_server is up and not busy, then retry"
        ) from None
    how = {"kind": "tracker", "tracker": f"{host}:{port}", "key": key}
    return RemoteSession(remote, how, target, cross_compiler)


def _probe(host: str, port: int, timeout: float = 5.0) -> None:
    """Open and close a TCP connection: an unreachable address fails in seconds, not minutes."""
    import socket

    with socket.create_connection((host, port), timeout=timeout):
        pass
