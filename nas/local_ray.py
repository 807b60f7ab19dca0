"""Ray on this machine: a local Ray instance that listens on 127.0.0.1 only.

Asking Ray 2.60 for ``ray.init(_node_ip_address="127.0.0.1")`` is not enough: Ray turns a
loopback node address into the machine's network address
(``services.resolve_ip_for_localhost``), and its GCS, raylet and workers then listen on
every interface. Ray keeps a node on loopback, and binds every port there, when its
single-machine switch ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is in effect (the default on
macOS and Windows). Ray reads that switch when it is imported, so :func:`init_ray` sets it
both in the environment of the processes Ray starts and on Ray's constant in this
process, and only while ``ray.init`` runs. Connecting to a cluster on loopback needs the same
switch (Ray would dial the machine's network address); any other address is left as it is.

A local instance is stopped by :func:`shutdown_ray`. Ray ties its GCS and raylet to the
process that started them (they are killed when it dies), but not the raylet's agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``): when that process is killed outright
(``kill -9``, the OOM killer, a closed terminal), they find their raylet gone, try to report
it to the GCS that died with it, and only give up and exit 60 s later. :func:`init_ray`
therefore starts a small watchdog with every local instance (this file run as a script,
in a session of its own so that Ctrl-C and a closed terminal do not reach it): it follows
the instance's processes and, once the process that started them is gone or has stopped
the instance, stops any of them still running. It touches no other process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

SINGLE_MACHINE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"
WATCH_INTERVAL_S = 1.0  # how often the watchdog looks for new processes of the instance
STOP_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this long

# runs this file as the watchdog without putting its folder or the working directory on
# sys.path (a module there named like a standard one would be imported instead)
_WATCHDOG_BOOT = ("import runpy, sys; del sys.path[0]; sys.argv = sys.argv[1:]; "
                  "runpy.run_path(sys.argv[0], run_name='__main__')")

_watchdog: subprocess.Popen | None = None


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(SINGLE_MACHINE_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_MACHINE_SWITCH, None)
        else:
            os.environ[SINGLE_MACHINE_SWITCH] = saved_env


def init_ray(address: str | None = None, **kwargs: Any) -> bool:
    """``ray.init(address=address, **kwargs)``; a new local instance listens on 127.0.0.1 only.

    ``address="local"`` always starts a new instance; ``None`` does when neither
    ``RAY_ADDRESS`` nor a cluster running on this machine is found (Ray's own rule).
    Returns True when this call started the instance: the caller then stops it with
    :func:`shutdown_ray` when it is done with it.
    """
    import ray
    from ray._private import services

    starts = address == "local" or (address is None and services.canonicalize_bootstrap_address(None) is None)
    if starts:
        import psutil

        before = {child.pid for child in psutil.Process().children()}
        with _single_machine():
            ray.init(address="local", _node_ip_address=LOOPBACK, **kwargs)
        _start_watchdog([child for child in psutil.Process().children() if child.pid not in before])
        return True
    if address is not None and _on_loopback(address):
        # a cluster on this machine's loopback (``ray start`` with the switch): Ray would
        # otherwise dial the machine's network address, where nothing listens
        with _single_machine():
            ray.init(address=address, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    return False


def _on_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` names a loopback host (``ray://`` client addresses do not count)."""
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shutdown_ray() -> None:
    """``ray.shutdown()``, then wait for the watchdog of the local instance :func:`init_ray`
    started, if any: it stops whatever of the instance is still running (the agents may
    take a moment after the raylet) and exits, so nothing outlives this call."""
    global _watchdog
    import ray

    ray.shutdown()
    watchdog, _watchdog = _watchdog, None
    if watchdog is not None:
        _close_watchdog(watchdog)


def _close_watchdog(watchdog: subprocess.Popen) -> None:
    if watchdog.stdin is not None:
        watchdog.stdin.close()  # end of input: stop what is left and exit
    try:
        watchdog.wait(timeout=STOP_GRACE_S + 10)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def _start_watchdog(roots: list[Any]) -> None:
    """Start the watchdog (see the module docstring) for the processes ``roots`` (psutil
    processes: the ones ``ray.init`` started) and everything they start. Their descendants
    of now are handed over too: if the starting process is killed before the watchdog has
    looked, the raylet is gone and its agents can no longer be found from it."""
    global _watchdog
    if _watchdog is not None:  # one left by an instance stopped with a plain ray.shutdown()
        _close_watchdog(_watchdog)
        _watchdog = None
    if os.name != "posix":  # select() on a pipe, sessions: POSIX only
        return
    procs = {proc.pid: proc for proc in roots}
    for root in roots:  # the agents too: the instance may die before the watchdog looks
        with contextlib.suppress(Exception):
            procs.update((child.pid, child) for child in root.children(recursive=True))
    args = []
    for proc in procs.values():
        with contextlib.suppress(Exception):
            args.append(f"{proc.pid}:{proc.create_time()!r}")
    try:
        _watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG_BOOT, os.path.abspath(__file__), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:  # the instance runs anyway; only a kill -9 would leave its agents
        logging.getLogger(__name__).warning("no watchdog for the local Ray instance: %s", exc)


def _watch(roots: list[str]) -> None:
    """The watchdog's loop: ``roots`` are ``PID:CREATE_TIME`` of the instance's processes.

    Every :data:`WATCH_INTERVAL_S` it adds their new descendants to the processes it knows
    (a process is known by pid and start time, so a reused pid is never mistaken for one of
    them). When its input ends (the starting process exited, was killed, or called
    :func:`shutdown_ray`) it sends SIGTERM to those still running, SIGKILL after
    :data:`STOP_GRACE_S`, and exits; it also exits when all of them have ended by themselves.
    """
    import select
    import signal

    import psutil

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    known: dict[int, psutil.Process] = {}
    for root in roots:
        pid, _, started = root.partition(":")
        with contextlib.suppress(psutil.Error, ValueError):
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - float(started)) < 1.0:  # tolerant of psutil versions
                known[proc.pid] = proc
    while True:
        for proc in list(known.values()):
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    known.setdefault(child.pid, child)
        known = {pid: proc for pid, proc in known.items() if _running(proc)}
        if not known:
            return
        ready, _, _ = select.select([sys.stdin], [], [], WATCH_INTERVAL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    left = [proc for proc in known.values() if _running(proc)]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=STOP_GRACE_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)


def _running(proc: Any) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":  # the watchdog, started by init_ray (stdlib and psutil only)
    _watch(sys.argv[1:])
