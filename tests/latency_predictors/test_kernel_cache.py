"""The kernel cache: networks linked from kernels compiled once compute what ``tvm.compile``
computes, reuse their blocks' kernels, and time like the whole compiled at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

tvm = pytest.importorskip("tvm")

from lp_helpers import CPU_TARGET, FAST  # noqa: E402

from latency_predictors.kernel_cache import KernelCache  # noqa: E402
from latency_predictors.tvm_profiler import TVMProfiler, to_relax, to_relax_many  # noqa: E402

pytestmark = pytest.mark.slow  # TVM builds


def run(executable, x: torch.Tensor) -> np.ndarray:
    from tvm import relax

    vm = relax.VirtualMachine(executable, tvm.cpu(0))
    out = vm["main"](tvm.runtime.tensor(x.numpy(), tvm.cpu(0)))
    return (out if hasattr(out, "numpy") else out[0]).numpy()


def test_network_after_its_blocks_reuses_their_kernels_and_computes_the_same(tiny_space):
    import random

    arch = tiny_space.sample(random.Random(3))
    cache = KernelCache(CPU_TARGET)
    for block in tiny_space.blocks(arch):
        module = tiny_space.build_block(block)
        x = torch.randn(1, *block.in_shape)
        with torch.no_grad():
            assert np.allclose(run(cache.build(to_relax(module, block.in_shape)), x), module(x).numpy(), atol=1e-4)
    built = cache.stats.kernels_built
    net = tiny_space.build_static(arch)
    shape = tiny_space.input_shape(arch)
    x = torch.randn(1, *shape)
    cached = run(cache.build(to_relax(net, shape)), x)
    whole = run(tvm.compile(to_relax(net, shape), target=tvm.target.Target(CPU_TARGET)), x)
    with torch.no_grad():
        assert np.allclose(cached, net(x).numpy(), atol=1e-4) and np.allclose(cached, whole, atol=1e-5)
    # most of the network's kernels were compiled for its blocks (the few new ones fuse across them)
    assert cache.stats.kernels_built - built < cache.stats.kernels_reused
    assert cache.stats.modules == len(tiny_space.blocks(arch)) + 1
    assert {"relax_pipeline", "kernel_build", "link"} <= set(cache.stats.seconds)


def test_a_module_with_only_known_kernels_builds_nothing(tiny_space):
    block = tiny_space.blocks(tiny_space.largest())[3]
    cache = KernelCache(CPU_TARGET)
    cache.build(to_relax(tiny_space.build_block(block), block.in_shape))
    built = cache.stats.kernels_built
    x = torch.randn(1, *block.in_shape)
    module = tiny_space.build_block(block)  # other weights, same kernels
    again = run(cache.build(to_relax(module, block.in_shape)), x)
    with torch.no_grad():
        assert np.allclose(again, module(x).numpy(), atol=1e-4)
    assert cache.stats.kernels_built == built and cache.stats.kernels_reused == built


def test_profiler_reuses_kernels_locally_and_times_the_same(tiny_space):
    """Cached and uncached builds of one network time alike (ratio of paired readings)."""
    arch = tiny_space.smallest()
    net, shape = tiny_space.build_static(arch), tiny_space.input_shape(arch)
    cached = TVMProfiler(CPU_TARGET, timing=FAST)
    cached.prepare(net, shape)  # fills the cache
    timer = cached.prepare(net, shape)
    plain = TVMProfiler(CPU_TARGET, timing=FAST, reuse_kernels=False).prepare(net, shape)
    assert cached.stats.kernels_reused > 0
    ratios = []
    for _ in range(9):
        a, b = timer(), plain()
        ratios.append(a.median_ms / b.median_ms)
    assert 0.8 < float(np.median(ratios)) < 1.25  # loose: the machine is shared


def test_modules_imported_side_by_side_compile_to_the_same_kernels(tiny_space):
    """One export for several blocks: each cut-out module has the kernels of the block
    imported alone, and computes what the block computes."""
    from latency_predictors.kernel_cache import _name_kernels

    blocks = tiny_space.blocks(tiny_space.largest())[:4]
    modules = [tiny_space.build_block(b) for b in blocks]
    together = to_relax_many(modules, [b.in_shape for b in blocks])
    target = tvm.target.Target(CPU_TARGET)

    def kernels(mod):
        from tvm import relax

        with target:
            lowered = _name_kernels(relax.get_pipeline("default")(mod))
        return sorted(g.name_hint for g, f in lowered.functions_items() if isinstance(f, tvm.tirx.PrimFunc))

    for module, block, cut in zip(modules, blocks, together):
        assert kernels(cut) == kernels(to_relax(module, block.in_shape))
        x = torch.randn(1, *block.in_shape)
        with torch.no_grad():
            assert np.allclose(run(tvm.compile(cut, target=target), x), module(x).numpy(), atol=1e-4)
    timers = TVMProfiler(CPU_TARGET, timing=FAST).prepare_many(list(zip(modules, [b.in_shape for b in blocks])))
    assert len(timers) == 4 and all(t().median_ms > 0 for t in timers)
