"""Compile each distinct TVM kernel once per process, and link networks from compiled kernels.

Profiling compiles hundreds of modules that share most of their kernels: a whole network
is its blocks' kernels (the same convolutions at the same shapes), and networks share
blocks. TVM compiles every module from scratch, and on the project's 2-core machine
lowering and LLVM code generation are about three quarters of a whole network's
compile time (``experiments/bench/profile_cost.py`` prints the breakdown).

:class:`KernelCache` runs TVM's own pipeline up to the kernels, names each kernel
(``PrimFunc``) by its structural hash, compiles only the kernels it has not compiled
before (one LLVM module per call, holding that call's new kernels), and links the
module's virtual-machine code against the compiled modules that hold the others. The
code that runs is the code ``tvm.compile`` produces: the same kernels, the same VM
bytecode (a network linked from cached kernels timed within noise of one compiled
whole, median ratio 1.003 in the check that motivated it; the test suite checks the
outputs agree).

It is for modules run in this process (a local session): an RPC device needs one
exported library per module, which re-generates every kernel anyway.

Example::

    cache = KernelCache({"kind": "llvm", "num-cores": 1})
    executable = cache.build(to_relax(model, shape))
    print(cache.stats.kernels_built, cache.stats.kernels_reused)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CompileStats:
    """Where compile time went (seconds per phase) and how many kernels were reused."""

    seconds: dict[str, float] = field(default_factory=dict)
    modules: int = 0
    kernels_built: int = 0
    kernels_reused: int = 0

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def to_json(self) -> dict[str, Any]:
        return {"seconds": {k: round(v, 3) for k, v in self.seconds.items()}, "modules": self.modules,
                "kernels_built": self.kernels_built, "kernels_reused": self.kernels_reused}


class _Timer:
    def __init__(self, stats: CompileStats, phase: str) -> None:
        self.stats, self.phase = stats, phase

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.stats.add(self.phase, time.perf_counter() - self.t0)


class KernelCache:
    """Compiles Relax modules for ``target``, each distinct kernel once (see the module docs).

    ``stats`` accumulates the seconds per phase (``relax_pipeline``, ``kernel_names``,
    ``vm_codegen``, ``kernel_build``, ``link``) and the kernel counts.
    """

    def __init__(self, target: dict[str, Any], stats: CompileStats | None = None) -> None:
        from latency_predictors.tvm_install import require_tvm

        tvm = require_tvm()
        self.target = tvm.target.Target(target)
        self.stats = stats or CompileStats()
        self._kernels: dict[str, tuple[Any, Any]] = {}  # name -> (PrimFunc, compiled module holding it)

    def __len__(self) -> int:
        return len(self._kernels)

    def build(self, mod: Any) -> Any:
        """``mod`` (an imported Relax ``IRModule``) as a VM executable, like ``tvm.compile``."""
        import tvm
        from tvm import relax
        from tvm.relax import vm_build

        stats = self.stats
        with _Timer(stats, "relax_pipeline"), self.target:
            mod = relax.get_pipeline("default")(mod)
        with _Timer(stats, "kernel_names"):
            mod = _name_kernels(mod)
        with _Timer(stats, "vm_codegen"):
            attrs = dict(mod.attrs) if mod.attrs else {}
            params = dict(attrs.get("const_name_to_constant", {}))
            if attrs.get("external_mods"):
                raise ValueError("modules with external (BYOC) libraries are compiled whole")
            builder = relax.ExecBuilder()
            mod = vm_build._vmcodegen(builder, mod, "bytecode")
            kernels = vm_build._filter_tir(mod)
        new: dict[Any, Any] = {}
        reused: list[Any] = []
        for gvar, func in kernels.functions_items():
            known = self._kernels.get(gvar.name_hint)
            if known is None:
                new[gvar] = func
            elif not _same(known[0], func):  # a hash collision: never time the wrong kernel
                raise RuntimeError(f"two different kernels hash to {gvar.name_hint}")
            elif not any(known[1].same_as(m) for m in reused):
                reused.append(known[1])
        stats.kernels_reused += len(kernels.functions_items()) - len(new)
        stats.kernels_built += len(new)
        lib = None
        if new:
            with _Timer(stats, "kernel_build"):
                lib = tvm.tirx.build(tvm.IRModule(new), target=self.target)
            for gvar, func in new.items():
                self._kernels[gvar.name_hint] = (func, lib)
        elif reused:
            lib, reused = reused[0], reused[1:]
        with _Timer(stats, "link"):
            linked = vm_build._ffi_api.VMLink(builder, self.target, lib, [], params)
            for module in reused:
                linked.import_module(module)
        stats.modules += 1
        return relax.VMExecutable(linked)


def _name_kernels(mod: Any) -> Any:
    """Every kernel of ``mod`` renamed ``k<structural hash>`` (``_<i>`` for a repeat within
    ``mod``), call sites included, so the same kernel has the same name in every module."""
    import tvm
    import tvm_ffi
    from tvm import relax

    seen: dict[int, int] = {}
    for gvar, func in list(mod.functions_items()):
        if isinstance(func, tvm.tirx.PrimFunc):
            digest = tvm_ffi.structural_hash(func.without_attr("global_symbol")) & 0xFFFFFFFFFFFFFFFF
            index = seen.get(digest, 0)
            seen[digest] = index + 1
            name = f"k{digest:016x}" + (f"_{index}" if index else "")
            mod.update_func(gvar, func.with_attr("global_symbol", name))
    # makes every GlobalVar match its global_symbol, rewriting the calls
    return relax.transform.NormalizeGlobalVar()(mod)


def _same(a: Any, b: Any) -> bool:
    import tvm_ffi

    return bool(tvm_ffi.structural_equal(a.without_attr("global_symbol"), b.without_attr("global_symbol")))


__all__ = ["CompileStats", "KernelCache"]
