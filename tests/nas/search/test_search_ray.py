"""A small search on a real local Ray cluster (``ray start --head`` on 127.0.0.1)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import env, search_cmd, wait_for
from search_helpers import complete, count_complete, load

pytestmark = pytest.mark.slow  # a Ray cluster and search subprocesses


def _cmd(address: str, ws: Path, trials: int, *extra: str) -> list[str]:
    return search_cmd("--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4",
                      "--trials", str(trials), "--study", "ray", "--workspace", str(ws),
                      "--engine", "ray", "--ray-address", address, "--ray-cpus", "0.5", *extra)


def test_ray_search_then_kill_9_and_resume(ray_address: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    out = tmp_path / "result.json"
    proc = subprocess.Popen(_cmd(ray_address, tmp_path, 10, "--out", str(out)), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: count_complete(url, "ray") >= 2, 180, "2 Ray trials")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t.values for t in complete(load(url, "ray"))}
    assert 2 <= len(before) < 10
    done = subprocess.run(_cmd(ray_address, tmp_path, 10, "--out", str(out)), env=env(),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    study = load(url, "ray")
    after = complete(study)
    assert len(after) == 10
    assert {t.number: t.values for t in after if t.number in before} == before
    assert all(set(t.constraints) == {"latency_ms@table:pixel3"} for t in after)
    assert all("arch" in t.user_attrs for t in after)
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    result = json.loads(out.read_text())
    assert result["trials"]["complete"] == 10


def test_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(_cmd("127.0.0.1:9", tmp_path, 4), env=env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("edgenas search: error: cannot reach the Ray cluster")


def test_dead_cluster_left_by_ray_start_is_one_line(tmp_path: Path) -> None:
    """Without --ray-address Ray joins the cluster the last ``ray start`` recorded; one stopped
    without ``ray stop`` leaves its record, and Ray would retry it for minutes."""
    record = tmp_path / "ray" / "ray_current_cluster"  # where Ray looks, under RAY_TMPDIR
    record.parent.mkdir()
    record.write_text("127.0.0.1:9")
    cmd = search_cmd("--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4", "--trials", "4",
                     "--workspace", str(tmp_path), "--engine", "ray")
    done = subprocess.run(cmd, env={**env(), "RAY_TMPDIR": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("edgenas search: error: cannot reach the Ray cluster at 127.0.0.1:9"), last
    assert "ray stop" in last
