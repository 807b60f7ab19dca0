"""The contract every registered search space must satisfy (like sklearn's check_estimator)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from search_spaces import get_space, list_spaces

SPACES = {
    "mbv3-small": lambda: get_space("mbv3", preset="small"),
    "mbv3-ofa": lambda: get_space("mbv3", preset="ofa", resolutions=(128, 160)),
    "gpt-tiny": lambda: get_space("gpt", preset="tiny"),
}
if "nb201" in list_spaces():
    SPACES["nb201"] = lambda: get_space("nb201")


@pytest.fixture(params=sorted(SPACES), scope="module")
def space(request):
    return SPACES[request.param]()


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
