"""Fixtures for the search tests: a real PostgreSQL server and a real Ray cluster on loopback.

Both are started once per session (``scripts/postgres_local.sh``, installed by
``scripts/test_services.sh``; ``ray start --head``) and stopped at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[3]
PG_DIR, PG_PREFIX = "/tmp", "edgenas-pg-"  # /tmp: the postgres user can reach it
RAY_CLUSTER_MARK = "EDGENAS_TEST_RAY_CLUSTER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _owner() -> str:
    me = psutil.Process()
    return f"{me.pid}:{me.create_time()}"


def _owner_alive(text: str) -> bool:
    pid, _, started = text.strip().partition(":")
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
    except (psutil.Error, ValueError):
        return False


def _remove_stale_postgres(script: Path) -> None:
    """Stop and delete the servers of earlier sessions that were killed before they could."""
    for base in Path(PG_DIR).glob(PG_PREFIX + "*"):
        owner = base / "owner"
        if owner.is_file() and not _owner_alive(owner.read_text()):
            subprocess.run(["bash", str(script), "stop", str(base / "data")], capture_output=True, timeout=60)
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for the session. It is stopped at the end, on Ctrl-C
    or SIGTERM (the root conftest turns SIGTERM into KeyboardInterrupt), at interpreter exit
    (atexit), and, if the session was killed outright, by the next session's start."""
    script = ROOT / "scripts" / "postgres_local.sh"
    _remove_stale_postgres(script)
    base = Path(tempfile.mkdtemp(prefix=PG_PREFIX, dir=PG_DIR))
    base.chmod(0o755)  # the server runs as the postgres user when the tests run as root
    (base / "owner").write_text(_owner())
    port = free_port()

    def stop() -> None:
        if base.exists():
            subprocess.run(["bash", str(script), "stop", str(base / "data")], capture_output=True, timeout=60)
            shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)
    try:
        out = subprocess.run(["bash", str(script), "start", str(base / "data"), str(port)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            pytest.fail(f"PostgreSQL did not start (run scripts/test_services.sh first): {out.stderr.strip()}")
        yield out.stdout.strip().splitlines()[-1]
    finally:
        stop()
        atexit.unregister(stop)


def _cluster(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(RAY_CLUSTER_MARK) == mark:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A Ray cluster (``ray start --head``) on 127.0.0.1 only, stopped at the end.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the node on loopback (Ray otherwise turns
    ``--node-ip-address=127.0.0.1`` into the machine's address and binds every interface).
    The cluster's processes carry a mark in their environment, and only they are stopped:
    ``ray stop`` would stop every Ray instance on the machine, other people's included.
    """
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    mark = f"{os.getpid()}-{port}"
    start = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
             "--include-dashboard=false", "--disable-usage-stats"]
    cluster_env = {**env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", RAY_CLUSTER_MARK: mark}

    def stop() -> None:  # by pid, SIGKILL (as `ray stop --force`: the GCS may ignore SIGTERM)
        procs = _cluster(mark)
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(procs, timeout=30)

    atexit.register(stop)
    try:
        out = subprocess.run(start, capture_output=True, text=True, timeout=180, env=cluster_env)
        if out.returncode != 0:
            pytest.fail(f"ray start failed: {out.stderr[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        stop()
        atexit.unregister(stop)


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
