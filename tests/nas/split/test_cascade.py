"""``edgenas cascade``: a tiny trained supernet, the edge's sub-network against the largest in the cloud."""

from __future__ import annotations

import json

import numpy as np
import pytest
from split_helpers import synthetic_device

from nas.cli import main
from nas.config import load_config
from nas.errors import EdgenasError
from nas.split.cascade import confidence, pick_threshold
from nas.training import TrainConfig, load_trained, train
from nas.workspace import Workspace


def test_confidence_is_the_top_probability_or_its_margin():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]))
    assert confidence(logits).tolist() == pytest.approx([0.7, 0.4])
    assert confidence(logits, "margin").tolist() == pytest.approx([0.5, 0.05])
    with pytest.raises(EdgenasError, match="use one of softmax, margin"):
        confidence(logits, "entropy")


def test_pick_threshold_for_accuracy_or_latency():
    sweep = [{"threshold": t, "accuracy": a, "mean_ms": m, "offloaded": o}
             for t, a, m, o in ((0.0, 90.0, 5.0, 0.0), (0.5, 95.0, 20.0, 0.3), (0.9, 97.0, 40.0, 0.7),
                                (1.0, 97.5, 60.0, 1.0))]
    assert pick_threshold(sweep, target_accuracy=95.0)["threshold"] == 0.5
    assert pick_threshold(sweep, max_latency_ms=45.0)["threshold"] == 0.9
    assert pick_threshold(sweep, target_accuracy=99.0)["threshold"] is None
    with pytest.raises(EdgenasError):
        pick_threshold(sweep)


@pytest.mark.slow  # trains a tiny supernet, then a cloud process times 40 images (~30 s)
def test_cascade_sweeps_from_edge_only_to_cloud_only_and_runs_the_choice(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config(TrainConfig, tiny_config(train={"steps": 6})), run, progress=False)
    space = load_trained(run, device="cpu").space
    ws = Workspace(tmp_path / "ws")
    synthetic_device(ws, "edge", space, ms_per_mflop=2.0)
    synthetic_device(ws, "cloud", space, ms_per_mflop=0.05)
    out = tmp_path / "cascade.json"
    code = main(["cascade", "--checkpoint", str(run), "--arch", "min", "--edge", "edge", "--cloud", "cloud",
                 "--link", "20mbit,10ms", "--limit", "40", "--max-latency-ms", "1000", "--out", str(out),
                 "--workspace", str(ws.root), "--quiet"])
    assert code == 0 and "cascade of 40 images" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    sweep, base = doc["sweep"], doc["baselines"]
    assert doc["images"] == 40 and base["edge_only"]["offloaded"] == 0 and base["cloud_only"]["offloaded"] == 1
    assert sweep[0]["offloaded"] == 0 and sweep[0]["accuracy"] == base["edge_only"]["accuracy"]
    assert sweep[-1]["offloaded"] == 1 and sweep[-1]["accuracy"] == base["cloud_only"]["accuracy"]
    assert all(a["offloaded"] <= b["offloaded"] for a, b in zip(sweep, sweep[1:]))
    # every offload pays at least the 10 ms round trip
    assert sweep[-1]["mean_ms"] - sweep[0]["mean_ms"] >= 10.0 and base["cloud_only"]["mean_ms"] >= 10.0
    chosen, ran = doc["chosen"], doc["chosen_run"]
    assert chosen["threshold"] is not None and chosen["accuracy"] == max(r["accuracy"] for r in sweep)
    # the real run decides on the same confidences: the same images offloaded, the same answers
    assert ran["offloaded"] == chosen["offloaded"] and ran["accuracy"] == chosen["accuracy"]
    assert doc["predicted"]["edge_only_ms"] > 0 and "predicted_mean_ms" in sweep[0]


def test_a_target_relative_to_the_cloud():
    from nas.split.cascade import resolve_target

    base = {"cloud_only": {"accuracy": 97.0}}
    assert resolve_target("cloud-0.5", base) == 96.5 and resolve_target("95", base) == 95.0
    assert resolve_target(None, base) is None
    with pytest.raises(EdgenasError, match="cloud-D"):
        resolve_target("cloud-x", base)
