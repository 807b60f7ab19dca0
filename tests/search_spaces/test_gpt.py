"""The gpt space and supernet: costs, phases, KV cache, extraction, write-back, sorting."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import GPTArch, GPTConfig, get_space, space_from_description
from search_spaces.gpt.elastic import ElasticAttention, ElasticMLP
from search_spaces.gpt.static import CachedAttention, KVCache, LayerCache


@pytest.fixture(scope="module")
def space():
    return get_space("gpt", preset="tiny", contexts=(16, 32))


@pytest.fixture()
def supernet(space):
    torch.manual_seed(0)
    net = space.build_supernet()
    # non-trivial layer norms and biases, so mismatched slices would show
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("norm.weight") else 0.0))
    return net.eval()


def _archs(space, n=6):
    return [space.largest(), space.smallest()] + [space.sample(random.Random(i)) for i in range(n)]


def _tokens(space, arch, batch=2, length=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, space.config.vocab_size, (batch, length or arch.context), generator=g)


def _fvcore_macs(model, x):
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

    def sdpa(inputs, outputs):  # fvcore skips attention: Q K^T and A V, dense
        q, k, v = (get_shape(t) for t in inputs[:3])
        return int(np.prod(q[:-2])) * q[-2] * k[-2] * (q[-1] + v[-1])

    counter = FlopCountAnalysis(model, x)
    counter.set_op_handle("aten::layer_norm", lambda inputs, outputs: 0)
    counter.set_op_handle("aten::scaled_dot_product_attention", sdpa)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return counter.total()


# --- configs and archs ---------------------------------------------------------------
def test_config_round_trips_and_rebuilds_the_space(space):
    cfg = space.config
    assert GPTConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    again = space_from_description(json.loads(json.dumps(space.describe())))
    assert again.config == cfg and again.name == "gpt"
    with pytest.raises(ValueError, match="increasing"):
        GPTConfig(heads=(4, 2))
    with pytest.raises(ValueError, match="preset"):
        get_space("gpt", preset="huge")
    with pytest.raises(ValueError, match="unknown gpt setting"):
        get_space("gpt", colour="red")


def test_presets_have_the_promised_sizes():
    tiny, small = get_space("gpt", preset="tiny"), get_space("gpt", preset="small")
    assert tiny.config.vocab_size == small.config.vocab_size == 256  # bytes
    assert 0.5e6 < tiny.params(tiny.largest()) < 1.5e6
    assert tiny.config.max_heads * tiny.config.head_size == tiny.config.max_embed
    # GPT-2 small (12 layers, width 768, 12 heads of 64) is 85 M parameters without embeddings
    large = small.largest()
    assert (large.depth, large.embed, large.heads[0] * small.config.head_size) == (12, 768, 768)
    assert 85e6 < small.params(large) < 87e6


def test_equal_networks_have_equal_archs_and_bad_ones_are_named(space):
    a = GPTArch(96, (2, 4), (3, 2), 16)
    b = space.arch_from_json(json.dumps({"embed": 96, "heads": [2, 4], "mlp_ratios": [3, 2], "context": 16}))
    assert a == b and hash(a) == hash(b) and str(a) == "e96c16:h2r3,h4r2"
    good = a.to_json()
    for bad, message in [
        ({**good, "heads": [5, 4]}, "heads"),
        ({**good, "mlp_ratios": [3]}, "one entry per layer"),
        ({**good, "heads": [2] * 5, "mlp_ratios": [2] * 5}, "depth"),
        ({**good, "embed": 100}, "embed"),
        ({**good, "context": 64}, "context"),
        ({**good, "width": 1}, "unknown"),
        ({k: v for k, v in good.items() if k != "context"}, "missing"),
    ]:
        with pytest.raises(ValueError, match=message):
            space.arch_from_json(bad)
    with pytest.raises(ValueError, match="JSON"):
        space.arch_from_json("{not json")


def test_sampling_can_be_restricted_to_a_shrinking_phase(space):
    for i in range(20):
        arch = space.sample(random.Random(i), depths=(4,), heads=(4,), embeds=(96, 128))
        assert arch.depth == 4 and set(arch.heads) == {4} and arch.embed in (96, 128)
    assert space.largest(embeds=(64, 96)) == GPTArch(96, (4,) * 4, (4,) * 4, 32)
    assert space.smallest() == GPTArch(64, (2,) * 2, (2,) * 2, 16)
    with pytest.raises(ValueError, match="subset"):
        space.sample(random.Random(0), heads=(8,))


# --- costs -------------------------------------------------------------------------
def test_costs_match_fvcore_in_both_phases(space):
    for arch in _archs(space, 3):
        prefill = space.build_static(arch)
        decode = space.build_static(arch, phase="decode")
        assert space.flops(arch) == _fvcore_macs(prefill, space.example_input(arch))
        assert space.decode_flops(arch) == _fvcore_macs(decode, space.example_input(arch, phase="decode"))
        unique = sum(p.numel() for p in prefill.parameters())  # the tied matrix once
        assert space.params(arch) == unique == sum(p.numel() for p in decode.parameters())
    # attention grows with the square of the context in prefill, linearly in decode
    short, long = GPTArch(64, (2, 2), (2, 2), 16), GPTArch(64, (2, 2), (2, 2), 32)
    assert space.flops(long) > 2 * space.flops(short)
    assert space.decode_flops(short) < space.decode_flops(long) < 2 * space.decode_flops(short)


def test_costs_and_extraction_without_biases():
    space = get_space("gpt", preset="tiny", bias=False, contexts=(16,))
    supernet = space.build_supernet().eval()
    for arch in _archs(space, 2):
        static = supernet.extract(arch)
        assert space.params(arch) == sum(p.numel() for p in static.parameters())
        assert space.flops(arch) == _fvcore_macs(static, space.example_input(arch))
        tokens = _tokens(space, arch)
        with torch.no_grad():
            assert (static(tokens) - supernet(tokens, arch)).abs().max() < 1e-5
    assert not any(name.endswith("bias") for name, _ in supernet.named_parameters())


def test_blocks_of_both_phases_build_and_add_up(space):
    arch = GPTArch(96, (3, 2), (2, 4), 16)
    v = space.config.vocab_size
    for phase, tokens, total in [("prefill", 16, space.flops(arch)), ("decode", 1, space.decode_flops(arch))]:
        blocks = space.blocks(arch, phase=phase)
        assert [b.kind for b in blocks] == ["embedding", "attention", "mlp", "attention", "mlp", "head"]
        assert sum(b.flops for b in blocks) == total
        assert sum(b.params for b in blocks) - v * arch.embed == space.params(arch)  # tied once
        for block in blocks:
            extra = dict(block.extra)
            assert extra["phase"] == phase and block.in_shape[1] == tokens
            module = space.build_block(block)
            x = space.example_input(block, batch=2)
            assert x.dtype == (torch.int64 if block.kind == "embedding" else torch.float32)
            with torch.no_grad():
                out = module(x)
            assert out.shape == (2, tokens, block.out_channels)
            assert sum(p.numel() for p in module.parameters()) == block.params
            if block.kind == "attention":
                assert extra["kv_len"] == 16 and extra["head_size"] == space.config.head_size
                if phase == "decode":  # the cache of the 15 earlier tokens is a buffer
                    assert isinstance(module, CachedAttention)
                    assert module.past_keys.shape == (1, extra["heads"], 15, extra["head_size"])
    assert space.blocks(arch) == space.blocks(arch, phase="prefill")
    with pytest.raises(ValueError, match="phase"):
        space.blocks(arch, phase="train")


def test_decode_blocks_compute_one_step_of_the_model(space):
    """Chaining the decode blocks with a model's weights and its real KV cache gives the
    logits of the model's last token."""
    arch = GPTArch(64, (2, 4), (3, 2), 16)
    model = space.build_static(arch)
    tokens = _tokens(space, arch, batch=1)
    cache = model.new_cache()
    with torch.no_grad():
        model(tokens[:, :-1], cache)
        expected = model(tokens)[:, -1:]
        blocks = [space.build_block(b) for b in space.blocks(arch, phase="decode")]
        blocks[0].load_state_dict(model.embed.state_dict())
        for i, layer in enumerate(model.layers):
            attn, mlp = blocks[1 + 2 * i], blocks[2 + 2 * i]
            attn.block.load_state_dict(layer.attn.state_dict())
            attn.past_keys.copy_(cache.layers[i].keys)
            attn.past_values.copy_(cache.layers[i].values)
            mlp.load_state_dict(layer.mlp.state_dict())
        blocks[-1].load_state_dict(model.head.state_dict())
        x = tokens[:, -1:]
        for block in blocks:
            x = block(x)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)


def test_memory_is_weights_plus_a_real_kv_cache(space):
    arch = GPTArch(96, (3, 2, 4), (2, 2, 2), 32)
    model = space.build_static(arch)
    cache = model.new_cache()
    with torch.no_grad():
        model(_tokens(space, arch, batch=1), cache)
    assert cache.length == arch.context
    assert cache.nbytes() == space.kv_cache_bytes(arch)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert space.memory_bytes(arch) == weights + cache.nbytes()
    half = model.to(torch.bfloat16)
    cache = half.new_cache()
    with torch.no_grad():
        half(_tokens(space, arch, batch=1), cache)
    weights = sum(p.numel() * p.element_size() for p in half.parameters())
    assert space.memory_bytes(arch, bytes_per_value=2) == weights + cache.nbytes()


# --- static model and KV cache -------------------------------------------------------
def test_kv_cache_decoding_matches_the_full_forward(space):
    arch = GPTArch(128, (4, 3), (4, 2), 32)
    model = space.build_static(arch)
    tokens = _tokens(space, arch, length=20)
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache()
        parts = [model(tokens[:, :7], cache), model(tokens[:, 7:12], cache)]  # a chunk after a cache
        parts += [model(tokens[:, i : i + 1], cache) for i in range(12, 20)]  # one token at a time
    assert isinstance(cache, KVCache) and cache.length == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="context"):
        model(_tokens(space, arch, length=arch.context + 1))


def test_the_output_projection_is_tied_to_the_token_embedding(space):
    model = space.build_static(space.smallest())
    assert model.head.proj.weight is model.embed.tokens.weight


def test_dropout_is_configurable_and_off_by_default():
    assert get_space("gpt").config.dropout == 0.0
    space = get_space("gpt", preset="tiny", dropout=0.2, contexts=(16,))
    arch = space.smallest()
    model = space.build_static(arch).train()
    tokens = _tokens(space, arch)
    assert not torch.equal(model(tokens), model(tokens))
    model.eval()
    assert torch.equal(model(tokens), model(tokens))


# --- supernet --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extract_matches_the_supernet(space, supernet, mode):
    for i, arch in enumerate(_archs(space)):
        tokens = _tokens(space, arch, seed=i, length=arch.context - i % 3)  # shorter inputs too
        supernet.train(mode == "train")
        static = supernet.extract(arch)
        assert static.training == (mode == "train")
        with torch.no_grad():
            expected = supernet(tokens, arch)
            got = static(tokens)
        assert (got - expected).abs().max() < 1e-5


def test_extract_holds_copies_of_only_the_parameters_it_uses(space, supernet):
    for arch in _archs(space, 3):
        static = supernet.extract(arch)
        assert sum(p.numel() for p in static.parameters()) == space.params(arch)
        assert not any(isinstance(m, (ElasticAttention, ElasticMLP)) for m in static.modules())
        assert static.head.proj.weight is static.embed.tokens.weight
        before = supernet.layers[0].attn.query.weight.clone()
        with torch.no_grad():
            static.layers[0].attn.query.weight.add_(1.0)
        assert torch.equal(supernet.layers[0].attn.query.weight, before)


def test_forward_slices_views_of_the_shared_weights(space, supernet):
    """Gradients of a sub-network land exactly in the slices it uses."""
    arch = GPTArch(64, (2, 3), (2, 2), 16)
    d = space.config.head_size
    supernet(_tokens(space, arch, length=10), arch).sum().backward()
    attn, mlp = supernet.layers[1].attn, supernet.layers[1].mlp
    q = attn.query.weight.grad
    assert q[: 3 * d, :64].abs().sum() > 0
    assert q[3 * d :].abs().sum() == 0 and q[:, 64:].abs().sum() == 0
    assert attn.proj.weight.grad[:, 3 * d :].abs().sum() == 0
    assert mlp.fc.weight.grad[128:].abs().sum() == 0 and mlp.fc.bias.grad[128:].abs().sum() == 0
    assert attn.norm.weight.grad[64:].abs().sum() == 0 and attn.norm.weight.grad[:64].abs().sum() > 0
    positions = supernet.embed.positions.weight.grad
    assert positions[:10, :64].abs().sum() > 0 and positions[10:].abs().sum() == 0
    assert supernet.layers[2].attn.query.weight.grad is None  # a layer beyond the depth


def test_absorbing_an_extracted_sub_network_changes_nothing(space, supernet):
    before = copy.deepcopy(supernet.state_dict())
    for arch in _archs(space, 2):
        supernet.absorb(arch, supernet.extract(arch), weight=1.0)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_absorb_writes_back_exactly_the_covered_slices(space, supernet):
    arch = GPTArch(96, (3, 2), (2, 3), 16)
    original = copy.deepcopy(supernet.state_dict())
    static = supernet.extract(arch)
    with torch.no_grad():
        for p in static.parameters():
            p.add_(torch.randn_like(p))
    supernet.absorb(arch, static, weight=1.0)
    after, sub = supernet.state_dict(), static.state_dict()
    changed = 0
    for name, big in after.items():
        old = original[name]
        if name not in sub:
            assert torch.equal(big, old), name
            continue
        covered = torch.zeros_like(big, dtype=torch.bool)
        covered[tuple(slice(0, n) for n in sub[name].shape)] = True
        assert torch.equal(big[covered], sub[name].flatten()), name
        assert torch.equal(big[~covered], old[~covered]), name
        changed += 1
    assert changed == len(sub) and "layers.2.attn.query.weight" not in sub
    again = supernet.extract(arch)
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, sub[name]), name


def test_absorb_blends_and_averages(space, supernet):
    arch = space.largest()
    old = supernet.layers[1].mlp.fc.weight.detach().clone()
    a, b = supernet.extract(arch), supernet.extract(arch)
    with torch.no_grad():
        a.layers[1].mlp.fc.weight.fill_(1.0)
        b.layers[1].mlp.fc.weight.fill_(3.0)
    supernet.absorb(arch, a, weight=0.25)
    torch.testing.assert_close(supernet.layers[1].mlp.fc.weight.detach(), 0.75 * old + 0.25)
    supernet.absorb_many([(arch, a, 1.0), (arch, b, 3.0)])
    torch.testing.assert_close(supernet.layers[1].mlp.fc.weight.detach(), torch.full_like(old, 2.5))


def test_absorb_rejects_a_mismatched_untied_or_broken_module(space, supernet):
    small, large = space.smallest(), space.largest()
    before = copy.deepcopy(supernet.state_dict())
    with pytest.raises(ValueError, match="does not match arch"):
        supernet.absorb(large, supernet.extract(small))
    untied = supernet.extract(small)
    untied.head.proj.weight = nn.Parameter(untied.head.proj.weight.detach() + 1.0)
    with pytest.raises(ValueError, match="untied"):
        supernet.absorb(small, untied)
    broken = supernet.extract(small)
    with torch.no_grad():
        broken.layers[0].mlp.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        supernet.absorb(small, broken)
    with pytest.raises(ValueError, match="weight"):
        supernet.absorb(small, supernet.extract(small), weight=1.5)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_sort_channels_keeps_the_largest_network_and_orders_by_importance(space, supernet):
    arch = space.largest()
    tokens = _tokens(space, arch)
    d = space.config.head_size
    query = supernet.layers[0].attn.query.weight.detach().clone()
    with torch.no_grad():
        before = supernet(tokens, arch)
        supernet.sort_channels()
        after = supernet(tokens, arch)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    for layer in supernet.layers:
        heads = layer.attn.proj.weight.abs().view(arch.embed, -1, d).sum(dim=(0, 2))
        neurons = layer.mlp.proj.weight.abs().sum(dim=0)
        assert torch.all(heads[:-1] >= heads[1:]) and torch.all(neurons[:-1] >= neurons[1:])
    # whole heads moved (rows in blocks of head_size), not single rows
    moved = supernet.layers[0].attn.query.weight.detach()
    blocks = {tuple(moved[i * d : (i + 1) * d].flatten().tolist()) for i in range(4)}
    assert blocks == {tuple(query[i * d : (i + 1) * d].flatten().tolist()) for i in range(4)}


def test_activate_scopes_the_arch_and_restores_it(space, supernet):
    arch = space.smallest()
    tokens = _tokens(space, arch)
    with pytest.raises(RuntimeError, match="no sub-network chosen"):
        supernet(tokens)
    with supernet.activate(arch):
        assert torch.equal(supernet(tokens), supernet(tokens, arch))
    with pytest.raises(ZeroDivisionError), supernet.activate(arch):
        raise ZeroDivisionError
    with pytest.raises(RuntimeError):
        supernet(tokens)
    with pytest.raises(ValueError, match="context"):
        supernet(_tokens(space, arch, length=arch.context + 1), arch)


def test_layer_cache_appends_along_the_token_axis():
    cache = LayerCache()
    k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache.append(k, v)
    keys, _ = cache.append(k[:, :, :1], v[:, :, :1])
    assert cache.length == 4 and keys.shape == (1, 2, 4, 4)
