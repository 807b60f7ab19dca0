"""``edgenas devices`` / ``predict`` / ``profile`` from the command line: imports, predictions,
and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from nas.cli import main
from search_spaces import get_space

SMALL = get_space("mbv3", preset="small")


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mbv3_rows(n: int, seed: int = 0) -> list[list[object]]:
    """Archs with a cost that grows with FLOPs (what an external meter would report)."""
    rng = random.Random(seed)
    archs = {SMALL.arch_key(a): a for a in (SMALL.sample(rng) for _ in range(n))}
    return [[k, 0.5 + SMALL.flops(a) / 4e6, 10 + SMALL.flops(a) / 1e6] for k, a in archs.items()]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow  # imports and fits predictors for three devices, ~13-18 s
def test_import_list_show_predict(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    rows = mbv3_rows(15)
    data = write_csv(tmp_path / "m.csv", ["arch", "latency_ms", "energy_mj"], rows)
    rc, out, _ = run(capsys, "devices", "import", "phone", "--space", "mbv3", "--measurements", str(data), "--workspace", ws)
    assert rc == 0 and "imported 15 measurements" in out and "whole_network" in out

    rc, out, _ = run(capsys, "devices", "list", "--workspace", ws)
    assert rc == 0 and "phone" in out and "import" in out
    rc, out, _ = run(capsys, "devices", "show", "phone", "--workspace", ws)
    shown = json.loads(out)
    assert shown["energy"] == "imported" and shown["validation"]["whole_network"]["n"] == 15
    assert "cross-validation" in shown["validation"]["whole_network"]["how"]

    archs = tmp_path / "archs.jsonl"
    archs.write_text("\n".join(r[0] for r in mbv3_rows(5, seed=9)) + "\n")
    out_csv = tmp_path / "pred.csv"
    rc, out, _ = run(capsys, "predict", "--device", "phone", "--space", "mbv3", "--archs", str(archs),
                     "--out", str(out_csv), "--workspace", ws)  # fmt: skip
    assert rc == 0
    with out_csv.open() as f:
        got = list(csv.DictReader(f))
    assert len(got) == 5 and all(float(r["latency_ms"]) > 0 and float(r["energy_mj"]) > 0 for r in got)
    by_flops = sorted(got, key=lambda r: SMALL.flops(SMALL.arch_from_json(r["arch"])))
    assert float(by_flops[-1]["latency_ms"]) > float(by_flops[0]["latency_ms"])


def test_nb201_import_with_few_rows_uses_fewshot(tmp_path, capsys):
    from latency_predictors.nb201_table import load_nb201_latency

    try:
        table = load_nb201_latency()
    except FileNotFoundError:
        pytest.skip("NAS-Bench-201 data not present")
    truth = table.column("pixel3")
    rows = [[i, truth[i]] for i in random.Random(0).sample(range(15625), 12)]
    data = write_csv(tmp_path / "p.csv", ["arch", "latency_ms"], rows)
    ws = str(tmp_path / "ws")
    rc, out, _ = run(capsys, "devices", "import", "pixel3", "--space", "nb201", "--measurements", str(data), "--workspace", ws)
    assert rc == 0 and "fewshot" in out
    out_csv = tmp_path / "all.csv"
    rc, _, _ = run(capsys, "predict", "--device", "pixel3", "--space", "nb201", "--all", "--out", str(out_csv), "--workspace", ws)
    assert rc == 0
    with out_csv.open() as f:
        pred = [float(r["latency_ms"]) for r in csv.DictReader(f)]
    from scipy.stats import spearmanr

    assert len(pred) == 15625 and spearmanr(pred, truth).statistic > 0.8


@pytest.mark.parametrize(
    "header, rows, words",
    [
        (["arch", "ms"], [["{}", 1.0]], "missing column(s) latency_ms"),
        (["arch", "latency_ms"], [['{"depths": [9]}', 1.0]], "unknown mbv3 arch"),
        (["arch", "latency_ms"], [[mbv3_rows(1)[0][0], -2.0]], "latency_ms must be positive"),
        (["arch", "latency_ms"], [[mbv3_rows(1)[0][0], "fast"]], "is not a number"),
    ],
)
def test_bad_csv_is_one_line_and_exit_2(tmp_path, capsys, header, rows, words):
    data = write_csv(tmp_path / "bad.csv", header, rows)
    rc, _, err = run(capsys, "devices", "import", "x", "--space", "mbv3", "--measurements", str(data),
                     "--workspace", str(tmp_path / "ws"))  # fmt: skip
    assert rc == 2 and words in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--target", '{"kind": llvm}'], "not valid JSON"),
        (["--target", '{"kind": "llvm"}', "--rpc", "127.0.0.1:1"], "cannot reach the RPC server"),
        (["--target", '{"kind": "llvm"}', "--rpc-tracker", "127.0.0.1:1"], "needs --rpc-key"),
        (["--target", '{"kind": "llvm"}', "--rpc", "nohost"], "HOST:PORT"),
        (["--target", '{"kind": "llvm"}', "--state-wait", "-1"], "--state-wait) must be at least 0 seconds"),
    ],
)
def test_profile_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, words):
    pytest.importorskip("tvm")
    rc, _, err = run(capsys, "profile", "--device", "d", "--workspace", str(tmp_path), *extra)
    assert rc == 2 and words in err and err.count("\n") == 1


def test_unknown_device_names_the_fix(tmp_path, capsys):
    rc, _, err = run(capsys, "predict", "--device", "ghost", "--space", "nb201", "--all", "--out",
                     str(tmp_path / "o.csv"), "--workspace", str(tmp_path))  # fmt: skip
    assert rc == 2 and "edgenas profile --device ghost" in err


@pytest.mark.slow  # fits a device's predictors, ~5-8 s
def test_workspace_goes_before_or_after_the_action(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    data = write_csv(tmp_path / "m.csv", ["arch", "latency_ms"], [r[:2] for r in mbv3_rows(8)])
    assert run(capsys, "devices", "--workspace", ws, "import", "meter", "--space", "mbv3",
               "--measurements", str(data))[0] == 0
    for argv in (("devices", "--workspace", ws, "list"), ("devices", "list", "--workspace", ws)):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0 and "meter" in out
    for argv in (("registry", "--workspace", ws, "list"), ("registry", "list", "--workspace", ws)):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0 and "registry is empty" in out
    assert (tmp_path / "ws" / "profiles" / "meter.json").is_file()


def csv_text(rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["arch", "latency_ms"])
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    "encode, words",
    [
        (lambda text: text.encode("utf-16"), "is UTF-16 text; save it as a UTF-8 CSV"),
        (lambda text: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is not a text CSV file"),
    ],
    ids=["utf-16", "png"],
)
def test_csv_that_is_not_utf8_text_is_one_line_naming_it(tmp_path, capsys, encode, words):
    data = tmp_path / "m.csv"
    data.write_bytes(encode(csv_text([r[:2] for r in mbv3_rows(3)])))
    rc, _, err = run(capsys, "devices", "import", "x", "--space", "mbv3", "--measurements", str(data),
                     "--workspace", str(tmp_path / "ws"))  # fmt: skip
    assert rc == 2 and words in err and str(data) in err and err.count("\n") == 1 and "codec" not in err


@pytest.mark.slow
def test_spreadsheet_bom_imports_and_an_existing_name_is_kept(tmp_path, capsys):
    ws = tmp_path / "ws"
    data = tmp_path / "m.csv"
    data.write_bytes(csv_text([r[:2] for r in mbv3_rows(8)]).encode("utf-8-sig"))  # what spreadsheets write
    rc, out, _ = run(capsys, "devices", "import", "meter", "--space", "mbv3", "--measurements", str(data),
                     "--workspace", str(ws))  # fmt: skip
    assert rc == 0 and "imported 8 measurements" in out
    before = (ws / "profiles" / "meter.json").read_bytes()
    other = write_csv(tmp_path / "n.csv", ["arch", "latency_ms"], [r[:2] for r in mbv3_rows(8, seed=5)])
    rc, _, err = run(capsys, "devices", "import", "meter", "--space", "mbv3", "--measurements", str(other),
                     "--workspace", str(ws))  # fmt: skip
    assert rc == 2 and "already has a profile" in err and "--replace" in err and err.count("\n") == 1
    assert (ws / "profiles" / "meter.json").read_bytes() == before
    rc, _, err = run(capsys, "devices", "import", "../evil", "--space", "mbv3", "--measurements", str(data),
                     "--workspace", str(ws))  # fmt: skip
    assert rc == 2 and "device name '../evil' is not allowed" in err and not (tmp_path / "evil.json").exists()


def _nb201_truth():  # type: ignore[no-untyped-def]
    from latency_predictors.nb201_table import load_nb201_latency

    try:
        return load_nb201_latency().column("pixel3")
    except FileNotFoundError:
        pytest.skip("NAS-Bench-201 data not present")


@pytest.mark.slow  # an import, a 60-trial search and two refits: ~15 s
def test_suggest_then_add_refines_and_a_file_added_twice_changes_nothing(tmp_path, capsys):
    """The loop for a device reachable only as a CSV: suggest archs near a budget, measure
    them (here: the table's true latency), add the filled file; adding it again is a no-op."""
    import numpy as np

    truth = _nb201_truth()
    nb201 = get_space("nb201")
    ws = str(tmp_path / "ws")
    first = write_csv(tmp_path / "m.csv", ["arch", "latency_ms"],
                      [[i, truth[i]] for i in random.Random(0).sample(range(15625), 10)])
    assert run(capsys, "devices", "import", "pixel3", "--space", "nb201", "--measurements", str(first),
               "--workspace", ws, "--quiet")[0] == 0
    budget = float(np.percentile(truth, 50))
    todo = tmp_path / "todo.csv"
    rc, out, _ = run(capsys, "devices", "suggest", "pixel3", "--budget", str(budget), "-n", "4", "--out", str(todo),
                     "--trials", "60", "--workspace", ws, "--quiet")
    assert rc == 0 and "edgenas devices import pixel3 --add" in out
    with todo.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(r["latency_ms"] == "" for r in rows)
    assert all(0.01 <= float(r["chance_fits"]) < 1.0 for r in rows)  # near the edge: neither hopeless nor sure
    measured = {nb201.arch_key(nb201.arch_from_json(a)) for a in [r[0] for r in csv.reader(first.open())][1:]}
    assert not measured & {nb201.arch_key(nb201.arch_from_json(r["arch"])) for r in rows}
    for r in rows[:3]:  # the fourth is not measured yet: skipped, not an error
        r["latency_ms"] = str(truth[nb201.arch_from_json(r["arch"]).index])
    done = write_csv(tmp_path / "done.csv", list(rows[0]), [list(r.values()) for r in rows])
    rc, out, _ = run(capsys, "devices", "import", "pixel3", "--add", "--measurements", str(done), "--workspace", ws,
                     "--quiet")
    assert rc == 0 and "added 3 measurements" in out and "1 without latency_ms" in out and "13 rows" in out
    before = (tmp_path / "ws" / "profiles" / "pixel3.json").read_text()
    rc, out, _ = run(capsys, "devices", "import", "pixel3", "--add", "--measurements", str(done), "--workspace", ws,
                     "--quiet")
    assert rc == 0 and "added 0 measurements" in out and "3 already stored" in out
    assert (tmp_path / "ws" / "profiles" / "pixel3.json").read_text() == before
    from nas.workspace import Workspace

    assert len(Workspace(tmp_path / "ws").measurements().query("pixel3", role="import")) == 13


def test_add_needs_an_imported_device_and_excludes_replace(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    data = write_csv(tmp_path / "m.csv", ["arch", "latency_ms"], [r[:2] for r in mbv3_rows(3)])
    rc, _, err = run(capsys, "devices", "import", "nosuch", "--add", "--measurements", str(data), "--workspace", ws)
    assert rc == 2 and "no device 'nosuch'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["devices", "import", "x", "--add", "--replace", "--measurements", str(data), "--workspace", ws])
    assert exc.value.code == 2
    from latency_predictors.device_profile import DeviceProfile

    DeviceProfile(name="board", space=SMALL.describe(), target={"kind": "llvm"}, reached={"kind": "local"},
                  predictor="whole_network").save(tmp_path / "ws" / "profiles" / "board.json")
    rc, _, err = run(capsys, "devices", "import", "board", "--add", "--measurements", str(data), "--workspace", ws)
    assert rc == 2 and "--add extends imported devices only" in err and "search --verify" in err
