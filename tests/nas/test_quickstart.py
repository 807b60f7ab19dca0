"""``edgenas quickstart`` end to end at small sizes: every step for real, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main
from nas.registry import ModelRegistry

pytestmark = pytest.mark.slow  # the whole flow


def test_quickstart_runs_the_whole_flow_and_reuses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    args = ["quickstart", "--workspace", str(ws), "--steps", "12", "--trials", "10",
            "--profile-minutes", "0.3", "--finetune-epochs", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for step in range(1, 10):
        assert f"[{step}/9]" in out
    assert "top-1 (%)" in out
    done = next(line for line in out.splitlines() if line.startswith("quickstart done in"))
    for step in ("train", "profile", "search", "ship best", "ship knee", "report"):
        assert f"{step} " in done  # where the time went, step by step
    registry = ModelRegistry(ws / "registry")
    entries = {e.name: e for e in registry.list()}
    assert set(entries) == {"quickstart-best", "quickstart-knee"}
    for entry in entries.values():
        assert {"safetensors", "onnx", "torch_export", "tvm"} <= set(entry.artifacts)
        assert registry.verify(entry.ref) == []
        assert entry.metrics["measured_latency_ms"] > 0 and entry.metrics["predicted_latency_ms"] > 0
        assert entry.lineage["supernet_sha256"] and entry.lineage["device"] == "this-cpu"
    report = ws / "quickstart" / "report.html"
    page = report.read_text()
    assert "this-cpu" in page and "quickstart-knee:v1" in page
    import json
    import os

    if len(os.sched_getaffinity(0)) >= 2:  # profiled beside training: the state gate does not wait for it to end
        assert "profile (after training)" in done
        assert json.loads((ws / "profiles" / "this-cpu.json").read_text())["timing"]["state_wait_s"] == 0

    assert main(args) == 0  # again: every step reuses what the first run left
    again = capsys.readouterr().out
    assert "profiled before" in again and again.count("already registered") == 2
    assert [e.version for e in registry.list()] == [1, 1]
    assert main([*args, "--quiet"]) == 0  # only the result: no step lines
    quiet = capsys.readouterr().out
    assert "[1/9]" not in quiet and "quickstart done" in quiet


def test_quickstart_of_a_language_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    args = ["quickstart", "--space", "gpt", "--workspace", str(ws), "--steps", "4", "--trials", "6",
            "--profile-minutes", "0.2", "--finetune-epochs", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for step in range(1, 10):
        assert f"[{step}/9]" in out
    assert "perplexity" in out and "decode_ms" in out
    registry = ModelRegistry(ws / "registry")
    entries = {e.name: e for e in registry.list()}
    assert set(entries) == {"quickstart-gpt-best", "quickstart-gpt-knee"}
    for entry in entries.values():
        assert {"safetensors", "onnx", "torch_export", "tvm"} <= set(entry.artifacts)
        m = entry.metrics
        assert m["measured_decode_ms"] > 0 and m["measured_prefill_ms"] > 0 and m["predicted_decode_ms"] > 0
        assert entry.lineage["device"] == "this-cpu-gpt"
    # a short text from the largest sub-network and from each registered one
    samples = [line for line in out.splitlines() if " writes: 'def " in line]
    assert len(samples) == 3 and samples[0].startswith("largest writes")
    assert (ws / "quickstart" / "gpt" / "report.html").is_file()


@pytest.mark.skipif(len(getattr(__import__("os"), "sched_getaffinity", lambda _: ())(0)) < 2,
                    reason="the profile runs beside training only with two or more cores")
def test_the_profile_beside_training_stops_and_reports_in_one_line(tmp_path: Path) -> None:
    """Stopped while it runs (an interrupted quickstart): the process is gone and this
    process has its cores and threads back; a profile that fails is one line."""
    import os

    import torch

    from nas.errors import EdgenasError
    from nas.quickstart import ParallelProfile, write_config
    from nas.workspace import Workspace

    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    ws = Workspace(tmp_path / "ws")
    config = write_config(tmp_path / "qs", steps=1)
    assert ParallelProfile.possible(ws, "this-cpu")
    beside = ParallelProfile(ws, config, minutes=5.0)
    assert len(os.sched_getaffinity(0)) == len(cores) - 1
    beside.stop()
    assert not beside.process.is_alive()
    assert os.sched_getaffinity(0) == cores and torch.get_num_threads() == threads

    broken = ParallelProfile(ws, tmp_path / "missing.yaml", minutes=0.1)
    with pytest.raises(EdgenasError, match="profiling this CPU failed") as err:
        broken.wait()
    assert "\n" not in str(err.value)
    assert os.sched_getaffinity(0) == cores and torch.get_num_threads() == threads
