"""CSV measurement files as spreadsheets and mistakes make them: BOMs, UTF-16, binary files,
directories, duplicates deep in a large file. Every refusal is one line naming the file."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from latency_predictors.csv_import import read_measurements_csv
from search_spaces import get_space

SMALL = get_space("mbv3", preset="small")


def rows(n: int, seed: int = 0) -> list[list[object]]:
    rng = random.Random(seed)
    archs = {SMALL.arch_key(a): a for a in (SMALL.sample(rng) for _ in range(n))}
    return [[k, round(0.5 + SMALL.flops(a) / 4e6, 4)] for k, a in archs.items()]


def write(path: Path, data: list[list[object]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "latency_ms"])
        writer.writerows(data)
    return path


def refusal(path: Path) -> str:
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        read_measurements_csv(path, SMALL, progress=False)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "codec" not in message
    return message


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    data = rows(5)
    got = read_measurements_csv(write(tmp_path / "excel.csv", data, encoding="utf-8-sig"), SMALL, progress=False)
    assert (tmp_path / "excel.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert [SMALL.arch_key(r.arch) for r in got] == [d[0] for d in data]
    assert [r.latency_ms for r in got] == [d[1] for d in data]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le"])
def test_utf16_is_named(tmp_path, encoding):
    path = write(tmp_path / "wide.csv", rows(3), encoding=encoding)
    assert "is UTF-16 text; save it as a UTF-8 CSV" in refusal(path)


def test_utf32_is_named(tmp_path):
    path = write(tmp_path / "wider.csv", rows(3), encoding="utf-32")
    assert "is UTF-32 text" in refusal(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4,
        random.Random(0).randbytes(20000),
        "arch,latency_ms\n\"caf\xe9\",1.0\n".encode("latin-1"),  # one non-UTF-8 byte, no NUL
    ],
    ids=["png", "random", "latin-1"],
)
def test_binary_or_other_encoding_is_not_a_text_csv(tmp_path, content):
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    assert "is not a text CSV file" in refusal(path)


def test_directory_and_empty_file(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory, not a CSV file" in refusal(tmp_path / "dir.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "is empty" in refusal(tmp_path / "empty.csv")


def test_duplicate_deep_in_a_large_file_names_both_lines(tmp_path):
    data = rows(3000, seed=1)
    data.append([data[10][0], 9.0])
    message = refusal(write(tmp_path / "dup.csv", data))
    assert f"dup.csv:{len(data) + 1}:" in message and "already appears on line 12" in message


def test_large_file_reads_every_row_without_output(tmp_path, capsys):
    data = rows(3000, seed=2)
    got = read_measurements_csv(write(tmp_path / "big.csv", data), SMALL, progress=False)
    assert len(got) == len(data) and got[-1].latency_ms == data[-1][1]
    assert capsys.readouterr().err == ""
