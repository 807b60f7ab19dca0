"""Profiling the gpt space: two latency metrics (decode, prefill), token-id inputs, per-metric predictors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lp_helpers import CPU_TARGET, FAST

from latency_predictors.cost_metrics import latency_metrics, metric_named, timing_input
from latency_predictors.device_profile import DeviceProfile, fit_cost_model
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.errors import InputError
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
from search_spaces import get_space

SMALL = {"contexts": (16, 32), "embeds": (32, 64), "depths": (1, 2), "heads": (1, 2), "mlp_ratios": (2, 4)}
PLAN = ProfilePlan(noise_repeats=2, holdout=3, train=4, pool_archs=10, seed_blocks=8, round_size=8, max_blocks=16,
                   reference_readings=2, network_share=0.001)


@pytest.fixture(scope="module")
def gpt_space():
    return get_space("gpt", preset="tiny", **SMALL)


def test_metrics_of_a_language_model_and_of_an_image_space(gpt_space, tiny_space):
    decode, prefill = latency_metrics(gpt_space)
    assert (decode.name, decode.phase, decode.default) == ("decode_ms", "decode", False)
    assert (prefill.name, prefill.phase, prefill.default) == ("prefill_ms", "prefill", True)
    assert decode.role("holdout") == "decode:holdout" and prefill.role("holdout") == "holdout"
    (only,) = latency_metrics(tiny_space)
    assert (only.name, only.phase, only.role("train")) == ("latency_ms", None, "train")
    with pytest.raises(InputError, match="has no latency metric 'decode_ms'; it has latency_ms"):
        metric_named(tiny_space, "decode_ms")
    # float inputs travel as shapes (timed as before), token ids as the tensor itself
    arch = gpt_space.smallest()
    ids = decode.timing_input(gpt_space, arch)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int64 and tuple(ids.shape) == (1, 1)
    assert tuple(prefill.timing_input(gpt_space, arch).shape) == (1, arch.context)
    assert timing_input(torch.randn(1, 3, 8, 8)) == (3, 8, 8)
    assert only.timing_input(tiny_space, tiny_space.smallest()) == tiny_space.input_shape(tiny_space.smallest())


def test_decode_roles_are_stored_and_unknown_roles_refused():
    row = dict(device="d", space="gpt", item="{}", backend="eager", schedule="untuned", target={},
               tvm_version="n/a", input_shape=(1,), number=1, repeat=1, median_ms=1.0, spread_ms=0.0)
    assert Measurement(role="decode:holdout", **row).role == "decode:holdout"
    for bad in ("decode:noise", "holdout:decode", ":train"):
        with pytest.raises(InputError, match="measurement role"):
            Measurement(role=bad, **row)


@pytest.mark.slow  # times 16 blocks and 14 networks eagerly, ~30 s on a loaded core
def test_eager_gpt_profile_predicts_both_metrics(gpt_space, tmp_path):
    profiler = EagerProfiler(threads=1, timing=FAST)
    profile = DeviceProfile(name="dev", space=gpt_space.describe(), target=profiler.describe()["target"],
                            reached={"kind": "local"}, backend="eager")
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    built = ProfileBuilder(profile, gpt_space, profiler, store, tmp_path / "profiles", plan=PLAN, progress=False,
                           log=lambda _: None).run()
    counts = built.counts
    assert counts["holdout"] == counts["decode:holdout"] == 3 and counts["train"] == counts["decode:train"] == 4
    assert counts["block"] > 0 and counts["noise"] == 2
    # blocks of both phases were timed (the embedding on int64 token ids)
    blocks = [json.loads(m.item) for m in store.query("dev", role="block")]
    phases = {dict(map(tuple, b["extra"]))["phase"] for b in blocks}
    assert phases == {"decode", "prefill"} and any(b["kind"] == "embedding" for b in blocks)
    # validation per metric; the primary (decode) is the profile's own figure
    assert set(built.metric_validation) == {"decode_ms", "prefill_ms"}
    assert built.validation == built.metric_validation["decode_ms"]
    assert built.metric_validation["prefill_ms"]["block_sum"]["n"] == 3
    assert "decode phase" in built.metric_validation["decode_ms"]["block_sum"]["how"]
    # reloads, refits, and predicts both metrics (eagerly, at this size, decode costs about
    # what prefill does: dispatch overhead, so no order between them is asserted)
    again = DeviceProfile.load(tmp_path / "profiles" / "dev.json")
    assert again.metric_validation == built.metric_validation
    model = fit_cost_model(again, store, space=gpt_space)
    assert model.primary == "decode_ms" and set(model.latencies) == {"decode_ms", "prefill_ms"}
    archs = [gpt_space.largest(), gpt_space.smallest()]
    out = model.predict(archs)
    assert set(out) == {"decode_ms", "prefill_ms"}
    assert all(np.all(np.isfinite(v) & (v > 0)) for v in out.values())
    # split inference prices the prefill network (what space.blocks(arch) describes)
    before, after = model.split_latency_ms(archs[0], [0, len(gpt_space.blocks(archs[0]))])
    assert after[0] == pytest.approx(out["prefill_ms"][0]) and before[1] == pytest.approx(out["prefill_ms"][0])


def test_one_metric_profiles_read_and_write_as_before(tiny_space, tmp_path):
    profile = DeviceProfile(name="old", space=tiny_space.describe(), target=CPU_TARGET, reached={"kind": "local"})
    data = profile.to_json()
    assert "metric_validation" not in data  # the file of an image-space profile is unchanged
    assert DeviceProfile.from_json(data).metric_validation == {}


@pytest.mark.slow  # compiles a decode network and two blocks with TVM, ~15 s
def test_tvm_times_token_ids_and_a_kv_cache(gpt_space):
    from latency_predictors.tvm_profiler import TVMProfiler, to_relax_many

    profiler = TVMProfiler(CPU_TARGET, timing=FAST)
    decode = metric_named(gpt_space, "decode_ms")
    arch = gpt_space.largest()
    timing = profiler.measure(decode.build(gpt_space, arch), decode.timing_input(gpt_space, arch))
    assert timing.median_ms > 0
    # blocks side by side: int64 ids into the embedding, float hidden states into attention
    embedding, attention = decode.blocks(gpt_space, arch)[:2]
    from latency_predictors.cost_metrics import block_timing_input

    mods = to_relax_many([gpt_space.build_block(b) for b in (embedding, attention)],
                         [block_timing_input(gpt_space, b) for b in (embedding, attention)])
    assert "int64" in str(mods[0]["main"].params[0].ty)
    assert "float32" in str(mods[1]["main"].params[0].ty)
