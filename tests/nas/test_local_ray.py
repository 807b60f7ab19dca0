"""A local Ray started by our code listens on loopback only (adapt simulator, search engine),
and none of its processes outlives it: stopped by the library, or with the process that
started it killed outright."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

ray = pytest.importorskip("ray")


def _listening(pids: set[int]) -> set[tuple[int, str, int]]:
    return {(c.pid, c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _start_simulator_ray() -> Callable[[], None]:
    from nas.adapt.simulator import run_jobs, shutdown_ray

    assert run_jobs([], "ray", 1) == []  # no device jobs: only starts Ray
    return shutdown_ray


def _start_search_ray() -> Callable[[], None]:
    from nas.local_ray import shutdown_ray
    from nas.search.engine_ray import connect

    assert connect("local")
    return shutdown_ray


def _running(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"pid {proc.pid} ppid {proc.ppid()}: {proc.name()}")
        except psutil.Error:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("start", [_start_simulator_ray, _start_search_ray], ids=["adapt", "search"])
def test_local_ray_binds_every_port_to_loopback(start: Callable[[], None]) -> None:
    assert not ray.is_initialized()
    me = psutil.Process()
    before = _listening({me.pid})
    stop = start()
    try:
        assert ray.is_initialized()
        gcs = ray.get_runtime_context().gcs_address
        assert _is_loopback(gcs.rsplit(":", 1)[0]), gcs
        ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
        sockets = _listening(ours) - before
        assert any(port == int(gcs.rsplit(":", 1)[1]) for _, _, port in sockets), sockets
        names = {pid: psutil.Process(pid).name() for pid, _, _ in sockets}
        outside = [(names[pid], ip, port) for pid, ip, port in sockets if not _is_loopback(ip)]
        assert outside == [], f"Ray ports bound outside loopback: {outside}"
        started = me.children(recursive=True)  # GCS, raylet, agents, workers, the watchdog
        assert any(p.name().startswith("ray::") and "Agent" in p.name() for p in started), started
    finally:
        stop()
    assert not ray.is_initialized()
    assert _running(started) == [], "processes of the local Ray instance survived its stop"


_DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
from nas.search.engine_ray import connect
assert connect("local")
print("up", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_local_ray_leaves_nothing_when_its_starter_is_killed() -> None:
    """``kill -9`` of a process that started a local instance: Ray's agents would wait 60 s
    for the dead GCS; the watchdog of nas.local_ray stops them at once."""
    root = Path(__file__).resolve().parents[2]
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "up"
        started = psutil.Process(driver.pid).children(recursive=True)
        assert any("Agent" in p.name() for p in started), started
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    _, alive = psutil.wait_procs(started, timeout=15)
    try:
        assert _running(alive) == [], "processes of the local Ray instance outlived its killed starter"
    finally:
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
