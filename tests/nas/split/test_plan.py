"""The split planner against devices whose costs are known, and ``edgenas split`` without --run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from split_helpers import block_cost, synthetic_device

from nas.cli import main
from nas.errors import EdgenasError
from nas.split import Link, load_pair, parse_link, plan_split
from search_spaces import get_space


@pytest.fixture(scope="module")
def pair(pair_workspace):
    return load_pair(pair_workspace, "edge", "cloud")


def test_each_point_adds_edge_link_and_cloud_and_the_ends_are_edge_and_cloud_only(pair, small_space):
    arch = small_space.largest()
    plan = plan_split(small_space, arch, pair.edge, pair.cloud, parse_link("20mbit,40ms"))
    cuts = small_space.cuts(arch)
    assert [p.index for p in plan.points] == [c.index for c in cuts]
    first, last = plan.points[0], plan.points[-1]
    assert first.kind == "cloud only" and first.edge_ms == 0 and first.up_bytes == 3 * 32 * 32 * 4
    assert last.kind == "edge only" and last.cloud_ms == 0 and last.link_ms == 0 and last.up_bytes == 0
    for p in plan.points:
        assert p.total_ms == pytest.approx(p.edge_ms + p.link_ms + p.cloud_ms)
        assert p.bytes == {"fp32": 4 * p.elements, "fp16": 2 * p.elements, "int8": p.elements}
    down = small_space.blocks(arch)[-1].out_channels * 4
    assert first.link_ms == pytest.approx(plan.link.request_ms(first.up_bytes, down))
    assert plan.best.total_ms == min(p.total_ms for p in plan.points)


def test_parts_are_priced_like_the_devices_cost_them(pair, small_space):
    """The synthetic edge costs 2 ms per MFLOP plus 0.05 ms per block plus 0.3 ms per call:
    each part, priced as a network of its own, must come out at its known cost."""
    arch = small_space.sample(__import__("random").Random(4))
    blocks = small_space.blocks(arch)
    plan = plan_split(small_space, arch, pair.edge, pair.cloud, parse_link("20mbit,40ms"), correction="per_part")
    for p in plan.points[1:]:
        truth = 0.3 + sum(block_cost(b, 2.0, 0.05) for b in blocks[:p.index])
        assert p.edge_ms == pytest.approx(truth, rel=0.03)
    shared = plan_split(small_space, arch, pair.edge, pair.cloud, parse_link("20mbit,40ms"))  # proportional
    whole = 0.3 + sum(block_cost(b, 2.0, 0.05) for b in blocks)
    for p in shared.points[1:]:
        share = sum(block_cost(b, 2.0, 0.05) for b in blocks[:p.index]) / (whole - 0.3)
        assert p.edge_ms == pytest.approx(whole * share, rel=0.03)


def test_correction_modes(pair, small_space):
    arch = small_space.largest()
    n = len(small_space.blocks(arch))
    ks = list(range(n + 1))
    whole = pair.edge.predict([arch])["latency_ms"][0]
    before, after = pair.edge.split_latency_ms(arch, ks)  # proportional: monotone, adds up to the whole
    assert np.allclose(before + after, whole) and np.all(np.diff(before) > 0) and np.all(np.diff(after) < 0)
    before, after = pair.edge.split_latency_ms(arch, ks, correction="per_part")
    assert before[0] == 0 and after[-1] == 0 and before[-1] == pytest.approx(whole) and after[0] == pytest.approx(whole)
    plain, _ = pair.edge.split_latency_ms(arch, ks, correction="none")
    assert np.all(np.diff(plain) > 0) and plain[-1] < before[-1]  # the call overhead is only in the corrected


def test_the_best_split_moves_from_edge_to_cloud_as_bandwidth_grows(pair, small_space):
    plan = plan_split(small_space, small_space.largest(), pair.edge, pair.cloud, parse_link("1mbit,5ms"))
    sweep = plan.bandwidth_sweep([0.1e6, 1e6, 10e6, 100e6, 1e9])
    assert sweep[0]["best_kind"] == "edge only" and sweep[-1]["best_kind"] == "cloud only"
    positions = [row["best_position"] for row in sweep]
    assert positions == sorted(positions, reverse=True)
    faster = plan.relink(Link(1e9, 5.0))
    assert faster.best.position == 0 and faster.points[3].edge_ms == plan.points[3].edge_ms


def test_bad_pairs_and_points_are_one_line(pair_workspace, small_space, pair):
    synthetic_device(pair_workspace, "nb", get_space("nb201"), ms_per_mflop=1.0)
    with pytest.raises(EdgenasError, match="profiled on space mbv3/small and --cloud nb on nb201"):
        load_pair(pair_workspace, "edge", "nb")
    plan = plan_split(small_space, small_space.smallest(), pair.edge, pair.cloud, parse_link("20mbit,40ms"))
    with pytest.raises(EdgenasError, match="does not exist: this arch has points 0"):
        plan.point(len(plan.points))


def test_split_command_prints_the_table_and_writes_json(pair_workspace, tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["split", "--workspace", str(pair_workspace.root), "--arch", "max", "--edge", "edge", "--cloud",
                 "cloud", "--link", "5mbit,20ms,100nj", "--precision", "int8", "--at", "cloud", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "<- best" in text and "output (edge only)" in text
    doc = json.loads(out.read_text())
    assert doc["kind"] == "edgenas-split-plan" and doc["precision"] == "int8"
    assert doc["selected"][0]["kind"] == "cloud only"
    assert doc["points"][0]["up_bytes"] == 3 * 32 * 32 and doc["points"][0]["radio_mj"] > 0
    assert len(doc["bandwidth_sweep"]) > 10 and all(math.isfinite(r["best_ms"]) for r in doc["bandwidth_sweep"])


@pytest.mark.slow  # a second Python process for the cloud part
def test_split_command_runs_the_best_point_for_real(pair_workspace, tmp_path, capsys):
    """``--run``: the chosen point runs as two processes over the software link; the line and
    the JSON give raw and drift-corrected end-to-end times against the prediction."""
    out = tmp_path / "run.json"
    code = main(["split", "--workspace", str(pair_workspace.root), "--arch", "max", "--edge", "edge", "--cloud",
                 "cloud", "--link", "50mbit,5ms", "--run", "--requests", "3", "--out", str(out), "--quiet"])
    assert code == 0
    assert "drift corrected" in capsys.readouterr().out
    (run,) = json.loads(out.read_text())["runs"]
    s = run["summary"]
    assert s["n"] == 3 and s["e2e_ms"]["median"] > 0 and s["link_ms"]["median"] >= 5.0  # the 5 ms round trip
    # these synthetic devices record no reference network: corrected compute is the raw one
    assert run["drift"]["edge"]["corrected"] is False and run["drift"]["cloud"]["corrected"] is False
    for r in run["requests"]:
        assert r["e2e_corrected_ms"] == pytest.approx(r["edge_corrected_ms"] + r["link_ms"] + r["cloud_corrected_ms"])
    assert set(run["error_pct"]) == {"e2e_ms", "e2e_cpu_ms", "e2e_corrected_ms"}


@pytest.mark.parametrize("extra, words", [
    (["--link", "fast"], "write RATE,RTT"),
    (["--link", "20mbit,40ms", "--at", "middle"], "use best, edge, cloud or a split point number"),
    (["--link", "20mbit,40ms", "--checkpoint", "x"], "add --run"),
])
def test_split_command_bad_input_is_one_line_exit_2(pair_workspace, capsys, extra, words):
    code = main(["split", "--workspace", str(pair_workspace.root), "--arch", "max", "--edge", "edge",
                 "--cloud", "cloud", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name, options", [("nb201", {}), ("nebula", {"preset": "tiny"}), ("gpt", {"preset": "tiny"})])
def test_every_space_can_be_planned(tmp_path, name, options):
    from latency_predictors.cost_metrics import default_metric
    from nas.workspace import Workspace

    space = get_space(name, **options)
    ws = Workspace(tmp_path)
    synthetic_device(ws, "e", space, ms_per_mflop=1.0, nets=6)
    synthetic_device(ws, "c", space, ms_per_mflop=0.05, nets=6)
    pair = load_pair(ws, "e", "c")
    arch = space.largest()
    plan = plan_split(pair.space, arch, pair.edge, pair.cloud, parse_link("20mbit,10ms"))
    assert len(plan.points) == len(space.cuts(arch)) and all(p.priced for p in plan.points)
    metric = default_metric(space).name  # the network split inference runs: gpt's prefill (prefill_ms)
    assert plan.edge_only.edge_ms == pytest.approx(pair.edge.predict([arch])[metric][0])
    assert plan.cloud_only.cloud_ms == pytest.approx(pair.cloud.predict([arch])[metric][0])
    if name == "gpt":  # token ids go up as int32 whatever the precision
        assert plan.cloud_only.bytes["int8"] == 4 * plan.cloud_only.elements
