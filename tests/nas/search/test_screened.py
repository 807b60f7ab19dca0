"""``--sampler screened``: predicted-feasible archs only, never one twice, beats random, resumes."""

from __future__ import annotations

import json
from pathlib import Path

from search_helpers import complete, load

from latency_predictors.nb201_table import load_nb201_latency
from nas.cli import main
from search_spaces import get_space

DEVICE = "table:gold_6240"
BUDGET = "8"


def _run(ws: Path, sampler: str, trials: int, *extra: str) -> dict:
    out = ws / f"{sampler}.json"
    assert main(["search", "--space", "nb201", "--device", DEVICE, "--max-latency-ms", BUDGET,
                 "--trials", str(trials), "--sampler", sampler, "--study", sampler, "--buffered",
                 "--workspace", str(ws), "--out", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _archs(ws: Path, name: str) -> list[str]:
    study = load(f"sqlite:///{ws / 'studies.db'}", name)
    return [json.dumps(t.user_attrs["arch"], sort_keys=True) for t in complete(study)]


def test_screened_tries_only_feasible_new_archs_and_beats_random(tmp_path: Path) -> None:
    screened = _run(tmp_path, "screened", 120)
    random_ = _run(tmp_path, "random", 120)
    archs = _archs(tmp_path, "screened")
    assert len(archs) == 120 and len(set(archs)) == 120  # no arch evaluated twice
    assert screened["trials"]["feasible"] == 120  # exact costs: every proposal fits
    assert random_["trials"]["feasible"] < 120
    assert screened["recommended"]["accuracy"] > random_["recommended"]["accuracy"]
    space = get_space("nb201")
    latency = load_nb201_latency().column("gold_6240")
    chosen = space.arch_from_json(screened["recommended"]["arch"]).index
    assert latency[chosen] <= float(BUDGET)


def test_screened_is_reproducible_and_resumes_without_repeats(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, "screened", 90)
    _run(b, "screened", 60)
    _run(b, "screened", 90)  # the same command with more trials continues the study
    first, resumed = _archs(a, "screened"), _archs(b, "screened")
    assert len(resumed) == 90 and len(set(resumed)) == 90
    assert first[:60] == resumed[:60]
