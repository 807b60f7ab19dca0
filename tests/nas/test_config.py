"""``load_config`` on hostile and mistaken files: alias bombs, empty files, directories, bytes
that are not UTF-8. Each is one line naming the file, in bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from nas.config import load_config
from nas.errors import EdgenasError
from nas.training.config import TrainConfig


def laughs(levels: int = 7) -> str:
    """A "billion laughs" value: each level a list of nine aliases of the level below."""
    rows = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    rows += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


def shared_value(levels: int = 7) -> list:
    """The same shape built in Python: nine references per level, 9**levels leaves."""
    value: list = ["lol"] * 9
    for _ in range(levels - 1):
        value = [value] * 9
    return value


def refused(source, match: str) -> str:
    with pytest.raises(EdgenasError, match=match) as info:
        load_config(TrainConfig, source)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    return message


@pytest.mark.parametrize("key", ["lr", "grad_clip", "phases"])  # a float, a float-or-None union, a tuple
def test_billion_laughs_is_refused_in_small_memory(tmp_path: Path, key: str) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(f"train:\n  {key}: {laughs(7)}\n")
    tracemalloc.start()
    try:
        message = refused(path, "aliases expand to more than")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in message and "line 2" in message
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_shared_values_print_a_bounded_repr() -> None:
    """A value with shared references (what aliases build) passed as a dict: every error
    path prints a few dozen characters of it, in bounded memory."""
    value = shared_value(8)  # 43 million leaves: a full repr needs hundreds of MB
    tracemalloc.start()
    try:
        for section, key in (("train", "lr"), ("train", "grad_clip"), ("train", "betas"), ("data", "name")):
            message = refused({section: {key: value}}, rf"{section}\.{key}")
            assert "got [" in message and len(message) < 200
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_long_keys_and_values_are_cut_in_messages() -> None:
    message = refused({"x" * 5000: 1}, "unknown key")
    assert len(message) < 400
    message = refused({"train": {"lr": "f" * 10_000}}, "train.lr: expected a number")
    assert len(message) < 120
    refused({1: "a", "b": 2}, "unknown key")  # keys of mixed types sort without a TypeError


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_empty_config_is_a_mistake(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert str(path) in refused(path, "is empty")


def test_explicit_empty_mapping_still_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("{}\n")
    assert load_config(TrainConfig, path) == TrainConfig()


def test_directory_is_named_as_a_directory(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    message = refused(tmp_path / "cfg", "is a directory, not a YAML file")
    assert "does not exist" not in message


@pytest.mark.parametrize(
    "content, words",
    [
        ("train:\n  lr: 0.1  # caf\u00e9\n".encode("latin-1"), "is not UTF-8 text: byte 0xe9"),
        ("train:\n  lr: 0.1\n".encode("utf-16"), "is not UTF-8 text (it looks like UTF-16)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "is not UTF-8 text"),
    ],
    ids=["latin-1", "utf-16", "png"],
)
def test_not_utf8_is_one_line_naming_the_file(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    assert str(path) in refused(path, words.replace("(", r"\(").replace(")", r"\)"))


def test_utf8_bom_recursion_and_huge_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("seed: 3\n".encode("utf-8-sig"))
    assert load_config(TrainConfig, path).seed == 3
    path.write_text("train: &t\n  lr: 0.1\n  phases: [*t]\n")
    refused(path, "recursive alias")
    path.write_text(f"seed: {'9' * 5000}\n")
    refused(path, "cannot be read")
    path.write_text("train: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(path, "nests too deeply|not valid YAML")
