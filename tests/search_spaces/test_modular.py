"""The nebula modular space: the search-space contract, shapes, sub-models, gates."""

from __future__ import annotations

import json
import random

import pytest
import torch

from search_spaces import get_space
from search_spaces.modular import ModularArch, top_k_gates


@pytest.fixture(params=["mnist1d", "digits", "tiny"], scope="module")
def space(request):
    return get_space("nebula", preset=request.param)


def test_sample_json_round_trip_and_validation(space):
    archs = {space.sample(random.Random(i)) for i in range(30)}
    assert len(archs) > 20
    for arch in archs:
        space.validate(arch)
        back = space.arch_from_json(json.dumps(space.arch_to_json(arch)))
        assert back == arch and hash(back) == hash(arch)
    with pytest.raises(ValueError, match="no module"):
        ModularArch(((0,), ()))
    with pytest.raises(ValueError, match="layers"):
        space.validate(ModularArch(((0,),)))
    too_big = ModularArch(((space.config.skip + 1,),) * space.config.layers)
    with pytest.raises(ValueError, match="skip module"):
        space.validate(too_big)


def test_costs_match_fvcore_and_parameter_counts(space):
    from fvcore.nn import FlopCountAnalysis

    for arch in (space.smallest(), space.largest(), space.sample(random.Random(1))):
        model = space.build_static(arch).eval()
        model.run_unrouted = True  # the space counts every held module, routed or not
        counter = FlopCountAnalysis(model, torch.randn(1, *space.input_shape(arch)))
        for op in ("aten::batch_norm", "aten::adaptive_avg_pool2d"):
            counter.set_op_handle(op, lambda inputs, outputs: 0)
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        assert space.flops(arch) == counter.total(), arch
        assert space.params(arch) == sum(p.numel() for p in model.parameters()), arch
    assert space.flops(space.smallest()) < space.flops(space.largest())


def test_blocks_build_with_their_shapes(space):
    for block in space.blocks(space.largest()):
        module = space.build_block(block).eval()
        out = module(torch.randn(2, *block.in_shape))
        assert out.shape[1] == block.out_channels
        assert sum(p.numel() for p in module.parameters()) == block.params


def test_extract_copies_weights_under_the_same_names(space):
    cloud = space.build_supernet()
    arch = space.sample(random.Random(3))
    sub = cloud.extract(arch)
    full = cloud.state_dict()
    for name, tensor in sub.state_dict().items():
        assert torch.equal(full[name], tensor)
    held = {(i, k) for i, k, _ in sub.module_items()}
    assert held == {(i, k) for i, k in arch.modules() if k != space.config.skip}
    x = torch.randn(5, *space.input_shape())
    assert sub.eval()(x).shape == (5, space.config.num_classes)


def test_gates_use_only_held_modules_and_sum_to_one():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    available = torch.tensor([[True, False, True, True]] * 2)
    g = top_k_gates(logits, available, k=2)
    assert torch.allclose(g.sum(1), torch.ones(2))
    assert (g[:, 1] == 0).all()  # not held, never routed
    assert (g > 0).sum(1).tolist() == [2, 2]
    assert g[0, 0] > g[0, 2] and g[1, 3] > g[1, 2]


def test_skip_only_sub_model_is_stem_selector_head(space):
    sub = space.build_static(space.smallest()).eval()
    assert list(sub.module_items()) == []
    x = torch.randn(3, *space.input_shape())
    assert torch.isfinite(sub(x)).all()
