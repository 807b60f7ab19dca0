"""One CLI grammar: every sub-command's parser is walked and held to the same rules."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from nas.cli import build_parser, main
from nas.commands import COMMANDS
from nas.commands._args import TORCH_DEVICES, Deprecated


def _leaf_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of every command and of every action of a command with actions."""
    out = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((name, parser))
        for sub in subs:
            for child, child_parser in sub.choices.items():
                walk(f"{name} {child}".strip(), child_parser)

    walk("", build_parser())
    return out


LEAVES = _leaf_parsers()


def test_every_command_is_walked():
    tops = {name.split()[0] for name, _ in LEAVES}
    assert tops == set(COMMANDS)
    assert {"devices list", "devices show", "devices import", "registry gc", "registry export"} <= {n for n, _ in LEAVES}


@pytest.mark.parametrize("name,parser", LEAVES, ids=[n for n, _ in LEAVES])
def test_every_option_and_argument_has_help(name, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, Deprecated)):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"edgenas {name}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("name,parser", LEAVES, ids=[n for n, _ in LEAVES])
def test_shared_flags_are_spelled_the_same_everywhere(name, parser):
    options = {s: a for a in parser._actions for s in a.option_strings}
    assert "--workspace" in options, f"edgenas {name} has no --workspace"
    assert "--quiet" in options, f"edgenas {name} has no --quiet"
    if "--device" in options and not isinstance(options["--device"], Deprecated):
        device = options["--device"]
        assert device.choices is None and device.metavar == "NAME", f"edgenas {name}: --device must name a device profile"
    if "--torch-device" in options:
        assert tuple(options["--torch-device"].choices) == TORCH_DEVICES
    visible = {s for s, a in options.items() if not isinstance(a, Deprecated)}
    for old in ("--output", "-o", "--eval-device", "--no-progress"):
        assert old not in visible, f"edgenas {name}: {old} is an old spelling; it may only stay as a deprecated alias"
    if "--out" in visible:
        assert options["--out"].dest == "out" and options["--out"].metavar != "DIR", f"edgenas {name}: --out names a file"
    if "--out-dir" in visible:
        assert options["--out-dir"].dest == "out_dir"


@pytest.mark.parametrize("argv,dest,value,new", [
    (["train", "c.yaml", "--output", "runs/a"], "out_dir", "runs/a", "--out-dir"),
    (["train", "c.yaml", "--no-progress"], "quiet", True, "--quiet"),
    (["eval", "runs/a", "--device", "cpu"], "torch_device", "cpu", "--torch-device"),
    (["search", "--space", "nb201", "--eval-device", "cpu"], "torch_device", "cpu", "--torch-device"),
    (["report", "s", "-o", "r.html"], "out", "r.html", "--out"),
    (["registry", "export", "x:v1", "--format", "onnx", "--out", "dist"], "out_dir", "dist", "--out-dir"),
])
def test_old_spellings_still_work_with_a_deprecation_line(argv, dest, value, new, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert "deprecated" in err and new in err and len(err.strip().splitlines()) == 1


def test_a_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["devices", "show", "nope", "--workspace", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no device 'nope'" in err and "edgenas profile" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "--trials", "0", "--space", "nb201"])
    assert info.value.code == 2 and "--trials must be at least 1" in capsys.readouterr().err


def _bug(args: argparse.Namespace) -> int:
    return {}["latency_ms"]  # a KeyError inside the code: a bug, not a user error


def test_a_bug_is_reported_as_a_bug_and_debug_shows_the_traceback(monkeypatch, capsys):
    import nas.commands.predict as predict

    monkeypatch.setattr(predict, "run", _bug)
    code = main(["predict", "--device", "d", "--space", "nb201", "--all", "--out", "x.csv"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and "internal error: KeyError" in err and "EDGENAS_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("EDGENAS_DEBUG", "1")
    with pytest.raises(KeyError, match="latency_ms"):
        main(["predict", "--device", "d", "--space", "nb201", "--all", "--out", "x.csv"])


def test_registry_verify_that_finds_a_problem_exits_1(tmp_path, capsys):
    from nas.workspace import Workspace
    from search_spaces import get_space

    space = get_space("nb201")
    arch = space.sample()
    registry = Workspace(tmp_path).registry()
    entry = registry.register("m", space.build_static(arch), space, arch, device="d", formats=("safetensors",))
    assert main(["registry", "verify", "--workspace", str(tmp_path)]) == 0
    path = registry.artifacts / entry.artifact_dir / entry.artifacts["safetensors"]["file"]
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    assert main(["registry", "verify", "--workspace", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "failed verification" in out


def test_interrupted_message_depends_on_whether_the_command_saves_progress():
    parser = build_parser()
    assert parser.parse_args(["train", "c.yaml"])._saves_progress
    assert not parser.parse_args(["devices", "list"])._saves_progress


@pytest.mark.slow  # a subprocess
def test_help_lists_exit_codes():
    out = subprocess.run([sys.executable, "-m", "nas.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "Exit codes" in out and "internal error" in out
