"""Checkpoints: round trip, bit-exact resume, and clear errors for foreign or damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.config import load_config
from nas.errors import EdgenasError
from nas.training import TrainConfig, load_trained, train
from nas.training.checkpoint import read_checkpoint, sha256_file

PROGRESSIVE = {
    "space": {"options": {"preset": "small", "resolutions": [24, 28], "dropout": 0.2}},
    "train": {"steps": None, "progressive": True, "optimizer": "adamw", "lr": 0.003, "phases": [
        {"name": "kernel", "steps": 2},
        {"name": "depth", "steps": 1, "depths": [3, 4]},
        {"name": "expand", "steps": 2, "lr": 0.002},
    ]},
    "checkpoint": {"every_steps": 1},
}


def _cfg(path: Path) -> TrainConfig:
    return load_config(TrainConfig, path)


def test_round_trip_holds_weights_optimizer_and_metadata(tiny_config, tmp_path: Path) -> None:
    cfg = _cfg(tiny_config(train={"steps": 2, "optimizer": "adamw", "lr": 0.001}))
    result = train(cfg, tmp_path / "run", progress=False)
    ckpt = read_checkpoint(tmp_path / "run")
    meta = ckpt.meta
    assert meta["step"] == 2 and meta["seed"] == 0 and meta["sha256"] == sha256_file(tmp_path / "run" / meta["weights"])
    assert meta["space"]["name"] == "mbv3" and meta["space"]["preset"] == "small"
    assert meta["config"]["train"]["optimizer"] == "adamw" and meta["data"]["name"] == "digits"
    assert meta["fingerprint"] == result.fingerprint
    assert {"optimizer/0/exp_avg", "optimizer/0/step", "rng/torch_cpu"} <= set(ckpt.tensors)
    trained = load_trained(tmp_path / "run", "cpu")
    for name, tensor in trained.supernet.state_dict().items():
        assert torch.equal(tensor, ckpt.tensors[f"model/{name}"]), name
    assert [p.name for p in (tmp_path / "run").glob("step-*.safetensors")] == ["step-00000002.safetensors"]


def test_training_threads_hold_for_the_run_only(tiny_config, tmp_path: Path) -> None:
    """``train.threads: 1`` must not leave the caller (the quickstart, which evaluates and
    fine-tunes after training in the same process) on one thread."""
    before = torch.get_num_threads()
    other = 3 if before != 3 else 2
    torch.set_num_threads(other)
    try:
        train(_cfg(tiny_config(train={"steps": 1, "threads": 1})), tmp_path / "run", progress=False)
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # three training runs, ~8 s
def test_resume_after_stops_is_bit_identical(tiny_config, tmp_path: Path) -> None:
    cfg = _cfg(tiny_config(**PROGRESSIVE))
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert straight.step == 5
    for stop in (2, 4, None):  # at a phase boundary, then inside the expand phase (after sorting)
        result = train(cfg, tmp_path / "resumed", max_steps=stop, progress=False)
    assert result.step == 5 and result.fingerprint == straight.fingerprint
    a, b = read_checkpoint(tmp_path / "straight"), read_checkpoint(tmp_path / "resumed")
    for name, tensor in a.tensors.items():
        assert torch.equal(tensor, b.tensors[name]), name
    again = train(cfg, tmp_path / "resumed", progress=False)  # finished: nothing to do
    assert again.step == 5 and again.last_loss is None


def test_resume_with_another_config_or_space_is_refused(tiny_config, tmp_path: Path) -> None:
    train(_cfg(tiny_config(train={"steps": 1})), tmp_path / "run", progress=False)
    with pytest.raises(EdgenasError, match=r"another config \(train\.lr: 0\.05 there, 0\.1 now\)"):
        train(_cfg(tiny_config("b", train={"steps": 1, "lr": 0.1})), tmp_path / "run", progress=False)
    with pytest.raises(EdgenasError, match=r"another config \(space\.options\.preset: 'small' there, 'ofa' now\)"):
        train(_cfg(tiny_config("c", space={"options": {"preset": "ofa"}})), tmp_path / "run", progress=False)
    with pytest.raises(EdgenasError, match="holds no checkpoint; drop --resume"):
        train(_cfg(tiny_config(train={"steps": 1})), tmp_path / "empty", resume=True, progress=False)
    meta_path = tmp_path / "run" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["space_config"]["options"]["width_mult"] = 1.0  # claims another space than its weights
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(EdgenasError, match="metadata describes two different spaces"):
        load_trained(tmp_path / "run", "cpu")
    meta["space"]["config"]["width_mult"] = 1.0  # consistent metadata, weights of the half-width space
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(EdgenasError, match=r"weights are of another model \(.* has shape"):
        load_trained(tmp_path / "run", "cpu")


def _damage(run: Path, how: str) -> None:
    meta_path = run / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    weights = run / meta["weights"]
    if how == "flipped byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "truncated json":
        meta_path.write_text(meta_path.read_text()[:200])
    elif how == "garbage with matching sha":
        weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
        meta["sha256"] = sha256_file(weights)
        meta_path.write_text(json.dumps(meta))
    elif how == "missing weights":
        weights.unlink()
    elif how == "not a checkpoint":
        meta_path.write_text(json.dumps({"format": "something-else"}))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("flipped byte", "does not match its sha256"),
        ("truncated weights", "does not match its sha256"),
        ("truncated json", "checkpoint.json is corrupt or truncated"),
        ("garbage with matching sha", "is not a readable safetensors file"),
        ("missing weights", "which is missing"),
        ("not a checkpoint", "is not an edgenas supernet checkpoint"),
    ],
)
def test_damaged_checkpoints_are_one_line_errors(
    tiny_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str, message: str
) -> None:
    config = tiny_config(train={"steps": 1})
    run = tmp_path / "run"
    train(_cfg(config), run, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    _damage(run, how)
    damaged = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["eval", str(run), "--arch", "min"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    # training refuses to resume from it too, and leaves the files as they were
    assert main(["train", str(config), "--out-dir", str(run), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == damaged != before
