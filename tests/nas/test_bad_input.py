"""Bad input and faults at the CLI: one line naming the problem and the fix, exit code 2, and
nothing already stored is lost or written where it must not be."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import environment_problem, main
from search_spaces import get_space


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if "deprecated" not in ln]
    assert len(lines) == 1, err
    return lines[0]


def _nb201_csv(path: Path, rows: int = 12, seed: int = 0) -> Path:
    space = get_space("nb201")
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for arch in {space.sample(rng) for _ in range(rows)}:
            w.writerow([space.arch_key(arch), f"{1 + space.flops(arch) / 1e8:.4f}"])
    return path


@pytest.mark.parametrize("name", ["../../evil", "", "a/b", ".", "..", "x" * 101])
def test_device_names_that_are_paths_are_refused_and_write_nothing(tmp_path, capsys, name):
    ws = tmp_path / "ws"
    data = _nb201_csv(tmp_path / "m.csv")
    assert main(["devices", "import", name, "--space", "nb201", "--measurements", str(data), "--workspace", str(ws)]) == 2
    assert "device name" in _one_line(capsys)
    assert not list(tmp_path.rglob("*.json"))  # nothing above, inside or beside the profiles folder


def test_an_existing_device_is_never_replaced_silently(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    first = _nb201_csv(tmp_path / "a.csv", seed=0)
    second = _nb201_csv(tmp_path / "b.csv", seed=1)
    assert main(["devices", "import", "phone", "--space", "nb201", "--measurements", str(first), "--quiet", *ws]) == 0
    profile = tmp_path / "ws" / "profiles" / "phone.json"
    before = profile.read_bytes()
    capsys.readouterr()
    assert main(["devices", "import", "phone", "--space", "nb201", "--measurements", str(second), "--quiet", *ws]) == 2
    assert "--replace" in _one_line(capsys) and profile.read_bytes() == before
    # another space under the same name is refused even with --replace
    assert main(["devices", "import", "phone", "--space", "mbv3", "--measurements", str(second), "--replace", *ws]) == 2
    capsys.readouterr()
    assert main(["devices", "import", "phone", "--space", "nb201", "--measurements", str(second), "--replace",
                 "--quiet", *ws]) == 0
    backups = list((tmp_path / "ws" / "profiles").glob("phone.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert main(["devices", "list", *ws]) == 0 and "phone" in capsys.readouterr().out


def test_journal_storage_that_is_not_a_journal(tmp_path, capsys):
    base = ["search", "--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4", "--trials", "3",
            "--workspace", str(tmp_path / "ws"), "--quiet"]
    garbage = tmp_path / "g.log"
    garbage.write_bytes(b"\x00\xffnot a journal")
    missing = tmp_path / "m.log"
    missing.write_text('{"op_code": 0}\n')
    folder = tmp_path / "dir"
    folder.mkdir()
    for target, needle in ((garbage, "not an Optuna journal"), (missing, "not a readable Optuna journal"),
                           (folder, "is a directory")):
        before = target.read_bytes() if target.is_file() else None
        assert main([*base, "--storage", f"journal:{target}"]) == 2
        assert needle in _one_line(capsys)
        assert before is None or target.read_bytes() == before  # left as it was


def test_out_naming_a_directory_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["search", "--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4",
                 "--out", str(out), *ws]) == 2
    assert "is a directory" in _one_line(capsys)
    assert not (tmp_path / "ws" / "studies.db").exists()  # refused before the study was opened


def test_registry_export_onto_a_file_is_refused(tmp_path, capsys):
    from nas.registry import ModelRegistry

    space = get_space("nb201")
    arch = space.sample(random.Random(0))
    ModelRegistry(tmp_path / "registry").register("m", space.build_static(arch), space, arch, device="d",
                                                   formats=("safetensors",))
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["registry", "--workspace", str(tmp_path), "export", "m", "--format", "safetensors",
                 "--out-dir", str(target)]) == 2
    assert "is a file" in _one_line(capsys) and target.read_text() == "keep me"


def test_a_symlink_loop_as_workspace(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert main(["devices", "list", "--workspace", str(tmp_path / "a")]) == 2
    assert "symbolic-link loop" in _one_line(capsys)


@pytest.mark.slow  # a subprocess
def test_stdout_on_a_full_device_is_one_line():
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "nas.cli", "devices", "list", "--workspace", "/nonexistent-ws"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr


def test_a_full_database_is_the_machines_problem_not_a_bug(tmp_path):
    """SQLite's own 'database or disk is full', raised for real (the file may not grow)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x TEXT)"))
    with pytest.raises(sa.exc.OperationalError) as info, engine.begin() as conn:
        conn.execute(sa.text("PRAGMA max_page_count = 2"))
        for _ in range(200):
            conn.execute(sa.text("INSERT INTO t VALUES (:x)"), {"x": "y" * 1000})
    assert environment_problem(info.value) == "the disk is full"
    assert environment_problem(KeyError("latency_ms")) is None
