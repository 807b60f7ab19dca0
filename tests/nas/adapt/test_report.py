"""`edgenas report --adapt`: an adaptation run's accuracy per method over rounds and bytes per method."""

from __future__ import annotations

import json
import re

from nas.adapt.config import SimulationConfig
from nas.adapt.simulator import simulate
from nas.cli import main
from nas.config import load_config
from nas.report.adapt import comm_ratios, load_adapt_run
from tests.nas.adapt.conftest import tiny_config


def test_report_shows_each_method_over_rounds_and_its_bytes(tmp_path, small_mnist1d):
    run_dir = tmp_path / "sim"
    cfg = load_config(SimulationConfig, tiny_config(run_dir, methods=["nebula", "fedavg", "heterofl"]))
    results = simulate(cfg, progress=False, data=small_mnist1d)
    out = tmp_path / "report.html"
    assert main(["report", "--adapt", str(run_dir), "--out", str(out), "--workspace", str(tmp_path / "ws")]) == 0
    page = out.read_text()
    for method in ("nebula", "fedavg", "heterofl"):
        assert f"<td class='l'>{method}</td>" in page
    # the summary's figures, as the simulator computed them
    neb = results["summary"]["nebula"]
    assert f"{neb['accuracy_final']:.1f}" in page and f"{neb['bytes_per_device_round'] / 1e3:.1f}" in page
    ratio = results["summary"]["fedavg"]["bytes_per_device_round"] / neb["bytes_per_device_round"]
    assert f"{ratio:.2f}x less than fedavg" in page
    assert comm_ratios(load_adapt_run(run_dir).summary)["fedavg"] == ratio
    assert len(re.findall(r"id=\"adapt-(acc|bytes)-sim\"", page)) == 2
    assert (tmp_path / "report_figures" / "adapt_sim.png").stat().st_size > 10_000


def test_report_shows_an_unfinished_run_and_a_real_round(tmp_path, small_mnist1d):
    run_dir = tmp_path / "sim"
    cfg = load_config(SimulationConfig, tiny_config(run_dir, methods=["nebula"], rounds=1))
    simulate(cfg, progress=False, data=small_mnist1d)
    results = json.loads((run_dir / "results.json").read_text())
    del results["summary"]  # as an interrupted run leaves it
    (run_dir / "results.json").write_text(json.dumps(results))
    real = tmp_path / "real"
    real.mkdir()
    (real / "round.json").write_text(json.dumps({
        "checkpoint": "runs/x", "decomposition": "elastic", "version_before": "r0-a", "version_after": "r1-b",
        "bytes_down": 1000, "bytes_up": 900, "rejected": ["dev2: non-finite values in stem.conv.weight"],
        "budget_errors": [], "devices": [{"dir": "devices/phone", "arch": {"depths": [2]}, "accuracy_before": 50.0,
                                          "accuracy_after": 75.0, "peak_memory_bytes": 2e6, "time_per_batch_ms": 3.0}]}))
    out = tmp_path / "r.html"
    assert main(["report", "--adapt", str(run_dir), "--adapt", str(real), "--out", str(out),
                 "--workspace", str(tmp_path / "ws")]) == 0
    page = out.read_text()
    assert "1 of 1 rounds done" in page and "devices/phone" in page and "non-finite values" in page


def test_report_without_study_or_run_and_with_a_bad_run_fails_in_one_line(tmp_path, capsys):
    assert main(["report", "--workspace", str(tmp_path)]) == 2
    assert "--adapt" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{\"methods\": ")
    assert main(["report", "--adapt", str(tmp_path / "bad"), "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err
    assert main(["report", "--adapt", str(tmp_path / "missing"), "--workspace", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_two_runs_with_the_same_folder_name_get_their_own_charts(tmp_path, small_mnist1d):
    dirs = []
    for parent in ("a", "b"):
        run_dir = tmp_path / parent / "v3"
        simulate(load_config(SimulationConfig, tiny_config(run_dir, methods=["nebula"], rounds=1)), progress=False,
                 data=small_mnist1d)
        dirs += ["--adapt", str(run_dir)]
    out = tmp_path / "r.html"
    assert main(["report", *dirs, "--out", str(out), "--workspace", str(tmp_path / "ws")]) == 0
    page = out.read_text()
    assert 'id="adapt-acc-v3"' in page and 'id="adapt-acc-v3-2"' in page
    assert (tmp_path / "r_figures" / "adapt_v3.png").is_file() and (tmp_path / "r_figures" / "adapt_v3-2.png").is_file()
