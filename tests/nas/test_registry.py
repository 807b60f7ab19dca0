"""The model registry: versions, sha256 checks, atomic and concurrent registration."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import random
import time

import pytest
import torch

from nas.errors import EdgenasError
from nas.registry import ModelRegistry
from search_spaces import get_space


@pytest.fixture()
def space():
    return get_space("mbv3", preset="small")


def _model(space, seed=0):
    arch = space.sample(random.Random(seed))
    torch.manual_seed(seed)
    return arch, space.build_static(arch)


@pytest.mark.slow  # ONNX and TVM exports, ~10 s
def test_register_load_and_export(tmp_path, space):
    registry = ModelRegistry(tmp_path / "reg")
    arch, model = _model(space)
    entry = registry.register(
        "digits", model, space, arch, device="cpu", metrics={"accuracy": 90.5},
        lineage={"study": "s", "trial": 3}, formats=("safetensors", "onnx", "torch_export"),
    )
    assert entry.ref == "digits:v1" and set(entry.artifacts) == {"safetensors", "onnx", "torch_export"}
    assert registry.verify(entry.ref) == []
    loaded = registry.load_model("digits")  # latest version by name
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    out = registry.export(entry.id, "onnx", tmp_path / "out")
    assert out.name == "digits-v1.onnx" and out.stat().st_size > 0
    program = torch.export.load(str(registry.export(entry.ref, "torch_export", tmp_path / "out")))
    torch.testing.assert_close(program.module()(x), model(x))
    with pytest.raises(EdgenasError, match="has no tvm export"):
        registry.export(entry.ref, "tvm", tmp_path / "out")


def test_versions_are_never_overwritten(tmp_path, space):
    registry = ModelRegistry(tmp_path / "reg")
    refs = [registry.register("m", _model(space, s)[1], space, _model(space, s)[0], device="cpu",
                              formats=("safetensors",)).ref for s in range(3)]
    assert refs == ["m:v1", "m:v2", "m:v3"]
    assert [e.version for e in registry.list("m")] == [1, 2, 3]
    assert registry.get("m").version == 3
    with pytest.raises(EdgenasError, match="no registry entry"):
        registry.get("m:v9")


def test_changed_artifact_is_detected_and_refused(tmp_path, space):
    registry = ModelRegistry(tmp_path / "reg")
    arch, model = _model(space)
    entry = registry.register("m", model, space, arch, device="cpu", formats=("safetensors",))
    path = registry.artifacts / entry.artifact_dir / entry.artifacts["safetensors"]["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert any("sha256 mismatch" in p for p in registry.verify(entry.ref))
    with pytest.raises(EdgenasError, match="sha256"):
        registry.load_model(entry.ref)
    path.unlink()
    assert any("missing" in p for p in registry.verify(entry.ref))


def test_failed_registration_leaves_nothing_behind(tmp_path, space):
    registry = ModelRegistry(tmp_path / "reg")
    arch, model = _model(space)
    with pytest.raises(EdgenasError, match="unknown export format"):
        registry.register("m", model, space, arch, device="cpu", formats=("safetensors", "coreml"))
    with pytest.raises(EdgenasError, match="name"):
        registry.register("a/b", model, space, arch, device="cpu")
    assert registry.list() == []
    assert list(registry.artifacts.iterdir()) == []


def _register_many(root: str, seed: int) -> list[str]:
    torch.set_num_threads(1)
    space = get_space("mbv3", preset="small")
    registry = ModelRegistry(root)
    arch, model = _model(space, seed)
    return [registry.register("shared", model, space, arch, device="cpu",
                              formats=("safetensors",)).ref for _ in range(3)]


@pytest.mark.slow  # writer subprocesses
def test_concurrent_writers_get_distinct_versions(tmp_path):
    root = str(tmp_path / "reg")
    ModelRegistry(root)  # create the schema once
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_register_many, [(root, 0), (root, 1)])
    refs = sorted(r for rs in results for r in rs)
    assert refs == sorted(f"shared:v{i}" for i in range(1, 7))
    registry = ModelRegistry(root)
    assert all(registry.verify(e.ref) == [] for e in registry.list())
    assert registry.gc() == []


def test_registry_cli(tmp_path, space, capsys):
    from nas.cli import main

    registry = ModelRegistry(tmp_path / "registry")
    arch, model = _model(space)
    entry = registry.register("cli", model, space, arch, device="cpu", formats=("safetensors", "onnx"),
                              metrics={"accuracy": 88.0, "predicted_latency_ms": 1.5})
    ws = ["--workspace", str(tmp_path)]
    assert main(["registry", *ws, "list"]) == 0
    assert "cli:v1" in capsys.readouterr().out
    assert main(["registry", *ws, "show", "cli:v1"]) == 0
    assert '"accuracy": 88.0' in capsys.readouterr().out
    assert main(["registry", *ws, "export", "cli", "--format", "onnx", "--out-dir", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "cli-v1.onnx").is_file()
    assert main(["registry", *ws, "verify"]) == 0
    (registry.artifacts / entry.artifact_dir / "model.onnx").write_bytes(b"tampered")
    capsys.readouterr()
    assert main(["registry", *ws, "verify"]) == 1  # it ran and found a problem
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "failed verification" in out
    assert main(["registry", *ws, "export", "cli", "--format", "onnx", "--out-dir", str(tmp_path / "o")]) == 2
    assert "sha256" in capsys.readouterr().err


def test_gc_never_removes_what_it_cannot_prove_is_its_own(tmp_path, space, capsys, monkeypatch):
    """A mistyped --registry-url and a lost registry.db know no entry: neither may delete models."""
    from nas.cli import main

    ws = ["--workspace", str(tmp_path)]
    registry = ModelRegistry(tmp_path / "registry")
    arch, model = _model(space)
    entry = registry.register("m", model, space, arch, device="cpu", formats=("safetensors",))
    crashed = registry.artifacts / ".staging-dead"
    crashed.mkdir()
    (crashed / "OWNER").write_text(registry.registry_id)
    old = time.time() - 7200
    os.utime(crashed, (old, old))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: gc needs --yes

    # a typo'd URL: refused when the file does not exist
    assert main(["registry", *ws, "--registry-url", f"sqlite:///{tmp_path / 'typo.db'}", "gc", "--yes"]) == 2
    assert "no registry database" in capsys.readouterr().err and not (tmp_path / "typo.db").exists()
    # another (empty) registry database: it lists the folders and removes none of them
    other = ModelRegistry(tmp_path / "registry", url=f"sqlite:///{tmp_path / 'other.db'}")
    assert other.registry_id != registry.registry_id
    assert main(["registry", *ws, "--registry-url", f"sqlite:///{tmp_path / 'other.db'}", "gc", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "keeping" in out and "nothing to remove" in out
    assert (registry.artifacts / entry.artifact_dir).is_dir() and crashed.is_dir()
    assert main(["registry", *ws, "--registry-url", f"sqlite:///{tmp_path / 'other.db'}", "verify"]) == 1
    assert "left alone" in capsys.readouterr().out

    # its own database: the crashed registration is shown, and removed only with --yes
    assert main(["registry", *ws, "gc"]) == 2
    assert "pass --yes" in capsys.readouterr().err and crashed.is_dir()
    assert main(["registry", *ws, "verify"]) == 1 and "crashed" in capsys.readouterr().out
    assert main(["registry", *ws, "gc", "--yes"]) == 0
    assert "will remove" in capsys.readouterr().out and not crashed.exists()
    assert (registry.artifacts / entry.artifact_dir).is_dir() and registry.verify(entry.ref) == []

    # registry.db lost: every command says so instead of "empty", and nothing is deleted
    (tmp_path / "registry" / "registry.db").unlink()
    for action in (["list"], ["verify"], ["gc", "--yes"]):
        assert main(["registry", *ws, *action]) == 2
        assert "no registry database" in capsys.readouterr().err
    assert (registry.artifacts / entry.artifact_dir).is_dir()


def test_a_garbage_registry_database_is_one_line(tmp_path, capsys):
    from nas.cli import main

    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "registry.db").write_bytes(b"this is not a database" * 100)
    assert main(["registry", "--workspace", str(tmp_path), "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "registry database" in err
