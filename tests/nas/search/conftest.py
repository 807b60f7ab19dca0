"""Fixtures for the search tests: a real PostgreSQL server and a real Ray cluster on loopback.

Both are started once per session (``scripts/postgres_local.sh``, installed by
``scripts/test_services.sh``; ``ray start --head``) and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    script = ROOT / "scripts" / "postgres_local.sh"
    base = Path(tempfile.mkdtemp(prefix="edgenas-pg-", dir="/tmp"))
    base.chmod(0o755)  # the server runs as the postgres user when the tests run as root
    port = free_port()
    try:
        out = subprocess.run(["bash", str(script), "start", str(base / "data"), str(port)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            pytest.fail(f"PostgreSQL did not start (run scripts/test_services.sh first): {out.stderr.strip()}")
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(base / "data")], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    start = [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
             "--include-dashboard=false", "--disable-usage-stats"]
    out = subprocess.run(start, capture_output=True, text=True, timeout=180, env=env())
    if out.returncode != 0:
        pytest.fail(f"ray start failed: {out.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120)


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
