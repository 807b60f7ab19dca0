"""Reach a remote device through TVM RPC: a tracker (``HOST:PORT`` + key) or a server directly.

The device runs ``python -m tvm.exec.rpc_server`` (registered with a tracker, or on its
own); the profiler cross-compiles for the device's target here, uploads the library and
times it there with ``time_evaluator``, so only the timing runs on the device.

Example::

    session = connect(tracker="127.0.0.1:9190", key="pi4", target=target)
    profiler = TVMProfiler(target, session=session)
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from latency_predictors.errors import InputError, ProfilingError
from latency_predictors.tvm_profiler import _first_line, _pin_threads, require_tvm, target_threads

_TRACKER_MAGIC = struct.pack("<i", 0x2F271)  # what a TVM tracker expects first and echoes back
_NOT_MAGIC = struct.pack("<i", 0)  # not TVM's RPC magic: a TVM rpc_server closes the connection at once

DEFAULT_TIMEOUT = 30.0
"""Seconds any one network wait (connect, handshake, tracker reply, device request) may take."""

T = TypeVar("T")


def parse_address(text: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT`` for IPv6) as ``(host, port)``; ``ValueError`` naming
    ``flag`` if malformed. A bare IPv6 address (``::1:9090``) is ambiguous and refused."""
    example = f"pass e.g. {flag} 127.0.0.1:9190 (IPv6: {flag} [::1]:9190)"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not host or "]" in host:
            raise InputError(f"{flag} {text!r} is not HOST:PORT; {example}")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise InputError(f"{flag} {text!r} is ambiguous: write an IPv6 address in brackets, e.g. [{host}]:{port}")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{flag} {text!r} is not HOST:PORT; {example}")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (how :func:`parse_address` reads it back)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        self._uploads = 0

    def describe(self) -> dict[str, Any]:
        return dict(self.how)

    def load(self, executable: Any) -> tuple[Any, Any]:
        from tvm import relax

        kwargs: dict[str, Any] = {}
        if self.cross_compiler:
            from tvm.contrib import cc

            kwargs["fcompile"] = cc.cross_compiler(self.cross_compiler)
        # a name per library: modules stay loaded side by side (the reference network beside
        # the one timed), and the device's loader hands back a loaded library for a path it
        # has seen (overwriting one that is mapped can crash the server)
        self._uploads += 1
        name = f"timed_{self._uploads}.so"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, name)
            executable.export_library(path, **kwargs)
            self.remote.upload(path)
        library = self.remote.load_module(name)
        with contextlib.suppress(Exception):  # loaded: the file is not needed on the device any more
            self.remote.remove(name)
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
    timeout: float = DEFAULT_TIMEOUT,
) -> RemoteSession:
    """Open an RPC session: directly to ``rpc`` (``HOST:PORT``), or through ``tracker``
    with ``key``. Raises ``ValueError`` for malformed arguments and ProfilingError (one
    line, with the fix) for a server that cannot be reached, does not answer within
    ``timeout`` seconds, or a key the tracker lacks.

    Every wait is bounded: the TCP connection by a socket timeout, TVM's handshakes and
    tracker calls (which would block for ever on a peer that accepts and stays silent) by
    running them in a daemon thread with a deadline.
    """
    tvm = require_tvm()
    if (rpc is None) == (tracker is None):
        raise InputError("give either --rpc HOST:PORT or --rpc-tracker HOST:PORT with --rpc-key KEY")
    if rpc is not None:
        host, port = parse_address(rpc, "--rpc")
        address = format_address(host, port)
        fix = f"start `python -m tvm.exec.rpc_server --host {host} --port {port}` on the device or fix --rpc"
        silent = (
            f"the RPC server at {address} accepted the connection but did not answer within {timeout:g} s "
            f"(not a TVM rpc_server, or busy with another session); {fix}"
        )
        # a TVM server closes a connection that starts with a wrong magic number at once;
        # a silent peer is found here, in Python, before TVM's handshake could block on it
        _preflight(host, port, timeout, _NOT_MAGIC, f"cannot reach the RPC server at {address}", fix, silent)
        remote = _with_deadline(
            lambda: tvm.rpc.connect(host, port, session_timeout=session_timeout),
            timeout,
            silent,
            f"cannot reach the RPC server at {address} ({{error}}); {fix}",
            peer=(host, port),
        )
        return RemoteSession(remote, {"kind": "rpc", "address": address}, target, cross_compiler)
    if not key:
        raise InputError("--rpc-tracker needs --rpc-key KEY (the key the device's rpc_server registered)")
    host, port = parse_address(str(tracker), "--rpc-tracker")
    address = format_address(host, port)
    fix = f"start `python -m tvm.exec.rpc_tracker --host {host} --port {port}` or fix --rpc-tracker"
    silent = (
        f"the RPC tracker at {address} accepted the connection but did not answer within {timeout:g} s "
        f"(not a TVM rpc_tracker?); {fix}"
    )
    answer = _preflight(host, port, timeout, _TRACKER_MAGIC, f"cannot reach the RPC tracker at {address}", fix,
                        silent)  # fmt: skip
    if answer != _TRACKER_MAGIC:
        raise ProfilingError(f"{address} answered, but not as a TVM RPC tracker does; {fix}")
    failed = f"cannot reach the RPC tracker at {address} ({{error}}); {fix}"
    client = _with_deadline(lambda: tvm.rpc.connect_tracker(host, port), timeout, silent, failed, peer=(host, port))
    queues = _with_deadline(lambda: client.summary(), timeout, silent, failed, abort=client).get("queue_info", {})
    if key not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise ProfilingError(
            f"the tracker at {address} has no device with key {key!r} (keys: {known}); "
            "fix --rpc-key or register the device's rpc_server with that key"
        )
    remote = _with_deadline(
        lambda: client.request(key, priority=1, session_timeout=session_timeout, max_retry=3),
        timeout,
        f"the tracker at {address} gave no {key!r} device within {timeout:g} s (busy with another "
        "session, or its rpc_server does not answer); retry when it is free",
        f"the tracker at {address} could not give a {key!r} device ({{error}}); "
        "check that its rpc_server is up and not busy, then retry",
        abort=client,
    )
    how = {"kind": "tracker", "tracker": address, "key": key}
    return RemoteSession(remote, how, target, cross_compiler)


def _with_deadline(
    call: Callable[[], T],
    seconds: float,
    on_timeout: str,
    on_error: str,
    *,
    peer: tuple[str, int] | None = None,
    abort: Any = None,
) -> T:
    """``call()`` in a daemon thread: its result, or ProfilingError(``on_timeout``) after
    ``seconds``, or ProfilingError(``on_error`` with ``{error}`` filled in) if it raises.

    On timeout the sockets the call opened to ``peer`` (TVM's own, C++ ones included; found
    through ``/proc/self/fd`` on Linux) and the socket of ``abort`` (a TVM tracker session,
    so the tracker forgets the pending request) are shut down: the stuck call fails at once
    and its thread ends while the interpreter is alive. Elsewhere the thread stays blocked;
    as a daemon it never keeps the process alive. A result that arrives after the deadline
    is dropped (an RPC session closes when dropped).
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    before = _open_fds()

    def work() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=work, name="edgenas-rpc-wait", daemon=True)
    thread.start()
    if not done.wait(seconds):
        box.clear()
        if peer is not None:
            _shutdown_new_sockets(before, *peer)
        sock = getattr(abort, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread.join(1.0)  # the shut-down call fails and returns; its error is not reported
        raise ProfilingError(on_timeout)
    if "error" in box:
        raise ProfilingError(on_error.format(error=_first_line(box["error"]))) from None
    return box["result"]


def _open_fds() -> set[tuple[int, int]]:
    """``(fd, inode)`` of this process's open files: a number reused for a new socket has a
    new inode, so "opened since" is never confused by descriptors closed in between."""
    found = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # not Linux: nothing to find later either
        return found
    for name in names:
        with contextlib.suppress(OSError):
            found.add((int(name), os.fstat(int(name)).st_ino))
    return found


def _shutdown_new_sockets(before: set[tuple[int, int]], host: str, port: int) -> None:
    """Shut down (not close: their owner closes them) the sockets opened since ``before``
    that are connected to ``host:port``."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError:
        return
    for fd, _ in _open_fds() - before:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket (or already closed)
            continue
        try:
            address = sock.getpeername()
            if address[0] in addresses and address[1] == port:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.detach()


def _preflight(
    host: str, port: int, timeout: float, payload: bytes, unreachable: str, fix: str, silent: str
) -> bytes:
    """Connect (TCP, bounded), send ``payload`` and wait at most ``timeout`` seconds for an
    answer: up to 4 bytes, or ``b""`` if the peer closed the connection. Raises
    ProfilingError ``unreachable (...); fix`` if no connection, ``silent`` if no answer."""
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, 10.0))
    except OSError as exc:  # refused, no route, unknown host, or the connect timed out
        raise ProfilingError(f"{unreachable} ({_first_line(exc)}); {fix}") from None
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(payload)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            raise ProfilingError(silent) from None
        except OSError:  # reset: the peer answered by dropping the connection
            answer = b""
    return answer
