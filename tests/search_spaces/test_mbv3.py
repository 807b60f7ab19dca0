"""The mbv3 space and supernet: extraction, write-back, channel sorting, arch scoping."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from search_spaces import MBV3Arch, get_space
from search_spaces.mbv3.elastic import ElasticBatchNorm2d, ElasticDepthwise, ElasticPointwise


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3", preset="small")


@pytest.fixture()
def supernet(space):
    net = space.build_supernet()
    # non-trivial BN statistics and affine parameters, so mismatched slices would show
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net


def _archs(space, n=6):
    return [space.largest(), space.smallest()] + [space.sample(random.Random(i)) for i in range(n)]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extract_matches_the_supernet(space, supernet, mode):
    for arch in _archs(space):
        x = torch.randn(4, 3, arch.resolution, arch.resolution)
        supernet.train(mode == "train")
        static = supernet.extract(arch).train(mode == "train")
        with torch.no_grad():
            expected = supernet(x, arch)
            got = static(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_extract_holds_only_the_parameters_it_uses(space, supernet):
    for arch in _archs(space):
        static = supernet.extract(arch)
        assert sum(p.numel() for p in static.parameters()) == space.params(arch)
        elastic = (ElasticPointwise, ElasticDepthwise, ElasticBatchNorm2d)
        assert not any(isinstance(m, elastic) for m in static.modules())
        # copies, not views: changing the extracted model leaves the supernet alone
        before = supernet.state_dict()["stages.0.0.dw_conv.weight"].clone()
        with torch.no_grad():
            static.stages[0][0].dw_conv.weight.add_(1.0)
        assert torch.equal(supernet.state_dict()["stages.0.0.dw_conv.weight"], before)


def test_forward_slices_views_of_the_shared_weights(space, supernet):
    """Gradients of a sub-network land exactly in the slices it uses."""
    arch = space.smallest()  # kernel 3 of 7, expand 3 of 6, depth 2 of 4
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    supernet(x, arch).sum().backward()
    block = supernet.stages[1][0]
    grad = block.dw_conv.weight.grad
    mid = block.expand_conv.weight.shape[0] // 2  # expand 3 of 6
    assert grad[:mid, :, 2:5, 2:5].abs().sum() > 0
    assert grad[mid:].abs().sum() == 0  # channels beyond the expand ratio
    assert grad[:, :, :2].abs().sum() == 0 and grad[:, :, 5:].abs().sum() == 0  # outside the centre
    assert supernet.stages[1][3].dw_conv.weight.grad is None  # a block beyond the depth


def test_absorb_writes_back_exactly_the_covered_slices(space, supernet):
    arch = space.sample(random.Random(11))
    original = copy.deepcopy(supernet.state_dict())
    static = supernet.extract(arch)
    with torch.no_grad():
        for p in static.parameters():
            p.add_(torch.randn_like(p))
    supernet.absorb(arch, static, weight=1.0)
    # the sub-network now reads back exactly what was absorbed
    again = supernet.extract(arch)
    for (name, a), b in zip(static.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # elements it does not cover are untouched
    after = supernet.state_dict()
    big = "stages.1.0.dw_conv.weight"
    mid = space.config.stage_widths[0] * arch.expands[arch.depths[0]]
    assert torch.equal(after[big][mid:], original[big][mid:])
    unused = f"stages.4.{arch.depths[4]}.project_conv.weight" if arch.depths[4] < 4 else None
    if unused:
        assert torch.equal(after[unused], original[unused])


def test_absorb_blends_and_averages(space, supernet):
    arch = space.largest()
    name = "stages.2.1.project_conv.weight"
    old = supernet.state_dict()[name].clone()
    a, b = supernet.extract(arch), supernet.extract(arch)
    with torch.no_grad():
        a.stages[2][1].project_conv.weight.fill_(1.0)
        b.stages[2][1].project_conv.weight.fill_(3.0)
    supernet.absorb(arch, a, weight=0.25)
    torch.testing.assert_close(supernet.state_dict()[name], 0.75 * old + 0.25)
    supernet.absorb_many([(arch, a, 1.0), (arch, b, 3.0)])
    torch.testing.assert_close(supernet.state_dict()[name], torch.full_like(old, 2.5))


def test_absorb_rejects_a_module_of_another_arch_or_with_nans(space, supernet):
    small, large = space.smallest(), space.largest()
    before = copy.deepcopy(supernet.state_dict())
    with pytest.raises(ValueError, match="does not match arch"):
        supernet.absorb(large, supernet.extract(small))
    broken = supernet.extract(small)
    with torch.no_grad():
        broken.stages[0][0].dw_conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        supernet.absorb(small, broken)
    with pytest.raises(ValueError, match="weight"):
        supernet.absorb(small, supernet.extract(small), weight=1.5)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_sort_channels_keeps_the_largest_network_and_orders_by_importance(space, supernet):
    arch = space.largest()
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    supernet.eval()
    with torch.no_grad():
        before = supernet(x, arch)
        supernet.sort_channels()
        after = supernet(x, arch)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    block = supernet.stages[3][0]
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_activate_scopes_the_arch_and_restores_it(space, supernet):
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="no sub-network chosen"):
        supernet(x)
    arch = space.largest()
    supernet.eval()
    with supernet.activate(arch):
        torch.testing.assert_close(supernet(x), supernet(x, arch))
    with pytest.raises(ZeroDivisionError), supernet.activate(arch):
        raise ZeroDivisionError
    with pytest.raises(RuntimeError):
        supernet(x)


def test_arch_validation_names_the_problem(space):
    good = space.arch_to_json(space.largest())
    for bad, message in [
        ({**good, "kernels": [4] * len(good["kernels"])}, "kernels"),
        ({**good, "resolution": 31}, "resolution"),
        ({**good, "depths": [4, 4]}, "kernels and expands|depths"),
        ({**good, "width": 1}, "unknown"),
        ({k: v for k, v in good.items() if k != "expands"}, "missing"),
    ]:
        with pytest.raises(ValueError, match=message):
            space.arch_from_json(bad)
    with pytest.raises(ValueError, match="JSON"):
        space.arch_from_json("{not json")


def test_ofa_default_matches_the_published_space():
    space = get_space("mbv3")
    largest = space.largest()
    assert largest == MBV3Arch((4,) * 5, (7,) * 20, (6,) * 20, 224)
    # OFA's largest MobileNetV3 (d=4, k=7, e=6, w=1.0) has 7.7 M parameters
    assert 7.6e6 < space.params(largest) < 7.8e6
    assert len(space.encode(largest)) == 5 * 4 * 6 + 4


def test_registry_lists_spaces_and_rejects_unknown_ones():
    from search_spaces import list_spaces, register_space

    assert "mbv3" in list_spaces()
    with pytest.raises(KeyError, match="known spaces"):
        get_space("no-such-space")
    with pytest.raises(ValueError, match="preset"):
        get_space("mbv3", preset="huge")
    with pytest.raises(ValueError, match="unknown mbv3 setting"):
        get_space("mbv3", colour="red")
    with pytest.warns(UserWarning, match="registered twice"):
        register_space("mbv3")(lambda **kw: None)
    from search_spaces.mbv3.space import MobileNetV3Space

    with pytest.warns(UserWarning):
        register_space("mbv3")(MobileNetV3Space)


def test_arch_from_params_is_the_arch_suggest_gives(space) -> None:
    """The samplers' fast path must name the same arch as ``suggest`` on a trial with those
    parameters, whatever the settings of blocks beyond a stage's depth."""
    from nas.search.params import ParamRecorder

    rng = random.Random(3)
    seen = set()
    for _ in range(200):
        recorder = ParamRecorder(rng=rng)
        arch = space.suggest(recorder)
        assert space.arch_from_params(recorder.params) == arch
        seen.add(arch.depths)
    assert len(seen) > 10  # many depth patterns, so inactive slots were exercised
    params = dict(recorder.params)
    del params["resolution"]
    with pytest.raises(KeyError):
        space.arch_from_params(params)
