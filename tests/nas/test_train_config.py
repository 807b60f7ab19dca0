"""``edgenas train`` config errors: one line on stderr naming the key, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main
from nas.config import load_config
from nas.training import TrainConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": {"stepz": 3}}, "train.stepz: unknown key"),
        ({"train": {"lr": "fast"}}, "train.lr: expected a number, got 'fast'"),
        ({"train": {"batch_size": 0}}, "train: batch_size must be at least 1"),
        ({"train": {"distill_weight": 1.5}}, "train: distill_weight must be in [0, 1], got 1.5"),
        ({"train": {"optimizer": "lion"}}, "train.optimizer: must be one of sgd, adamw"),
        ({"data": {"name": "cifar10"}}, "data: path is required for cifar10"),
        ({"data": {"val_fraction": 1.5}}, "data: val_fraction must be in [0, 1)"),
        ({"space": {"name": "resnet"}}, "space.name: unknown search space 'resnet'"),
        ({"space": {"options": {"preset": "huge"}}}, "space.options: unknown mbv3 preset 'huge'"),
        ({"space": {"options": {"preset": "small", "num_classes": 7}}}, "space.options.num_classes is 7"),
        ({"train": {"progressive": True, "steps": None,
                    "phases": [{"name": "depth", "steps": 2}, {"name": "kernel", "steps": 2}]}},
         "train: phases must follow the order largest -> kernel -> depth -> expand"),
        ({"train": {"progressive": True, "steps": None, "phases": [{"name": "depth", "steps": 2, "depths": [9]}]}},
         "train.phases[0].depths: depths [9] must be a non-empty subset of [2, 3, 4]"),
        ({"train": {"batch_size": 100000}}, "train.batch_size (100000) exceeds the"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_key(
    tiny_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict, message: str
) -> None:
    path = tiny_config(**changes)
    code = main(["train", str(path), "--out-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("edgenas train: error: ") and message in err[0], err
    assert not (tmp_path / "out" / "checkpoint.json").exists()


def test_yaml_syntax_error_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: 3\n")
    assert main(["train", str(bad)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_example_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "experiments" / "configs"
    digits = load_config(TrainConfig, root / "train_digits_small.yaml")
    assert digits.data.name == "digits" and digits.train.total_steps > 0
    ofa = load_config(TrainConfig, root / "train_imagenet_ofa.yaml")
    assert ofa.train.progressive and ofa.data.name == "imagefolder" and ofa.train.amp == "bf16"
    assert [p.name for p in ofa.train.resolved_phases()][-1] == "expand"
