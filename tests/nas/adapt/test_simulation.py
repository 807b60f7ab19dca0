"""The simulator's guarantees: bad updates never touch the cloud; the CLI runs and resumes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from nas.adapt.config import SimulationConfig
from nas.adapt.simulator import Simulation, shutdown_ray
from nas.adapt.wire import Update, UpdateRejected, validate
from nas.cli import main
from nas.config import load_config
from tests.nas.adapt.conftest import tiny_config


def _round_leaves_cloud(tmp_path, data, faults, method="fedavg"):
    cfg = load_config(SimulationConfig, tiny_config(tmp_path, faults=faults, methods=[method]))
    sim = Simulation(cfg, progress=False, data=data)
    from nas.adapt.methods import METHOD_TYPES

    meta = sim._restore(method, 0)
    before = {k: v.clone() for k, v in sim.cloud.state_dict().items()}
    record = sim.round(METHOD_TYPES[method](), 0, meta)
    after = sim.cloud.state_dict()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    return record, unchanged


@pytest.mark.parametrize("faults, reason", [
    ({"corrupt_prob": 1.0}, "sha256 mismatch"),
    ({"nan_prob": 1.0}, "non-finite"),
    ({"stale_prob": 1.0}, "cloud version"),
])
def test_bad_updates_are_rejected_and_the_cloud_is_untouched(tmp_path, small_mnist1d, faults, reason):
    record, unchanged = _round_leaves_cloud(tmp_path, small_mnist1d, faults)
    assert record["accepted"] == 0 and record["rejected"]
    assert all(reason in r for r in record["rejected"])
    assert unchanged


def test_good_updates_change_the_cloud(tmp_path, small_mnist1d):
    record, unchanged = _round_leaves_cloud(tmp_path, small_mnist1d, {}, method="nebula")
    assert record["accepted"] == len(record["sampled"]) and not unchanged
    assert record["bytes_up"] > 0 and record["bytes_down"] > 0


def test_failures_and_stragglers(tmp_path, small_mnist1d):
    cfg = load_config(SimulationConfig, tiny_config(tmp_path, devices={"fail_prob": 0.3, "straggler_prob": 0.5},
                                               methods=["heterofl"], rounds=3))
    sim = Simulation(cfg, progress=False, data=small_mnist1d)
    rounds = sim.run_method("heterofl")
    failed = sum(len(r["failed"]) for r in rounds)
    late = [d for r in rounds[:-1] for d in r["stragglers"]]
    assert failed and late
    stale = [m for r in rounds[1:] for m in r["rejected"] if "cloud version" in m]
    assert len(stale) == len(late)  # every late update is refused in the next round
    assert all(r["devices_reporting"] + len(r["failed"]) + len(r["budget_errors"]) == len(r["sampled"]) for r in rounds)


def test_validate_rejects_wrong_tensors():
    good = Update.build(1, "v1", {"w": torch.ones(2)}, samples=5)
    assert validate(good, "v1", {"w": torch.Size([2])})["w"].sum() == 2
    with pytest.raises(UpdateRejected, match="not sent"):
        validate(good, "v1", {"x": torch.Size([2])})
    with pytest.raises(UpdateRejected, match="shape"):
        validate(good, "v1", {"w": torch.Size([3])})
    import dataclasses

    truncated = dataclasses.replace(good, payload=good.payload[:-3])
    with pytest.raises(UpdateRejected, match="sha256"):
        validate(truncated, "v1", {"w": torch.Size([2])})
    forged = dataclasses.replace(truncated, checksum=__import__("hashlib").sha256(truncated.payload).hexdigest())
    with pytest.raises(UpdateRejected, match="safetensors"):
        validate(forged, "v1", {"w": torch.Size([2])})


@pytest.mark.slow  # five methods end to end, ~6-12 s
def test_cli_end_to_end_resume_and_budget_errors(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mnist1d")
    out = tmp_path / "run"
    cfg = tiny_config(out, devices={"fail_prob": 0.1, "straggler_prob": 0.1},
                      faults={"corrupt_prob": 0.1, "nan_prob": 0.1})
    path = tmp_path / "adapt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["adapt", str(path), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"nebula", "no_adaptation", "local_only", "fedavg", "heterofl"}
    for _name, data in results["methods"].items():
        assert len(data["rounds"]) == 2
        assert all(0 <= r["accuracy"] <= 100 for r in data["rounds"])
    s = results["summary"]
    assert s["fedavg"]["bytes_per_device_round"] > s["nebula"]["bytes_per_device_round"] > 0
    assert s["no_adaptation"]["bytes_up"] == 0
    assert "nebula" in capsys.readouterr().out
    rounds_run = _count_rounds(monkeypatch)
    assert main(["adapt", str(path), "--quiet"]) == 0  # resumes: nothing left to run
    assert rounds_run == []
    again = json.loads((out / "results.json").read_text())
    assert again["methods"] == results["methods"]
    # budgets below any sub-model: every device logged, the run still completes
    tight = tiny_config(tmp_path / "tight", devices={"budget_low": 0.001, "budget_high": 0.002},
                        methods=["nebula"], rounds=1)
    path.write_text(yaml.safe_dump(tight))
    assert main(["adapt", str(path), "--quiet"]) == 0
    rec = json.loads((tmp_path / "tight" / "results.json").read_text())["methods"]["nebula"]["rounds"][0]
    assert rec["budget_errors"] and "smallest sub-model" in rec["budget_errors"][0]


_ROUND = Simulation.round  # the real method, whatever a test patched


def _count_rounds(monkeypatch, interrupt_at: int | None = None) -> list[int]:
    """Record the rounds the simulator really computes (and stop with Ctrl-C at one)."""
    calls: list[int] = []

    def spy(self, method, r, meta):
        calls.append(r)
        if r == interrupt_at:
            raise KeyboardInterrupt
        return _ROUND(self, method, r, meta)

    monkeypatch.setattr(Simulation, "round", spy)
    return calls


def _figures(rounds):
    """Round records without wall-clock and memory readings (they differ run to run)."""
    return [{k: v for k, v in r.items() if "time" not in k and "memory" not in k} for r in rounds]


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, small_mnist1d, monkeypatch):
    """Ctrl-C in round 2: the next run computes round 2 only, and ends where an
    uninterrupted run ends (same cloud model version, same figures)."""
    def config(name):
        return load_config(SimulationConfig, tiny_config(tmp_path / name, methods=["nebula"], rounds=2))

    whole = Simulation(config("whole"), progress=False, data=small_mnist1d).run_method("nebula")
    rounds_run = _count_rounds(monkeypatch, interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        Simulation(config("cut"), progress=False, data=small_mnist1d).run_method("nebula")
    saved = json.loads((tmp_path / "cut" / "results.json").read_text())["methods"]["nebula"]["rounds"]
    assert rounds_run == [0, 1] and len(saved) == 1
    rounds_run = _count_rounds(monkeypatch)
    resumed = Simulation(config("cut"), progress=False, data=small_mnist1d).run_method("nebula")
    assert rounds_run == [1]  # round 1 was read back, not recomputed
    assert _figures(resumed) == _figures(whole)
    assert resumed[1]["version"] == whole[1]["version"]


def test_cli_rejects_a_bad_config_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("methods: [nebula, fedprox]\n")
    assert main(["adapt", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fedprox" in err


def test_real_round_from_checkpoint_and_device_dirs(tmp_path, small_mnist1d):
    from safetensors.torch import save_file

    from search_spaces import get_space

    space = get_space("nebula", preset="tiny", width=40)
    ckpt = tmp_path / "cloud.safetensors"
    save_file(space.build_supernet().state_dict(), str(ckpt))
    dirs = []
    for i in range(2):
        d = tmp_path / f"dev{i}"
        d.mkdir()
        sl = slice(i * 50, (i + 1) * 50)
        save_file({"x": torch.from_numpy(small_mnist1d.pool_x[sl]), "y": torch.from_numpy(small_mnist1d.pool_y[sl])},
                  str(d / "data.safetensors"))
        dirs.append(str(d))
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump({"checkpoint": str(ckpt), "device_dirs": dirs, "preset": "tiny",
                                    "out_dir": str(tmp_path / "out"), "local": {"epochs": 1}}))
    assert main(["adapt", str(path), "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "round.json").read_text())
    assert len(record["devices"]) == 2 and record["version_before"] != record["version_after"]


@pytest.mark.slow
def test_ray_runs_devices_in_parallel_with_the_same_results(tmp_path, small_mnist1d):
    pytest.importorskip("ray")
    seq = load_config(SimulationConfig, tiny_config(tmp_path / "seq", methods=["nebula"], rounds=1))
    par = load_config(SimulationConfig, tiny_config(tmp_path / "ray", methods=["nebula"], rounds=1,
                                               parallel="ray", workers=2))
    a = Simulation(seq, progress=False, data=small_mnist1d).run_method("nebula")[0]
    try:
        b = Simulation(par, progress=False, data=small_mnist1d).run_method("nebula")[0]
    finally:
        shutdown_ray()  # run_method leaves Ray up for the next round; simulate() stops it
    assert a["version"] == b["version"]  # same aggregated cloud model, bit for bit
    assert a["accuracy"] == b["accuracy"] and a["bytes_up"] == b["bytes_up"]
