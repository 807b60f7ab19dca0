"""The HTML report: built from a real study, opened in a real headless Chromium."""

from __future__ import annotations

import csv
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nas.cli import main

REPO = Path(__file__).resolve().parents[2]
NB201 = REPO.parent / "shared" / "data" / "nb201"


pytestmark = pytest.mark.slow  # a 40-trial search first (~5 s); Chromium


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 40-trial nb201 search for a device imported from 20 measurements."""
    ws = tmp_path_factory.mktemp("ws")
    rows = list(csv.DictReader(open(NB201 / "latency_ms.csv")))
    sample = random.Random(0).sample(rows, 20)
    csv_path = ws / "pixel3.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "latency_ms"])
        writer.writerows([r["cellstr"], r["pixel3"]] for r in sample)
    result = ws / "result.json"
    with pytest.MonkeyPatch.context() as mp:  # the workspace from the environment, for this set-up only
        mp.setenv("EDGENAS_WORKSPACE", str(ws))
        assert main(["devices", "import", "pixel3", "--space", "nb201", "--measurements", str(csv_path)]) == 0
        assert main(["search", "--space", "nb201", "--device", "pixel3", "--max-latency-ms", "15",
                     "--trials", "40", "--seed", "0", "--out", str(result)]) == 0
    import json

    return ws, json.loads(result.read_text())["study"]


def test_report_writes_html_and_pngs(study, capsys):
    ws, name = study
    out = ws / "report.html"
    assert main(["report", name, "--out", str(out), "--workspace", str(ws)]) == 0
    page = out.read_text()
    # self-contained: no script or stylesheet is fetched from anywhere
    assert re.findall(r"<script[^>]*\bsrc=", page) == [] and re.findall(r"<link[^>]*\bhref=", page) == []
    assert "Plotly.newPlot" in page and "pixel3" in page and "feasible Pareto front" in page
    assert "<table class='sortable'>" in page
    assert (ws / "report_figures" / "pareto_pixel3.png").stat().st_size > 10_000
    # the imported device's cross-validated figure decides whether the front is flagged
    import json

    saved = json.loads((ws / "profiles" / "pixel3.json").read_text())
    within = saved["validation"][saved["predictor"]]["within_10pct"]
    assert ("id='trust-pixel3'" in page) == (within < 0.9)


def test_report_errors_are_one_line(study, capsys):
    ws, name = study
    assert main(["report", "no-such-study", "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no study 'no-such-study'" in err and name in err and len(err.splitlines()) == 1
    assert main(["report", name, "--device", "jetson", "--workspace", str(ws)]) == 2
    assert "not in study" in capsys.readouterr().err


def _chromium() -> str:
    if shutil.which("chromium") is None:
        subprocess.run(["bash", str(REPO / "scripts" / "install_chromium.sh")], check=True, timeout=900)
    return shutil.which("chromium") or "chromium"


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def test_report_renders_in_headless_chromium(study, tmp_path):
    ws, name = study
    out = ws / "report_browser.html"
    assert main(["report", name, "--out", str(out), "--workspace", str(ws)]) == 0
    chromium = _chromium()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, *profile, "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines()
                      if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert console_errors == []
    # plotly drew its SVGs: one per plot (latency Pareto front; no energy or validation here)
    assert dom.stdout.count('class="main-svg"') >= 2
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, *profile, "--window-size=1280,2000", "--virtual-time-budget=10000",
                    f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=180, check=True)
    assert shot.stat().st_size > 20_000
    shutil.copy(shot, ws / "report_screenshot.png")
