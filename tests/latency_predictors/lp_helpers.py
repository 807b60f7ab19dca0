"""Helpers for latency_predictors tests: fast timing, free ports, real TVM RPC processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from latency_predictors.timing import TimingConfig

# no state gate: a tiny eager reference's own jitter reads as slow states (the gate's tests set it)
FAST = TimingConfig(warmup=1, repeat=3, min_repeat_ms=1, state_wait_s=0.0)
CPU_TARGET = {"kind": "llvm", "num-cores": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start_server(port: int, tracker: str | None = None, key: str = "") -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
           "--port-end", str(port + 1)]  # fmt: skip
    if tracker:
        cmd += ["--tracker", tracker, "--key", key]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stop a TVM RPC server or tracker started with ``start_new_session=True``, and every
    process it started: its serving loop runs in a ``tvm.exec.popen_worker`` child (and
    sessions in forks of that), which a SIGTERM to the parent alone leaves listening."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()  # reap the parent; the rest are re-parented and reaped by init
            time.sleep(0.1)
    proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_key(tracker: str, key: str, timeout: float = 60.0) -> None:
    import tvm.rpc

    host, port = tracker.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if key in tvm.rpc.connect_tracker(host, int(port)).summary().get("queue_info", {}):
            return
        time.sleep(0.3)
    raise TimeoutError(f"key {key} never registered at {tracker}")
