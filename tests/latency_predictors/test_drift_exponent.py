"""Choosing the drift exponent: on measurements whose items follow the reference's
slow-downs with a known sensitivity, the profile's own consistency figures recover it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from latency_predictors.cost_metrics import default_metric
from latency_predictors.device_profile import DeviceProfile, fit_cost_model, measurements_for
from latency_predictors.drift_exponent import choose_exponent, exponent_scores
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.profile_builder import unique_archs
from latency_predictors.reference import Reference

BASELINE = 2.0
SLOW = 1.7  # the reference reads 1.7x its baseline while the machine is in its slow state


def true_block_ms(block) -> float:
    """A deterministic, block-dependent cost (what the machine would read when fast)."""
    return 0.05 + 1e-6 * block.flops


def paired(rng: random.Random, cost_ms: float, sensitivity: float, repeats: int = 9):
    """Readings of one measurement: the machine stays in one state (fast or slow) for the
    whole measurement, as on the project's VM; the item slows by ``SLOW ** sensitivity``
    while the reference slows by ``SLOW``; 1 % reading noise on both."""
    state = SLOW if rng.random() < 0.5 else 1.0
    xs = tuple(cost_ms * state**sensitivity * (1 + 0.01 * rng.gauss(0, 1)) for _ in range(repeats))
    rs = tuple(BASELINE * state * (1 + 0.01 * rng.gauss(0, 1)) for _ in range(repeats))
    return xs, rs


def fill(space, store: MeasurementStore, sensitivity: float, seed: int = 0) -> DeviceProfile:
    rng = random.Random(seed)
    metric = default_metric(space)
    reference = Reference(space.arch_key(space.smallest()), BASELINE, 3)
    profile = DeviceProfile(name="dev", space=space.describe(), target={"kind": "llvm", "num-cores": 1},
                            reached={"kind": "local"}, backend="tvm", reference=reference.to_json())

    def add(role: str, item: str, cost: float) -> None:
        xs, rs = paired(rng, cost, sensitivity)
        store.add(Measurement(device="dev", space=space.name, role=role, item=item, backend="tvm",
                              schedule="untuned", target=profile.target, tvm_version="x", input_shape=(1,),
                              number=1, repeat=len(xs), median_ms=float(np.median(xs)), spread_ms=0.0,
                              results_ms=xs, reference_ms=rs))

    archs = unique_archs(space, random.Random(seed), 14)
    blocks = {b.key(): b for a in archs for b in metric.blocks(space, a)}
    for key, block in blocks.items():
        add("block", key, true_block_ms(block))
    for arch in archs[:10]:
        add("train", space.arch_key(arch), sum(true_block_ms(b) for b in metric.blocks(space, arch)))
    probe = archs[10]
    for i in range(6):
        add("noise", f"{space.arch_key(probe)}#{i}", sum(true_block_ms(b) for b in metric.blocks(space, probe)))
    profile.counts = {"block": len(blocks)}
    profile.predictor = "block_sum"
    return profile


@pytest.mark.slow  # nine predictor fits, ~4 s each case
@pytest.mark.parametrize("sensitivity", [0.5, 1.0])
def test_choose_exponent_recovers_how_strongly_items_follow_the_reference(tiny_space, tmp_path, sensitivity):
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    profile = fill(tiny_space, store, sensitivity)
    exponent, why = choose_exponent(profile, store, tiny_space)
    assert exponent == pytest.approx(sensitivity, abs=0.1)
    tried = {row["exponent"]: row for row in why["tried"]}
    assert set(tried) >= {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    assert tried[exponent]["score"] == min(row["score"] for row in why["tried"])
    # the noise probe is consistent over time only at the right exponent
    assert tried[exponent]["probe_cv_pct"] < 3 and tried[0.0]["probe_cv_pct"] > 10


def test_measurements_are_read_in_the_profiles_terms(tiny_space, tmp_path):
    """The exponent applies when measurements are read: the fitted predictor prices the
    fast-state cost only when the profile carries the right exponent."""
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    profile = fill(tiny_space, store, 0.5)
    profile.predictor_params = {"candidates": ("ridge",), "cv": 1}  # one plain fit: this is about the readings
    rows = {m.item: m for m in store.query("dev", role="train")}
    ref = Reference.from_json(profile.reference)
    for exponent in (1.0, 0.5):
        profile.reference = Reference(ref.item, ref.baseline_ms, 3, exponent).to_json()
        restated = {m.item: m for m in measurements_for(profile, store, "train")}
        for key, m in rows.items():
            expected = np.median(np.asarray(m.results_ms) * (BASELINE / np.asarray(m.reference_ms)) ** exponent)
            assert restated[key].median_ms == pytest.approx(expected)
    metric = default_metric(tiny_space)
    archs = [tiny_space.arch_from_json(k) for k in rows]
    truth = np.asarray([sum(true_block_ms(b) for b in metric.blocks(tiny_space, a)) for a in archs])
    errors = {}
    for exponent in (1.0, 0.5):
        profile.reference = Reference(ref.item, ref.baseline_ms, 3, exponent).to_json()
        pred = fit_cost_model(profile, store, space=tiny_space).predict(archs)[metric.name]
        errors[exponent] = float(np.max(np.abs(pred - truth) / truth))
    assert errors[0.5] < 0.05 < errors[1.0]


def test_without_networks_or_probe_the_full_correction_stays(tiny_space, tmp_path):
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    profile = DeviceProfile(name="dev", space=tiny_space.describe(), target={"kind": "llvm", "num-cores": 1},
                            reached={"kind": "local"}, backend="tvm",
                            reference=Reference(tiny_space.arch_key(tiny_space.smallest()), 1.0, 3).to_json())
    exponent, why = choose_exponent(profile, store, tiny_space)
    assert exponent == 1.0 and "too few" in why["rule"]
    assert "score" not in exponent_scores(profile, store, tiny_space, 0.5)
