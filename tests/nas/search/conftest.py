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


def session_members(sid: int) -> list[psutil.Process]:
    """The live processes of session ``sid`` (zombies excluded: they are already dead).

    A process keeps its session when its parent dies and it is re-parented to init, and
    whatever it forks joins it, so this finds everything a ``ray start`` run in its own
    session left running, wherever it hangs in the process tree. Ray's workers change
    their process group but not their session; its agents (``ray::DashboardAgent``,
    ``ray::RuntimeEnvAgent``) overwrite their command line and environment
    (setproctitle), so a mark in the environment cannot find them.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def stop_session(sid: int, rounds: int = 10) -> None:
    """SIGKILL every process of session ``sid`` (as ``ray stop --force``: the GCS may ignore
    SIGTERM), again until none is left (a process may fork while the others die).

    All at once, not the raylet first: an agent that outlives the raylet and the GCS
    waits 60 s to report the raylet's death to the dead GCS before it exits."""
    for _ in range(rounds):
        procs = session_members(sid)
        if not procs:
            return
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ppid {proc.ppid()}: {' '.join(proc.cmdline())[:100]}"
    except psutil.Error:
        return f"pid {proc.pid}"


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A Ray cluster (``ray start --head``) on 127.0.0.1 only, stopped at the end.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the node on loopback (Ray otherwise turns
    ``--node-ip-address=127.0.0.1`` into the machine's address and binds every interface).
    ``ray start`` runs in a session of its own: every process of the cluster (GCS, raylet,
    agents, workers) stays in it, and only that session is stopped (``ray stop`` would
    stop every Ray instance on the machine, other people's included). Its own temporary
    directory keeps the session files and the ``ray_current_cluster`` record out of
    ``/tmp/ray``: a record left there would make a later ``ray.init()`` without an address
    try the dead cluster. The teardown fails the test run if a process of the cluster
    survives the stop.
    """
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="edgenas-ray-", dir="/tmp")  # short: Ray's socket paths
    start = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    cluster_env = {**env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen(start, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cluster_env, start_new_session=True)
    sid = proc.pid  # the session's id: its leader's pid, not reused while the session lives

    def stop() -> None:
        stop_session(sid)
        shutil.rmtree(temp_dir, ignore_errors=True)

    atexit.register(stop)
    try:
        try:
            _, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail("ray start did not finish in 180 s")
        if proc.returncode != 0:
            pytest.fail(f"ray start failed: {err[-2000:]}")
        yield f"127.0.0.1:{port}"
        started = session_members(sid)  # agents and workers included
        stop()
        left = [p for p in started if _alive(p)]
        assert not left, "processes of the test's Ray cluster survived its stop:\n" + "\n".join(
            map(_describe, left))
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
