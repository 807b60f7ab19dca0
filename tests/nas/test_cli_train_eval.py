"""``edgenas train`` and ``eval`` through ``nas.cli.main`` and as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.config import load_config
from nas.training import TrainConfig, train
from nas.training.checkpoint import read_checkpoint, sha256_file

ROOT = Path(__file__).resolve().parents[2]


def test_train_then_eval_through_main(tiny_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny_config()), "--out-dir", str(run), "--quiet"]) == 0
    assert "trained 4/4 steps" in capsys.readouterr().out
    weights = run / read_checkpoint(run).meta["weights"]
    digest = sha256_file(weights)
    largest = json.dumps({"depths": [4] * 5, "kernels": [7] * 20, "expands": [6] * 20, "resolution": 28})
    code = main(["eval", str(run), "--arch", "min", "--arch", largest, "--arch", "random:2", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 4
    assert rows[0]["mflops"] < rows[1]["mflops"] and rows[0]["params_m"] < rows[1]["params_m"]
    assert rows[1]["arch"] == json.loads(largest)
    assert all(0.0 <= r["accuracy"] <= 100.0 and r["samples"] == 48 for r in rows)
    assert main(["eval", str(run), "--arch", "max"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["arch", "MFLOPs"] and table[2].startswith("r28:k7e6")
    assert sha256_file(weights) == digest  # evaluating never changes the cloud model
    assert main(["eval", str(run), "--arch", "random:zero"]) == 2
    assert "--arch random:zero" in capsys.readouterr().err
    assert main(["eval", str(run), "--arch", '{"depths": [9, 2, 2, 2, 2]}']) == 2
    assert "mbv3 arch keys must be" in capsys.readouterr().err


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = run / "checkpoint.json"
        if meta.exists():
            try:
                if json.loads(meta.read_text())["step"] >= step:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} within {timeout} s")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", *args]


@pytest.mark.slow  # training subprocesses killed and resumed
def test_killed_and_interrupted_processes_resume_bit_identically(tiny_config, tmp_path: Path) -> None:
    config = tiny_config(train={"steps": 10}, checkpoint={"every_steps": 1})
    straight = train(load_config(TrainConfig, config), tmp_path / "straight", progress=False)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = _cli("train", str(config), "--out-dir", str(run), "--quiet")

    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, 2, proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: finish the step, save, exit 130
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "progress is saved" in err
    stopped_at = read_checkpoint(run).step
    assert 2 <= stopped_at < 10

    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, stopped_at + 2, proc)
    proc.kill()  # no chance to save: the last complete checkpoint must survive
    proc.communicate(timeout=60)
    assert read_checkpoint(run).step < 10

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from step" in done.stderr and "trained 10/10 steps" in done.stdout
    assert read_checkpoint(run).meta["fingerprint"] == straight.fingerprint

    evaluated = subprocess.run(_cli("eval", str(run), "--arch", "min", "--json"), env=env,
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)[0]["name"].startswith("r24:k3e3")


