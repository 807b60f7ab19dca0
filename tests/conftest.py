"""Shared test settings (few threads, deterministic seeds) and the check that nothing the
session started outlives it.

Every process the session starts inherits ``EDGENAS_TEST_SESSION`` (this process's pid and
start time), so its servers are recognised at the end even after they were re-parented to
init, and a later session can tell the leftovers of a killed one (its owner is dead) from
those of a session still running.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterable
from typing import Any

import psutil
import pytest

SESSION_MARK = "EDGENAS_TEST_SESSION"
# servers and workers the suite starts (PostgreSQL, Ray, TVM RPC and its popen workers, split clouds)
SERVERS = re.compile(r"postgres|gcs_server|raylet|tvm\.exec\.(popen_worker|rpc_server|rpc_tracker)|nas\.split\.worker")
_before = pytest.StashKey[set[tuple[int, float]]]()
_signals = pytest.StashKey[dict[int, Any]]()


def _mark(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(SESSION_MARK)
    except (psutil.Error, OSError):
        return None


def servers() -> list[psutil.Process]:
    """Running processes that look like one of :data:`SERVERS` (zombies excluded)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        text = " ".join([info["name"] or "", *(info["cmdline"] or [])])
        if info["status"] != psutil.STATUS_ZOMBIE and SERVERS.search(text):
            found.append(proc)
    return found


def _key(proc: psutil.Process) -> tuple[int, float]:
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return proc.pid, 0.0


def _alive(mark: str) -> bool:
    """Whether the session that wrote ``mark`` (``pid:start time``) is still running."""
    pid, _, started = mark.partition(":")
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
    except (psutil.Error, ValueError):
        return False


def stop_processes(procs: Iterable[psutil.Process], timeout: float = 10.0) -> None:
    """SIGTERM the processes (by pid) whose parent is not among them (a server's own
    workers stop with it), then SIGKILL any of them left after ``timeout``."""
    procs = list(procs)
    pids = {p.pid for p in procs}
    for proc in procs:
        try:
            if proc.ppid() not in pids:
                proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {proc.pid}"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # Process-wide settings, set here rather than with monkeypatch: they must hold before
    # the test modules import torch, TVM and Ray (collection comes after this hook), and
    # every subprocess the tests start inherits them.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Ray 2.60 turns token authentication on for `ray start` once ~/.ray/auth_token exists
    # (a local ray.init writes it), and then refuses drivers that do not send the token.
    # The tests' clusters live on loopback for the test's duration: run them without it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    me = psutil.Process()
    os.environ[SESSION_MARK] = f"{me.pid}:{me.create_time()}"
    # SIGTERM and SIGHUP end the session like Ctrl-C: fixtures are torn down (servers stopped)
    config.stash[_signals] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            config.stash[_signals][sig] = signal.signal(sig, _interrupt)
    import torch

    torch.set_num_threads(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    for sig, handler in config.stash.get(_signals, {}).items():
        signal.signal(sig, handler)


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = [p for p in servers() if (mark := _mark(p)) and mark != os.environ[SESSION_MARK] and not _alive(mark)]
    if stale:  # left by a session of this suite that was killed: its owner is gone
        print(f"\nstopping {len(stale)} processes left by a killed test session: "
              + ", ".join(str(p.pid) for p in stale))
        stop_processes(stale)
    session.config.stash[_before] = {_key(p) for p in servers()}


@pytest.hookimpl(trylast=True)  # after the session fixtures' finalizers (servers stopped)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a server or worker it started is still running (then stop it)."""
    before = session.config.stash.get(_before, set())
    mark = os.environ[SESSION_MARK]

    def leftovers() -> list[psutil.Process]:
        ours = {p.pid for p in psutil.Process().children(recursive=True)}
        return [p for p in servers() if _key(p) not in before and (p.pid in ours or _mark(p) == mark)]

    deadline = time.monotonic() + 15  # servers told to stop may take a moment to exit
    left = leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftovers()
    if not left:
        return
    lines = ["processes started by this test session are still running:",
             *(f"  {_describe(p)}" for p in left), "(now stopped; a test or fixture must stop them)"]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "leftover processes", red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines))
    stop_processes(left)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _seed() -> None:
    import torch

    torch.manual_seed(0)
