"""``edgenas report --split``: the breakdown per split point, the bandwidth sweep, runs and cascades."""

from __future__ import annotations

import json

import pytest

from nas.cli import main


@pytest.mark.slow  # renders plotly and matplotlib figures (~10 s)
def test_report_shows_a_split_plan_and_a_cascade(pair_workspace, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    assert main(["split", "--workspace", str(pair_workspace.root), "--arch", "max", "--edge", "edge", "--cloud",
                 "cloud", "--link", "10mbit,30ms", "--out", str(plan), "--quiet"]) == 0
    cascade = tmp_path / "cascade.json"
    sweep = [{"threshold": t, "accuracy": 90 + 5 * t, "mean_ms": 5 + 40 * t, "p95_ms": 8 + 50 * t, "offloaded": t}
             for t in (0.0, 0.5, 1.0)]
    cascade.write_text(json.dumps({
        "kind": "edgenas-cascade", "confidence": "softmax", "link": {"label": "10mbit,30ms"}, "images": 3,
        "edge": "edge", "cloud": "cloud", "edge_arch": {}, "sweep": sweep, "chosen": None, "chosen_run": None,
        "baselines": {"edge_only": {**sweep[0]}, "cloud_only": {**sweep[-1]}}}))
    out = tmp_path / "report.html"
    assert main(["report", "--split", str(plan), "--split", str(cascade), "--out", str(out),
                 "--workspace", str(pair_workspace.root)]) == 0
    page = out.read_text()
    assert "Split inference: plan" in page and "Neurosurgeon" in page and "how the best split moves" in page
    assert "Cascade: cascade" in page and "Not run for real" in page
    figures = out.parent / "report_figures"
    assert (figures / "split_plan.png").stat().st_size > 1000 and (figures / "cascade_cascade.png").is_file()


@pytest.mark.parametrize("content, words", [(None, "no such file"), ("{", "not a JSON file"),
                                            ('{"kind": "x"}', "not an `edgenas split --out`")])
def test_report_refuses_what_is_not_a_split_file_in_one_line(tmp_path, capsys, content, words):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", "--split", str(path), "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
