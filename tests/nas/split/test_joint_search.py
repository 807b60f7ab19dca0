"""``edgenas search --device EDGE --cloud CLOUD --link ...``: archs scored at their best split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from split_helpers import synthetic_device

from nas.cli import main
from nas.search.objectives import Budget, constraint_values, objective_names
from nas.split import load_pair, parse_link, plan_split
from nas.workspace import Workspace
from search_spaces import get_space


@pytest.fixture(scope="module")
def nb_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(Path(tmp_path_factory.mktemp("joint-ws")))
    nb = get_space("nb201")
    synthetic_device(ws, "nb-edge", nb, ms_per_mflop=0.5)
    synthetic_device(ws, "nb-cloud", nb, ms_per_mflop=0.02, overhead=0.01)
    return ws


@pytest.mark.slow  # fits two devices, 30 trials (~10 s)
def test_joint_search_scores_each_arch_at_its_best_split(nb_workspace, tmp_path):
    out = tmp_path / "joint.json"
    code = main(["search", "--space", "nb201", "--device", "nb-edge", "--cloud", "nb-cloud", "--link", "50mbit,5ms",
                 "--trials", "30", "--buffered", "--study", "joint", "--out", str(out),
                 "--workspace", str(nb_workspace.root), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["objectives"] == ["accuracy", "e2e_latency_ms"]
    kinds = {r["split"]["kind"] for r in result["pareto_front"]}
    assert kinds and kinds <= {"edge only", "cloud only", "split"}
    pair = load_pair(nb_workspace, "nb-edge", "nb-cloud")
    space = pair.space
    for record in [result["recommended"], *result["pareto_front"]]:
        arch = space.arch_from_json(record["arch"])
        plan = plan_split(space, arch, pair.edge, pair.cloud, parse_link("50mbit,5ms"))
        assert record["predicted"]["e2e_latency_ms"] == pytest.approx(plan.best.total_ms)
        assert record["predicted"]["e2e_latency_ms"] <= min(p.total_ms for p in plan.points) + 1e-9
        assert record["split"]["position"] == plan.best.position and record["split"]["label"] == plan.best.label


def test_an_e2e_budget_is_a_constraint_with_the_safety_margin():
    budget = Budget(max_e2e_ms=10.0, safety_margin=0.25)
    assert Budget().to_json() == Budget(max_e2e_ms=None).to_json() and "max_e2e_ms" not in Budget().to_json()
    values = constraint_values(budget, {"e2e_latency_ms": 6.0}, [])
    assert values == {"e2e_latency_ms": pytest.approx(6.0 / 8.0 - 1.0)}
    assert constraint_values(Budget(max_e2e_ms=10.0), {"e2e_latency_ms": 12.0}, [])["e2e_latency_ms"] > 0
    assert objective_names(("accuracy", "e2e"), ["edge"], {"edge": False}) == ["accuracy", "e2e_latency_ms"]


@pytest.mark.parametrize("extra, words", [
    (["--max-e2e-ms", "5"], "needs --cloud NAME and --link"),
    (["--cloud", "nb-cloud"], "needs both --cloud NAME and --link"),
    (["--cloud", "nb-cloud", "--link", "fast"], "write RATE,RTT"),
    (["--device", "table:pixel3", "--cloud", "nb-cloud", "--link", "5mbit,5ms"], "exactly one --device"),
])
def test_joint_search_bad_input_is_one_line(nb_workspace, capsys, extra, words):
    code = main(["search", "--space", "nb201", "--device", "nb-edge", "--trials", "2",
                 "--workspace", str(nb_workspace.root), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1
