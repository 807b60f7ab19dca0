"""The contract every registered search space must satisfy (like sklearn's check_estimator)."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces import SearchSpace, get_space, list_spaces

# Constructor arguments of a test-sized instance, per registered space; a space not listed
# is built with no arguments. A space with several entries is checked in each variant.
# Adding a space is registering it (and, if its default is too big for a test, one entry).
TEST_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "mbv3": {"small": {"preset": "small"}, "ofa": {"preset": "ofa", "resolutions": (128, 160)}},
    "nebula": {"tiny": {"preset": "tiny"}},
    "gpt": {"tiny": {"preset": "tiny"}},
}


def _variants() -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, variant, kwargs) for name in list_spaces()
            for variant, kwargs in TEST_SIZES.get(name, {"default": {}}).items()]


def test_every_table_entry_names_a_registered_space():
    assert set(TEST_SIZES) <= set(list_spaces()), "TEST_SIZES names a space that is not registered"


@pytest.fixture(params=_variants(), ids=lambda v: f"{v[0]}-{v[1]}", scope="module")
def space(request) -> SearchSpace:
    """The space built from its table entry; a space that cannot be built fails (not skips)."""
    name, _variant, kwargs = request.param
    try:
        built = get_space(name, **kwargs)
    except Exception as exc:  # the contract: every registered space builds from its entry
        pytest.fail(f"registered space {name!r} cannot be built with {kwargs}: {exc!r}")
    assert isinstance(built, SearchSpace) and built.name == name
    return built


def test_sample_is_reproducible_and_valid(space):
    a = [space.sample(random.Random(7)) for _ in range(2)]
    assert a[0] == a[1] and hash(a[0]) == hash(a[1])
    many = {space.sample(random.Random(i)) for i in range(30)}
    assert len(many) > 20, "uniform sampling should rarely repeat"
    for arch in many:
        space.validate(arch)


def test_json_round_trip(space):
    for i in range(10):
        arch = space.sample(random.Random(i))
        text = json.dumps(space.arch_to_json(arch))
        back = space.arch_from_json(text)
        assert back == arch and hash(back) == hash(arch)
        assert space.arch_key(back) == space.arch_key(arch)


def test_smallest_and_largest_bound_the_costs(space):
    lo, hi = space.smallest(), space.largest()
    for i in range(20):
        arch = space.sample(random.Random(i))
        assert space.flops(lo) <= space.flops(arch) <= space.flops(hi)
        assert space.params(lo) <= space.params(hi)


def test_encoding_has_fixed_length(space):
    names = space.feature_names()
    vectors = [space.encode(space.sample(random.Random(i))) for i in range(10)]
    assert all(v.shape == (len(names),) and v.dtype == np.float32 for v in vectors)
    assert len({v.tobytes() for v in vectors}) == len({space.sample(random.Random(i)) for i in range(10)})


def test_suggest_from_a_real_optuna_trial(space):
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    archs = []
    for _ in range(5):
        trial = study.ask()
        arch = space.suggest(trial)
        space.validate(arch)
        archs.append(arch)
        study.tell(trial, 0.0)
    assert len(set(archs)) > 1
    # the parameter space is the same in every trial (NSGA-II and TPE rely on it)
    assert len({tuple(sorted(t.params)) for t in study.trials}) == 1


def sdpa_flops(inputs, outputs):
    """fvcore handle for ``aten::scaled_dot_product_attention`` (which fvcore skips):
    the multiply-accumulates of ``Q K^T`` and ``A V``, dense (a causal mask is not discounted)."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, queries, size = q
    return int(np.prod(batch)) * queries * k[-2] * (size + v[-1])


def test_flops_and_params_match_fvcore_on_the_built_network(space):
    from fvcore.nn import FlopCountAnalysis

    for i in range(3):
        arch = space.sample(random.Random(i))
        model = space.build_static(arch).eval()
        x = space.example_input(arch)
        counter = FlopCountAnalysis(model, x)
        uncounted = ("batch_norm", "layer_norm", "adaptive_avg_pool2d", "avg_pool2d", "mean")
        for op in uncounted:  # count MACs of conv/linear (and attention) only
            counter.set_op_handle(f"aten::{op}", lambda inputs, outputs: 0)
        counter.set_op_handle("aten::scaled_dot_product_attention", sdpa_flops)
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        assert space.flops(arch) == counter.total()
        assert space.params(arch) == sum(p.numel() for p in model.parameters())


def test_blocks_build_and_produce_their_output_shape(space):
    arch = space.sample(random.Random(3))
    blocks = space.blocks(arch)
    assert blocks and sum(b.flops for b in blocks) == space.flops(arch)
    for block in blocks:
        module = space.build_block(block).eval()
        with torch.no_grad():
            out = module(space.example_input(block))
        if out.dim() == 4:
            assert tuple(out.shape[1:]) == block.out_shape, block
        else:
            assert out.shape[-1] == block.out_channels
        assert sum(p.numel() for p in module.parameters()) == block.params, block


def test_block_keys_identify_equal_blocks(space):
    arch = space.largest()
    blocks = space.blocks(arch)
    keys = {b.key() for b in blocks}
    assert len(keys) < len(blocks) or len(blocks) < 5  # repeated blocks share a key
    assert all(type(b).from_json(json.loads(b.key())) == b for b in blocks)


def test_enumerate_lists_every_arch_once_or_refuses(space):
    """Optional hook: a space too large to list says so with TypeError (its own interface)."""
    try:
        archs = space.enumerate()
    except TypeError as exc:
        assert space.name in str(exc)
        return
    listed = set(archs)
    assert len(listed) == len(archs)
    assert all(space.sample(random.Random(i)) in listed for i in range(20))
    for arch in archs[:: max(1, len(archs) // 50)]:
        space.validate(arch)


def test_supernet_holds_the_largest_arch_or_refuses(space):
    """Optional hook: a space without a supernet (tabular) says so with TypeError."""
    try:
        supernet = space.build_supernet()
    except TypeError as exc:
        assert space.name in str(exc)
        return
    assert isinstance(supernet, torch.nn.Module)
    static = space.build_static(space.largest())
    assert sum(p.numel() for p in supernet.parameters()) >= sum(p.numel() for p in static.parameters())


def test_cuts_run_from_input_to_output_and_segments_compose(space):
    """Split inference: the first cut sends the input, the last nothing; cut indices never
    go back; where the space can be split to run, its segments compose to the network and
    each inner cut's tensor has the size the cut declares."""
    arch = space.sample(random.Random(5))
    cuts, blocks = space.cuts(arch), space.blocks(arch)
    assert cuts[0].index == 0 and cuts[0].elements == int(np.prod(space.input_shape(arch)))
    assert cuts[-1].index == len(blocks) and cuts[-1].shapes == ()
    assert all(a.index <= b.index for a, b in zip(cuts, cuts[1:]))
    assert all(c.elements > 0 for c in cuts[:-1]) and len({c.label for c in cuts}) == len(cuts)
    model = space.build_static(arch).eval()
    try:
        segments = space.split_modules(model, arch)
    except TypeError as exc:  # optional hook: a space that plans splits only says so
        assert space.name in str(exc)
        return
    assert len(segments) == len(cuts) - 1
    x = space.example_input(arch)
    with torch.no_grad():
        expected, y = model(x), x
        for segment, cut in zip(segments, cuts[1:]):
            y = segment(y)
            if cut.shapes:
                assert y[0].numel() == cut.elements, cut
    assert torch.allclose(y, expected, atol=1e-5)
