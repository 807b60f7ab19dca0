"""Two real workers on one study in a real PostgreSQL server (started on loopback)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import env, search_cmd, wait_for
from search_helpers import complete, count_complete, load

pytestmark = pytest.mark.slow  # a PostgreSQL server and worker subprocesses


def _cmd(url: str, ws: Path, study: str, trials: int, *extra: str) -> list[str]:
    return search_cmd("--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4",
                      "--trials", str(trials), "--storage", url, "--study", study,
                      "--workspace", str(ws), *extra)


def test_two_workers_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    workers = [subprocess.Popen(_cmd(postgres_url, tmp_path, "two", 60, "--out", str(tmp_path / f"r{i}.json"),
                                     "--seed", str(i)),
                                env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    study = load(postgres_url, "two")
    trials = complete(study)
    assert len(trials) >= 60  # each worker stops once the study holds 60; in-flight ones finish
    pids = {t.system_attrs["edgenas_worker"]["pid"] for t in trials}
    assert pids == {w.pid for w in workers}
    assert len({t.number for t in trials}) == len(trials)
    result = json.loads((tmp_path / "r1.json").read_text())
    assert result["trials"]["complete"] >= 60 and result["recommended"]["feasible"]
    assert all(t.constraints for t in trials)


def test_worker_killed_then_resumed_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    cmd = _cmd(postgres_url, tmp_path, "killed", 120)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: count_complete(postgres_url, "killed") >= 10, 120, "10 trials")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t.values for t in complete(load(postgres_url, "killed"))}
    subprocess.run(cmd, env=env(), check=True, capture_output=True, timeout=300)
    after = complete(load(postgres_url, "killed"))
    assert len(after) == 120
    assert {t.number: t.values for t in after if t.number in before} == before
