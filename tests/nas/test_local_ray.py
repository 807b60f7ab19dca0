"""A local Ray started by our code listens on loopback only (adapt simulator, search engine)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

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
    from nas.search.engine_ray import connect

    connect("local")
    return ray.shutdown


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
    finally:
        stop()
    assert not ray.is_initialized()
