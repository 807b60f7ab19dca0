"""One real elastic adaptation round: a supernet trained by `edgenas train`, device directories on disk."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from nas.adapt.decomposition import ElasticDecomposition
from nas.cli import main
from nas.data.sources import load_digits
from nas.training import load_supernet
from nas.training.checkpoint import read_checkpoint, sha256_file


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    from nas.config import load_config
    from nas.training import TrainConfig, train
    from tests.nas.conftest import TINY

    out = tmp_path_factory.mktemp("train") / "run"
    train(load_config(TrainConfig, TINY), out, progress=False)
    return out


def _device(root, name, images, labels, **files):
    d = root / name
    d.mkdir()
    save_file({"x": images, "y": labels, "test_x": images[:20].clone(), "test_y": labels[:20].clone()}, str(d / "data.safetensors"))
    for file, content in files.items():
        (d / f"{file}.json").write_text(json.dumps(content))
    return str(d)


def test_elastic_round_absorbs_device_slices_into_a_new_checkpoint(trained_dir, tmp_path, capsys):
    digits = load_digits(28).train
    images, labels = digits.images, digits.labels
    space, before, ckpt = load_supernet(trained_dir)
    source_sha = sha256_file(ckpt.path.parent / ckpt.meta["weights"])
    small = space.smallest()
    # a budget a little above the smallest sub-network's: the knapsack must stay well below the largest
    cost = ElasticDecomposition(space, 16).cost(dataclasses.replace(small, resolution=28))
    tight = {k: 1.3 * v for k, v in dataclasses.asdict(cost).items()}
    two = (labels == 0) | (labels == 1)
    dirs = [
        _device(tmp_path, "knapsack", images[two][:60].contiguous(), labels[two][:60].contiguous(), budget=tight),
        _device(tmp_path, "searched", images[~two][:50].contiguous(), labels[~two][:50].contiguous(),
                arch={"recommended": {"arch": small.to_json(), "accuracy": 50.0}, "front": []}),
        _device(tmp_path, "tiny_budget", images[:40].contiguous(), labels[:40].contiguous(),
                budget={"memory": 1.0, "compute": 1.0, "bandwidth": 1.0}),
    ]
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": dirs,
                                      "out_dir": str(tmp_path / "adapted"), "local": {"epochs": 1, "batch_size": 16}}))
    assert main(["adapt", str(config), "--quiet"]) == 0
    record = json.loads((tmp_path / "adapted" / "round.json").read_text())
    assert [d["dir"] for d in record["devices"]] == dirs[:2]
    assert len(record["budget_errors"]) == 1 and "tiny_budget" in record["budget_errors"][0]
    assert "smallest sub-network" in record["budget_errors"][0]
    assert record["devices"][1]["arch"]["depths"] == list(small.depths)  # arch.json was used
    assert record["devices"][0]["arch"]["resolution"] == 28
    assert record["version_before"] != record["version_after"]

    # the input checkpoint is untouched; the output is a regular checkpoint every command reads
    assert sha256_file(ckpt.path.parent / ckpt.meta["weights"]) == source_sha
    space2, after, new = load_supernet(tmp_path / "adapted")
    assert new.meta["adapted_from"]["devices"] == 2 and space2.describe() == space.describe()
    knapsack_arch = record["devices"][0]["arch"]
    assert knapsack_arch != space.largest().to_json()
    assert all(record["devices"][0]["cost"][k] <= tight[k] for k in tight)
    old, cur = before.state_dict(), after.state_dict()
    # what both devices trained changed; blocks no device held kept their weights
    assert not torch.equal(old["stem.conv.weight"], cur["stem.conv.weight"])
    assert not torch.equal(old["stages.0.0.project_conv.weight"], cur["stages.0.0.project_conv.weight"])
    deepest = [max(d["arch"]["depths"][s] for d in record["devices"]) for s in range(space.num_stages)]
    untouched = [f"stages.{s}.{depth}.project_conv.weight" for s, depth in enumerate(deepest)
                 if f"stages.{s}.{depth}.project_conv.weight" in old]
    assert untouched
    assert all(torch.equal(old[k], cur[k]) for k in untouched)


def test_elastic_round_refuses_to_overwrite_its_checkpoint(trained_dir, tmp_path, capsys):
    digits = load_digits(28).train
    d = _device(tmp_path, "dev", digits.images[:30].contiguous(), digits.labels[:30].contiguous())
    before = read_checkpoint(trained_dir).meta["sha256"]
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": [d], "out_dir": str(trained_dir)}))
    assert main(["adapt", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out_dir" in err
    assert read_checkpoint(trained_dir).meta["sha256"] == before


def test_elastic_round_rejects_images_of_the_wrong_size(trained_dir, tmp_path, capsys):
    x = torch.from_numpy(np.zeros((10, 3, 20, 20), np.uint8))
    d = _device(tmp_path, "dev", x, torch.zeros(10, dtype=torch.int64))
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": [d],
                                      "out_dir": str(tmp_path / "out")}))
    assert main(["adapt", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "20x20" in err and "resize" in err
    assert not (tmp_path / "out" / "checkpoint.json").exists()


@pytest.mark.slow  # ~6 s
def test_elastic_round_never_replaces_another_checkpoint(trained_dir, tmp_path, capsys):
    import shutil

    digits = load_digits(28).train
    d = _device(tmp_path, "dev", digits.images[:30].contiguous(), digits.labels[:30].contiguous())
    other = tmp_path / "other_run"
    shutil.copytree(trained_dir, other)  # another training run's checkpoint
    before = read_checkpoint(other).meta["sha256"]
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": [d], "out_dir": str(other),
                                      "local": {"epochs": 1}}))
    assert main(["adapt", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds another checkpoint" in err
    assert read_checkpoint(other).meta["sha256"] == before
    # a rerun of the same round may replace its own output
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": [d],
                                      "out_dir": str(tmp_path / "adapted"), "local": {"epochs": 1}}))
    assert main(["adapt", str(config), "--quiet"]) == 0
    assert main(["adapt", str(config), "--quiet"]) == 0


def test_device_data_needs_matching_test_tensors(trained_dir, tmp_path, capsys):
    x = torch.zeros((10, 3, 28, 28), dtype=torch.uint8)
    d = tmp_path / "dev"
    d.mkdir()
    save_file({"x": x, "y": torch.zeros(10, dtype=torch.int64), "test_x": x[:4].clone()}, str(d / "data.safetensors"))
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({"checkpoint": str(trained_dir), "device_dirs": [str(d)],
                                      "out_dir": str(tmp_path / "out")}))
    assert main(["adapt", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test_x and test_y" in err


def test_a_nebula_file_beside_a_training_checkpoint_is_not_taken_for_it(trained_dir, tmp_path):
    import shutil

    from nas.adapt.round import is_training_checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    weights = read_checkpoint(run).meta["weights"]
    save_file({"head.2.weight": torch.zeros(2, 2)}, str(run / "cloud_adapted.safetensors"))
    assert is_training_checkpoint(run) and is_training_checkpoint(run / weights)
    assert not is_training_checkpoint(run / "cloud_adapted.safetensors")
